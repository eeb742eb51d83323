"""The shared model test suite: every registered model (kimtrain.models.names()) passes it.

Symmetry and extensivity, batching, forces against finite differences, output heads, a
checkpoint round trip, and a short real training (Cu-Ag-Au VASP data) that must beat the
per-species reference clearly and that the Calculator reproduces. A new model gets all of it by registering.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from ase.build import bulk

from kimtrain import Calculator
from kimtrain.calculator import load_model
from kimtrain.cli import main
from kimtrain.data.dataset import load_dataset
from kimtrain.data.graphs import collate
from kimtrain.models import get, names
from kimtrain.models.base import Classifier
from kimtrain.models.factory import model_meta, prepare_graphs
from kimtrain.data.reference import fit_species_reference, species_offset_energy
from kimtrain.data.splits import read_split

from conftest import TINY_MODEL, agau_cells, assert_forces_match_finite_differences, model_energies as energies, rattled, tiny_model as make

MODELS = names()
WITH_FORCES = [n for n in MODELS if get(n).forces]
def test_every_model_is_in_the_suite():
    assert {"schnet", "soapnet", "cgcnn", "gemnet"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_invariances_and_extensivity(name):
    """Translation, rotation, permutation: same energy; a 2x1x1 supercell: twice the energy."""
    at = agau_cells(1, seed=3)[0]
    species = ["Ag", "Au"]
    model, cfg = make(name, [at], species)
    moved = at.copy()
    moved.translate([0.7, -1.3, 2.1])
    rotated = at.copy()
    rotated.rotate(37, "x", rotate_cell=True)
    rotated.rotate(-71, "z", rotate_cell=True)
    permuted = at[np.random.default_rng(0).permutation(len(at))]
    e = energies(model, cfg, [at, moved, rotated, permuted, at.repeat((2, 1, 1))], species)
    assert np.allclose(e[1:4], e[0], atol=1e-8, rtol=0), e
    assert abs(e[4] - 2 * e[0]) < 1e-8 * max(1, abs(e[0])), e
    assert abs(e[0]) > 1e-3  # a model that outputs nothing would pass the checks above


@pytest.mark.parametrize("name", MODELS)
def test_batch_equals_one_by_one(name):
    frames = rattled(n=4, seed=7) + [bulk("Si", "diamond", a=5.43)]
    model, cfg = make(name, frames, ["Si"])
    together = energies(model, cfg, frames, ["Si"])
    alone = np.array([energies(model, cfg, [f], ["Si"])[0] for f in frames])
    assert np.allclose(together, alone, atol=1e-9, rtol=0)
    assert np.ptp(together) > 1e-4


@pytest.mark.parametrize("name", WITH_FORCES)
def test_forces_equal_finite_differences(name):
    assert_forces_match_finite_differences(name)


@pytest.mark.parametrize("name", MODELS)
def test_heads_and_classifier_shapes(name):
    """n regression heads (MP), a classifier (LA), a replaced head (fine-tuning), pooled features."""
    frames = rattled(n=3, seed=2)
    model, cfg = make(name, frames, ["Si"], n_out=4)
    batch = collate(prepare_graphs(frames, cfg, ["Si"]), dtype=torch.float64)
    assert model(batch).shape == (3, 4)
    assert model.pooled(batch).shape == (3, TINY_MODEL["hidden"])
    logits = Classifier(model, 5).double()(batch)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    model.replace_head(1)
    assert model.double()(batch).shape == (3, 1)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip(name, tmp_path):
    """A model rebuilt from its checkpoint's metadata and weights gives the same energies."""
    frames = agau_cells(4, seed=5)
    species = ["Ag", "Au"]
    model, cfg = make(name, frames, species)
    model = model.float()  # checkpoints hold float32 weights, as training writes them
    model.species_ref[47, 0], model.scale[0] = -2.5, 0.3  # buffers travel too
    graphs = prepare_graphs(frames, cfg, species)
    torch.save({**model_meta(cfg, 1, graphs, species), "model": model.state_dict()}, tmp_path / "best.pt")
    loaded, _ = load_model(tmp_path)
    batch = collate(graphs)
    with torch.no_grad():
        assert torch.equal(loaded(batch), model(batch))
    assert type(loaded) is type(model)


@pytest.fixture(scope="module")
def small_split(cu):
    """15 % train (162 configurations), 10 % val, 10 % test of the Cu-Ag-Au set: small enough that
    GemNet's 20 epochs take about 2 minutes on 2 cores."""
    split = cu["tmp"] / "suite_split.csv"
    assert main(["split", cu["data"], "--out", str(split), "--seed", "0", "--pool", "0.65", "--train", "0.15",
                 "--val", "0.1", "--test", "0.1"]) == 0
    return str(split)


@pytest.fixture(scope="module")
def trained(cu, small_split):
    """Each model trained 20 epochs by `kimtrain fit` on the small Cu-Ag-Au split."""
    runs = {}
    for name in MODELS:
        out = cu["tmp"] / f"suite_{name}"
        assert main(["fit", "--data", cu["data"], "--split", small_split, "--model", name, "--out", str(out),
                     "--epochs", "20", "--config", cu["config"]]) == 0
        runs[name] = out
    return runs


@pytest.mark.parametrize("name", MODELS)
def test_short_training_beats_per_species_reference(cu, small_split, trained, name):
    """Validation and test per-atom MAE at most 3/4 of the per-species reference's (its own error
    on validation, fitted on train): every model must learn something beyond composition."""
    data = load_dataset([cu["data"]])
    split = read_split(small_split, len(data))
    tr, va = split.config_id[split.mark == "train"].values, split.config_id[split.mark == "val"].values
    mu = fit_species_reference([data.atoms[i] for i in tr], data.energy[tr], data.species)
    ref_only = np.mean(np.abs(species_offset_energy([data.atoms[i] for i in va], mu) - data.energy[va]) / data.n_atoms[va])
    metrics = json.loads((trained[name] / "metrics.json").read_text())
    assert metrics["val_mae_per_atom"] < 0.75 * ref_only, (metrics, ref_only)
    assert metrics["test_mae_per_atom"] < 0.75 * ref_only
    history = pd.read_csv(trained[name] / "history.csv")
    assert len(history) == 20 and history.train_loss.iloc[-1] < history.train_loss.iloc[0]


@pytest.mark.parametrize("name", MODELS)
def test_calculator_reproduces_evaluate(cu, small_split, trained, name):
    assert main(["evaluate", str(trained[name]), "--data", cu["data"], "--split", small_split]) == 0
    pred = pd.read_csv(trained[name] / "predictions.csv")
    assert (trained[name] / "parity.png").stat().st_size > 10_000
    data = load_dataset([cu["data"]])
    calc = Calculator(trained[name], device="cpu")
    for cid in pred.config_id.values[:: max(1, len(pred) // 25)]:
        at = data.atoms[cid].copy()
        at.calc = calc
        expected = pred.loc[pred.config_id == cid, "energy_pred"].item()
        assert abs(at.get_potential_energy() - expected) < 1e-4 * max(1.0, abs(expected))
    if get(name).forces:
        at = data.atoms[int(pred.config_id.iloc[0])].copy()
        at.rattle(0.05, seed=1)
        at.calc = calc
        assert at.get_forces().shape == (len(at), 3) and np.isfinite(at.get_forces()).all()
