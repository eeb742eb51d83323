"""Forces in kimtrain: force training on real DFT forces, EIP forces in pretraining, masks, metrics,
the Calculator against `evaluate`, and force variants in an experiment."""
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from kimlabel.schema import forces_path
from kimtrain import Calculator
from kimtrain.data.alignment import align, eip_forces, load_eip_table
from kimtrain.cli import main
from kimtrain.config import load
from kimtrain.data.dataset import load_dataset
from kimtrain.training.forces import force_mse
from kimtrain.data.graphs import collate
from kimtrain.training.context import energy_objective

from conftest import REPO, demo_spec, shared_set

DEMO = [str(REPO / "data" / "si_demo_dft.extxyz.gz"), str(REPO / "data" / "si_demo_pool.extxyz.gz")]


@pytest.fixture(scope="module")
def si(tmp_path_factory):
    """64-atom Si cells with vacancies and interstitials (VASP forces), a 50/25/25 split."""
    return shared_set(tmp_path_factory.mktemp("si_forces"), "Si_liu2023_vacancy_interstitial.extxyz.gz", threads=2)


def fit(si, out, *extra):
    assert main(["fit", "--data", si["data"], "--split", si["split"], "--config", si["config"], "--epochs", "5",
                 "--out", str(out), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_force_training_lowers_the_force_error_well_below_energy_only(si):
    energy_only = fit(si, si["tmp"] / "energy")
    forces = fit(si, si["tmp"] / "forces", "--force-weight", "1")
    assert forces["force_weight"] == 1.0 and "force_weight" not in energy_only
    assert forces["test_force_mae"] < 0.8 * energy_only["test_force_mae"], (forces, energy_only)
    assert forces["test_force_rmse"] >= forces["test_force_mae"] > 0
    history = pd.read_csv(si["tmp"] / "forces" / "history.csv")
    assert {"val_force_mae", "val_force_rmse", "val_loss"} <= set(history.columns)
    assert forces["best_epoch"] == int(history.val_loss.idxmin()) + 1  # selected on the validation loss
    assert history.val_force_mae.iloc[-1] < history.val_force_mae.iloc[0]


def test_calculator_forces_equal_evaluate_forces(si):
    run_dir = si["tmp"] / "forces"
    if not (run_dir / "best.pt").exists():
        fit(si, run_dir, "--force-weight", "1")
    assert main(["evaluate", str(run_dir), "--data", si["data"], "--split", si["split"]]) == 0
    table = pd.read_parquet(run_dir / "forces.parquet")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["test"]["force_mae"] > 0
    assert (run_dir / "parity_forces.png").stat().st_size > 10_000
    by_type = pd.read_csv(run_dir / "errors_by_config_type.csv")
    assert set(by_type.mark) == {"train", "val", "test"} and by_type.force_mae.notna().all()
    data = load_dataset([si["data"]])
    calc = Calculator(run_dir, device="cpu")
    for cid in table.config_id.unique()[:3]:
        at = data.atoms[int(cid)].copy()
        at.calc = calc
        rows = table[table.config_id == cid].sort_values("atom")
        np.testing.assert_allclose(at.get_forces(), rows[["fx_pred", "fy_pred", "fz_pred"]].to_numpy(), atol=2e-5)
        np.testing.assert_allclose(rows[["fx_dft", "fy_dft", "fz_dft"]].to_numpy(), data.forces[int(cid)])


@pytest.fixture(scope="module")
def demo_table(tmp_path_factory):
    """The demo DFT + pool sets labelled by the si EIPs, with forces."""
    out = tmp_path_factory.mktemp("demo_forces") / "table.parquet"
    from kimlabel.cli import main as kimlabel
    assert kimlabel(["label", *DEMO, "--potentials", "si", "--out", str(out), "--forces", "--quiet", "--jobs", "2"]) == 0
    return out


def test_delta_learns_dft_minus_eip_forces(demo_table, tmp_path, capsys):
    """Δ-learning on a table with EIP forces: the residual forces are DFT minus the EIP's, the test
    force error is that of network + EIP, and train.force_weight trains on them; a table without
    EIP forces is refused by name before any work."""
    out, results = quick_experiment(demo_table, tmp_path, [], {
        "delta": {"strategy": "delta", "eip": "SW_Balamane"},
        "delta +F": {"strategy": "delta", "eip": "SW_Balamane", "train.force_weight": 1.0}}, epochs=8)
    energy_only, with_forces = results.loc["delta"], results.loc["delta +F"]
    assert energy_only.eip == with_forces.eip == "SW_Balamane" and with_forces.force_weight == 1.0
    assert with_forces.test_force_mae < 0.95 * energy_only.test_force_mae, (with_forces, energy_only)
    history = pd.read_csv(out / "si-demo" / "schnet" / "seed0" / "delta_+F" / "eip_SW_Balamane" / "history.csv")
    assert history.val_force_mae.iloc[-1] < 0.95 * history.val_force_mae.iloc[0]  # it learns the residual forces

    from kimtrain import strategies
    from kimtrain.strategies.delta import residual_context
    from kimtrain.training.context import load_context
    run = load(out / "si-demo" / "schnet" / "seed0" / "delta_+F" / "config.yaml")
    ctx = load_context(run)
    delta = strategies.get("delta")
    rctx = residual_context(ctx, delta.prepare(ctx, run.out).labels, "SW_Balamane")
    table = pq.read_table(forces_path(demo_table)).to_pandas().set_index(["config_id", "atom"])
    for i in ctx.idx["train"][:3]:
        eip = table.loc[int(i)][[f"f{c}__SW_Balamane" for c in "xyz"]].to_numpy(dtype=float)
        assert np.abs(eip).max() > 0.1  # the EIP's forces really enter
        np.testing.assert_allclose(rctx.data.forces[i], ctx.data.forces[i] - eip)

    bare = tmp_path / "bare.parquet"
    bare.write_bytes(demo_table.read_bytes())  # the energy table without its forces file
    assert main(["fit", "--data", *DEMO, "--split", run.split, "--table", str(bare), "--strategy", "delta",
                 "--eip", "SW_Balamane", "--force-weight", "1", "--out", str(tmp_path / "refused")]) == 2
    assert f"{bare} has none" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "eip_SW_Balamane").exists()


def quick_experiment(demo_table, tmp_path, strategies: list, variants: dict, epochs: int = 2):
    """A quick demo-set experiment of small SchNets on the table with forces: (its folder, results.csv
    by row label)."""
    spec = demo_spec()
    spec["datasets"][0]["table"] = str(demo_table)
    spec["quick"] = {"epochs": epochs, "classifier_epochs": 2, "pretrain_epochs": 4, "pool_max": 120,
                     "alphas": [1.0], "models": ["schnet"]}
    spec["strategies"], spec["variants"] = strategies, variants
    spec["model"] = {**(spec.get("model") or {}), "hidden": 32, "n_layers": 2}
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "exp"
    assert main(["experiment", str(config), "--out", str(out), "--quick", "--threads", "2"]) == 0
    return out, pd.read_csv(out / "results.csv").set_index("strategy")


def test_eip_forces_mask_bad_entries_and_a_masked_entry_adds_nothing_to_the_loss(demo_table, tmp_path):
    data = load_dataset(DEMO)
    frame, _ = load_eip_table(demo_table, len(data))
    train = np.arange(0, 200, 2)
    labels = align(frame, data.atoms, data.energy, train, data.species)
    # plant an absurd force on atom 1 of configuration 3 for the first EIP
    table = pq.read_table(forces_path(demo_table)).to_pandas()
    name = labels.names[0]
    row = table.index[(table.config_id == 3) & (table.atom == 1)][0]
    table.loc[row, f"fx__{name}"] = 1e4
    planted = tmp_path / "planted.parquet"
    frame.to_parquet(planted)
    table.to_parquet(forces_path(planted))
    forces, masked = eip_forces(planted, labels, data.n_atoms, max_force=50.0)
    clean, masked_clean = eip_forces(demo_table, labels, data.n_atoms, max_force=50.0)
    assert masked == masked_clean + 1
    assert np.isnan(forces[3][1, 0]).all() and np.isfinite(forces[3][0, 0]).all()
    not_ok = np.argwhere(~labels.ok)
    if len(not_ok):  # entries whose status is not ok carry no forces
        i, k = not_ok[0]
        assert np.isnan(forces[i][:, k]).all()

    # in a loss, the masked entry counts exactly as if it were absent
    run = load(None, {"data": DEMO, "model.hidden": 32, "model.n_layers": 2})
    from kimtrain.models.factory import new_model, prepare_graphs
    graphs = prepare_graphs(data.atoms, run.model, data.species, data.key)
    model = new_model(run.model, len(labels.names), graphs, graphs[:50], 0)
    ids = [2, 3, 4]
    batch = collate([graphs[i] for i in ids])
    targets = torch.as_tensor(labels.aligned[ids]).float()
    objective = energy_objective(True, force_weight=1.0)

    def loss(per_config):
        batch.forces = torch.from_numpy(np.concatenate([per_config[i] for i in ids])).float()
        return objective(model, batch, targets, 0).item()

    removed = {i: clean[i].copy() for i in ids}
    removed[3][1, 0] = np.nan  # the clean values with that one entry left out by hand
    unmasked = {i: clean[i].copy() for i in ids}
    unmasked[3][1, 0, 0] = 1e4
    assert loss(forces) == pytest.approx(loss(removed), rel=1e-6)
    assert loss(unmasked) > 1e3 * loss(forces)  # unmasked, the one bad component dominates the batch
    assert force_mse(torch.zeros(2, 1, 3), torch.full((2, 1, 3), np.nan)).item() == 0.0


def test_best_eip_force_errors_are_its_table_forces_against_dft(demo_table):
    from kimtrain.reporting.eip import eip_force_errors
    data = load_dataset(DEMO)
    frame, _ = load_eip_table(demo_table, len(data))
    labels = align(frame, data.atoms, data.energy, np.arange(0, 200, 2), data.species)
    test = np.arange(1, 400, 7)  # DFT configurations (the pool file's have no forces)
    errors = eip_force_errors(demo_table, labels, "SW_Zhang1", data.forces, data.n_atoms, test)
    table = pq.read_table(forces_path(demo_table)).to_pandas().set_index(["config_id", "atom"])
    err = np.concatenate([table.loc[int(i)][[f"f{c}__SW_Zhang1" for c in "xyz"]].to_numpy(dtype=float)
                          - data.forces[i] for i in test])
    assert errors["test_force_mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12) and errors["test_force_mae"] > 0.01
    assert errors["test_force_rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)
    assert eip_force_errors(demo_table, labels, "SW_Zhang1", None, data.n_atoms, test) == {}


def test_pretraining_on_eip_forces_lowers_its_loss(demo_table, tmp_path):
    out, results = quick_experiment(demo_table, tmp_path, ["baseline"], {
        "mp(EIP F) +F": {"strategy": "mp", "train.force_weight": 1.0, "pretrain_force_weight": 1.0}})
    row = results.loc["mp(EIP F) +F"]
    assert row.pretrain_loss_last < row.pretrain_loss_first
    assert row.force_weight == 1.0 and row.pretrain_force_weight == 1.0 and row.test_force_mae > 0
    assert np.isfinite(results.loc["baseline", "test_force_mae"])  # energy-only runs report forces too
    assert results.loc["best EIP", "test_force_mae"] > 0             # and the best EIP its own
    shared = out / "si-demo" / "schnet" / "seed0" / "shared"
    assert (shared / "pretrain_F1" / "history.csv").exists()  # its own pretraining, not the energy-only one
    assert "force MAE (eV/Å)" in (out / "results.md").read_text()


def test_variants_with_eip_forces_share_the_classifier_and_pretrain_apart(tmp_path):
    """The experiment's plan: mp+la with and without EIP forces in pretraining train one classifier
    (it does not depend on the pretraining) and two pretrainings, each run waiting on its own."""
    from kimtrain.config import from_dict
    from kimtrain.experiment.plan import PlannedRun, plan_tasks, shared_folder, with_options
    run = from_dict({"data": ["si.extxyz"], "table": "si.parquet", "model": {"name": "schnet"}})
    planned = []
    for label, w in (("mp+la +F", 0.0), ("mp+la(EIP F) +F", 1.0)):
        r = with_options(run, {"strategy": "mp+la", "train.force_weight": 1.0, "pretrain_force_weight": w,
                                "alpha": 0.1}, label)
        r.out = str(tmp_path / "seed0" / label)
        planned.append(PlannedRun("si", "schnet", 0, label, r, shared_folder(tmp_path / "seed0", r)))
    tasks = {t.name: t.needs for t in plan_tasks(planned, tmp_path, None)}
    assert tasks == {"seed0/shared/pretrain": [], "seed0/shared/pretrain_F1": [], "seed0/shared/classifier": [],
                     "seed0/mp+la +F": ["seed0/shared/pretrain", "seed0/shared/classifier"],
                     "seed0/mp+la(EIP F) +F": ["seed0/shared/pretrain_F1", "seed0/shared/classifier"]}


def test_augmented_labels_carry_the_picked_eips_forces_with_a_tukey_term(demo_table, tmp_path):
    """LA with strategy.augment_force_weight: an experiment variant trains and records it; each
    augmented configuration carries the forces its picked EIP has in the kimlabel table; the
    objective adds w x Tukey biweight of the force components; other strategies refuse the option."""
    out, results = quick_experiment(demo_table, tmp_path, [], {
        "la(aug F) +F": {"strategy": "la", "train.force_weight": 1.0, "augment_force_weight": 1.0}})
    row = results.loc["la(aug F) +F"]
    assert row.augment_force_weight == 1.0 and np.isfinite(row.test_force_mae) and row.n_selected > 0

    # the augmented set's forces are the picked EIP's, as the table has them
    from kimtrain import strategies
    from kimtrain.strategies.la import augmented_labels, train_classifier
    from kimtrain.training.context import load_context
    seed_dir = out / "si-demo" / "schnet" / "seed0"
    (config_path,) = seed_dir.glob("la*aug*/config.yaml")
    run = load(config_path)
    ctx = load_context(run)
    prepared = strategies.get("la").prepare(ctx, run.out, True, seed_dir / "shared")
    labels = prepared.labels
    ids, values, picked = augmented_labels(ctx, labels, train_classifier(ctx, labels, seed_dir / "shared" / "classifier",
                                                                         resume=True))
    assert len(prepared.aux) == len(ids) > 0 and np.allclose(prepared.aux.targets[:, 0], values)
    table = pq.read_table(forces_path(demo_table)).to_pandas().set_index(["config_id", "atom"])
    for n in range(0, len(ids), max(1, len(ids) // 5)):
        name = labels.names[picked[n]]
        raw = table.loc[int(ids[n])][[f"f{c}__{name}" for c in "xyz"]].to_numpy(dtype=float)
        assert prepared.aux.forces[n].shape == (len(raw), 1, 3)
        assert np.allclose(prepared.aux.forces[n][:, 0], raw, equal_nan=True)

    # the force term of the objective, for one augmented configuration (every step picks it)
    from kimtrain.training.losses import tukey_biweight
    from kimtrain.training.forces import energy_and_forces
    from kimtrain.training.trainer import LabelledSet
    from kimtrain.models.factory import new_model
    model = new_model(run.model, 1, ctx.graphs, ctx.graphs[:20], 0)
    energy, forces = energy_and_forces(model, collate(prepared.aux.graphs[:1]))
    # energy targets equal to the model's own energies, so the force term is all that is left
    one = LabelledSet(prepared.aux.graphs[:1], energy.detach().double().numpy(), prepared.aux.forces[:1])
    batch = collate(ctx.graphs[:4])
    targets = model(batch).detach()
    with_f, without_f = (energy_objective(True, one, alpha=1.0, aux_force_weight=w)(model, batch, targets, 0).item()
                         for w in (0.5, 0.0))
    by_hand = tukey_biweight((forces - torch.from_numpy(one.forces[0]).float()).reshape(-1)).item()
    assert by_hand > 1e-3 and without_f < 1e-9 and with_f == pytest.approx(0.5 * by_hand, rel=1e-5)
    with pytest.raises(ValueError, match="strategy mp has no augmented labels"):
        strategies.get("mp").prepare(ctx, run.out, True, seed_dir / "shared")


def test_soapnet_refuses_forces_before_any_work(si, tmp_path, capsys):
    assert main(["fit", "--data", si["data"], "--split", si["split"], "--model", "soapnet", "--force-weight", "1",
                 "--out", str(tmp_path / "s")]) == 2
    assert "train.force_weight 1.0: model soapnet gives no forces" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_projected_force_loss_of_several_heads_averages_to_the_exact_one():
    """MP pretraining fits k heads' forces through one random ±1 combination per configuration:
    over draws, its mean is the exact mean squared force error over the heads."""
    from kimtrain.training.forces import energy_and_forces, energy_and_projected_force_mse
    from conftest import rattled, tiny_model
    frames = rattled(n=3, seed=5)
    model, _ = tiny_model("schnet", frames, ["Si"], n_out=4)
    from kimtrain.data.graphs import build_graphs
    batch = collate(build_graphs(frames, 5.0), dtype=torch.float64)
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.normal(size=(len(batch.numbers), 4, 3)))
    target[:8, 2] = np.nan  # head 2 has no labels on the first configuration
    batch.forces = target
    _, exact = energy_and_forces(model, batch)
    mask = torch.isfinite(target)
    per_config_heads = ((exact - target) ** 2).nan_to_num()
    exact_loss = [(per_config_heads[batch.batch == b].sum(dim=(0, 2)) / 3 / 8)[mask[batch.batch == b].all(2).any(0)].mean()
                  for b in range(3)]
    g = torch.Generator().manual_seed(0)
    draws = [energy_and_projected_force_mse(model, batch, g)[1].item() for _ in range(1500)]
    assert np.mean(draws) == pytest.approx(float(torch.stack(exact_loss).mean()), rel=0.06)
