"""Real training on the Cu-Ag-Au VASP set (../shared/data): learning, exact resume, Calculator vs evaluate."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kimtrain import Calculator
from kimtrain.cli import main
from kimtrain.config import from_dict
from kimtrain.data import load_dataset
from kimtrain.task import energy_objective, load_context
from kimtrain.pipeline import energy_validator, model_meta, new_model, set_reference
from kimtrain.reference import fit_species_reference, reference_energy
from kimtrain.splits import read_split
from kimtrain.trainer import Trainer

from conftest import shared_file

SMALL = {"hidden": 64, "n_layers": 3, "soap_n_max": 4, "soap_l_max": 3}


@pytest.fixture(scope="module")
def cu(tmp_path_factory):
    """Cu-Ag-Au data, a 50/25/25 split, and a YAML with the small model settings."""
    tmp = tmp_path_factory.mktemp("cu")
    data = str(shared_file("CuAgAu_pyclupan_fcc.extxyz.gz"))
    split = tmp / "split.csv"
    assert main(["split", data, "--out", str(split), "--seed", "0", "--pool", "0", "--train", "0.5",
                 "--val", "0.25", "--test", "0.25"]) == 0
    config = tmp / "small.yaml"
    config.write_text(yaml.safe_dump({"model": SMALL, "train": {"progress": False}}))
    return {"tmp": tmp, "data": data, "split": str(split), "config": str(config)}


@pytest.fixture(scope="module")
def trained(cu):
    runs = {}
    for name in ("schnet", "soapnet"):
        out = cu["tmp"] / name
        assert main(["fit", "--data", cu["data"], "--split", cu["split"], "--model", name, "--out", str(out),
                     "--epochs", "20", "--config", cu["config"]]) == 0
        runs[name] = out
    return runs


@pytest.mark.parametrize("name", ["schnet", "soapnet"])
def test_training_beats_per_species_reference(cu, trained, name):
    data = load_dataset([cu["data"]])
    split = read_split(cu["split"], len(data))
    tr, va = split.config_id[split.mark == "train"].values, split.config_id[split.mark == "val"].values
    mu = fit_species_reference([data.atoms[i] for i in tr], data.energy[tr], data.species)
    ref_only = np.mean(np.abs(reference_energy([data.atoms[i] for i in va], mu) - data.energy[va]) / data.n_atoms[va])
    metrics = json.loads((trained[name] / "metrics.json").read_text())
    assert metrics["val_mae_per_atom"] < 0.5 * ref_only, (metrics, ref_only)
    assert metrics["test_mae_per_atom"] < 0.5 * ref_only
    history = pd.read_csv(trained[name] / "history.csv")
    assert len(history) == 20 and history.train_loss.iloc[-1] < history.train_loss.iloc[0]


@pytest.mark.parametrize("name", ["schnet", "soapnet"])
def test_calculator_reproduces_evaluate(cu, trained, name):
    assert main(["evaluate", str(trained[name]), "--data", cu["data"], "--split", cu["split"]]) == 0
    pred = pd.read_csv(trained[name] / "predictions.csv")
    assert (trained[name] / "parity.png").stat().st_size > 10_000
    data = load_dataset([cu["data"]])
    calc = Calculator(trained[name], device="cpu")
    for cid in pred.config_id.values[:: max(1, len(pred) // 25)]:
        at = data.atoms[cid].copy()
        at.calc = calc
        expected = pred.loc[pred.config_id == cid, "energy_pred"].item()
        assert abs(at.get_potential_energy() - expected) < 1e-4 * max(1.0, abs(expected))
    if name == "schnet":
        at = data.atoms[int(pred.config_id.iloc[0])].copy()
        at.rattle(0.05, seed=1)
        at.calc = calc
        assert at.get_forces().shape == (len(at), 3) and np.isfinite(at.get_forces()).all()


@pytest.fixture
def one_thread():
    """Bitwise reproducibility needs a fixed reduction order: parallel CPU kernels on a loaded
    machine may split sums differently from run to run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_interrupted_run_resumes_exactly(cu, tmp_path, one_thread):
    raw = yaml.safe_load(open(cu["config"]))
    run = from_dict({**raw, "data": [cu["data"]], "split": cu["split"],
                     "train": {"epochs": 4, "progress": False, "batch_size": 64}})
    ctx = load_context(run)
    tr = ctx.idx["train"]
    train = ctx.subset(tr, ctx.dft[tr])
    validate = energy_validator(ctx.subset(ctx.idx["val"], ctx.dft[ctx.idx["val"]]), 64)

    def train_once(out, interrupt_at=None, resume=False):
        torch.manual_seed(0)
        model = new_model(run.model, 1, ctx.graphs, train.graphs)
        set_reference(model, [ctx.data.atoms[i] for i in tr], ctx.dft[tr], ctx.species)
        base = energy_objective(True)

        def objective(m, batch, targets, step):
            if step == interrupt_at:
                raise KeyboardInterrupt
            return base(m, batch, targets, step)
        Trainer(model, run.train, out, objective, validate, "val_mae_per_atom",
                meta=model_meta(run.model, 1, ctx.graphs, ctx.species)).fit(train, resume)
        return model

    full = train_once(tmp_path / "full")
    steps_per_epoch = -(-len(train) // 64)
    with pytest.raises(KeyboardInterrupt):
        train_once(tmp_path / "cut", interrupt_at=2 * steps_per_epoch + 3)
    assert len(pd.read_csv(tmp_path / "cut" / "history.csv")) == 2
    resumed = train_once(tmp_path / "cut", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "history.csv"),
                                  pd.read_csv(tmp_path / "cut" / "history.csv"))


def test_label_augmentation_with_no_selected_label_trains_like_baseline(cu, tmp_path):
    """A classifier that picks no EIP for any pool configuration leaves nothing to augment."""
    raw = yaml.safe_load(open(cu["config"]))
    run = from_dict({**raw, "data": [cu["data"]], "split": cu["split"], "train": {"epochs": 2, "progress": False}})
    ctx = load_context(run)
    empty = ctx.subset(np.array([], dtype=int), np.array([]))
    assert len(empty) == 0 and empty.targets.shape == (0, 1)
    from kimtrain.task import train_energy
    _, best = train_energy(ctx, tmp_path / "la_empty", aux=empty, alpha=1.0)
    assert np.isfinite(best["val_mae_per_atom"])
