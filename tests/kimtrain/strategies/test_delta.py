"""Δ-learning on the bundled GPAW silicon set with real KIM models: the network learns DFT minus an
aligned EIP, and every prediction (metrics, evaluate, Calculator) adds that EIP back."""
import json

import numpy as np
import pytest
import torch
from ase.io import read

import kimlabel
from kimlabel.cli import main as kimlabel_main
from kimtrain import Calculator
from kimtrain.calculator import load_model
from kimtrain.cli import main
from kimtrain.reporting.evaluate import evaluate
from kimtrain.data.graphs import build_graph, collate
from kimtrain.data.reference import species_offset_energy
from kimtrain.data.splits import read_split

from conftest import REPO

DATA = str(REPO / "data" / "si_demo_dft.extxyz.gz")
EIPS = "SW_Balamane,Tersoff_T2"


@pytest.fixture(scope="module", params=["delta", "mp+delta"])
def delta_run(tmp_path_factory, request):
    """A quick delta run, and an mp+delta run (pretrained on the EIP heads of a 30 % pool first)."""
    tmp = tmp_path_factory.mktemp("delta")
    table, split, out = tmp / "table.parquet", tmp / "split.csv", tmp / "delta"
    pool = "0.3" if request.param == "mp+delta" else "0"
    assert kimlabel_main(["label", DATA, "--potentials", EIPS, "--out", str(table), "--quiet"]) == 0
    assert main(["split", DATA, "--out", str(split), "--pool", pool, "--train", "0.3", "--val", "0.1",
                 "--test", "0.1"]) == 0
    config = tmp / "small.yaml"
    config.write_text("model: {hidden: 32, n_layers: 2, n_rbf: 20}\ntrain: {progress: false}\n"
                      "strategy: {pretrain_epochs: 3}\n")
    assert main(["fit", "--data", DATA, "--split", str(split), "--table", str(table), "--strategy", request.param,
                 "--out", str(out), "--epochs", "3", "--config", str(config)]) == 0
    return {"out": out, "split": split, "metrics": json.loads((out / "metrics.json").read_text()),
            "strategy": request.param}


def test_delta_chooses_an_eip_on_validation(delta_run):
    m = delta_run["metrics"]
    assert m["strategy"] == delta_run["strategy"] and m["eip"] in EIPS.split(",")
    assert all((delta_run["out"] / f"eip_{e}" / "history.csv").exists() for e in EIPS.split(","))  # one per EIP
    assert np.isfinite(m["test_mae_per_atom"]) and m["test_mae_per_atom"] < 0.5
    if delta_run["strategy"] == "mp+delta":  # fine-tuned from the shared pretraining on the EIP heads
        assert (delta_run["out"] / "pretrain" / "best.pt").exists()
        assert m["pretrain_loss_last"] < m["pretrain_loss_first"]


def test_delta_predictions_are_network_plus_eip(delta_run):
    out, m = delta_run["out"], delta_run["metrics"]
    model, state = load_model(out)
    eip = state["eip_baseline"]
    assert eip["name"] == m["eip"] and eip["kim_id"].startswith(("SW_", "Tersoff_"))
    test = read_split(delta_run["split"], 400)
    config_id = int(test.index[test.mark == "test"][0])
    atoms = read(DATA, index=config_id)
    # the network alone, and the EIP through kimlabel's own (process-pool) path
    batch = collate([build_graph(atoms, state["model_config"]["cutoff"])], dtype=torch.float32)
    batch.positions.requires_grad_(True)
    net = model(batch)[0, 0]
    (grad,) = torch.autograd.grad(net, batch.positions)
    table = kimlabel.label([atoms], {eip["name"]: eip["kim_id"]}, forces=True)
    e_eip = table[f"energy__{eip['name']}"].iloc[0] + species_offset_energy([atoms], eip["offsets"])[0]
    f_eip = table.attrs["forces"][[f"f{c}__{eip['name']}" for c in "xyz"]].to_numpy()
    atoms.calc = Calculator(out, device="cpu")
    assert atoms.get_potential_energy() == pytest.approx(float(net.detach()) + e_eip, abs=1e-4)
    assert np.allclose(atoms.get_forces(), -grad.double().numpy() + f_eip, atol=1e-4)
    assert abs(e_eip) > 1.0  # the EIP really contributes


def test_evaluate_adds_the_eip_back(delta_run, tmp_path):
    scores = evaluate(delta_run["out"], [DATA], str(delta_run["split"]), out=tmp_path)
    assert scores["test"]["mae_per_atom"] == pytest.approx(delta_run["metrics"]["test_mae_per_atom"], rel=1e-5)


def test_eip_that_cannot_evaluate_a_configuration_is_refused_by_name():
    """Where the EIP fails (unsupported species, absurd geometry) a Δ model refuses instead of
    returning a prediction without its EIP; in training such configurations are masked and EIPs
    missing a validation or test configuration are not candidates."""
    from ase import Atoms
    from ase.build import bulk
    from kimlabel.session import UnsupportedSpecies
    from kimtrain.models.eip import EIPBaseline
    sw = EIPBaseline("SW_Balamane", "SW_BalamaneHaliciogluTiller_1992_Si__MO_113686039439_004", {"Si": -1.0})
    good = bulk("Si", "diamond", a=5.43)
    energies, _ = sw.evaluate([good])
    assert energies[0] == pytest.approx(-4.63 * 2 - 2.0, abs=0.01)  # Balamane SW's cohesive energy, plus 2 x (-1)
    with pytest.raises(UnsupportedSpecies, match="Al"):
        sw.evaluate([bulk("Al", "fcc", a=4.05)])
    crushed = Atoms("Si2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=[10, 10, 10], pbc=True)
    with pytest.raises(ValueError, match="configuration 1"):
        sw.evaluate([good, crushed])
