"""mf, joint multi-fidelity training: one network, a head per fidelity, one forward pass per
configuration for all of them, and predictions from the DFT head."""
import json

import numpy as np
import pytest
import torch

from kimlabel.cli import main as kimlabel_main
from kimtrain.calculator import load_model
from kimtrain.cli import main
from kimtrain.config import ModelConfig
from kimtrain.data.dataset import load_dataset
from kimtrain.data.graphs import collate
from kimtrain.data.splits import indices, read_split
from kimtrain.models.factory import model_from_meta, prepare_graphs
from kimtrain.strategies.mf import mf_objective
from kimtrain.training.inference import predict
from kimtrain.training.trainer import LabelledSet, as_targets

from conftest import REPO, rattled, tiny_model

DATA = str(REPO / "data" / "si_demo_dft.extxyz.gz")
EIPS = ["SW_Balamane", "EDIP"]  # fidelities 0.5-0.7 eV/atom from DFT: farther apart than a short training's error


def test_one_forward_pass_serves_every_fidelity():
    """A step forwards each configuration of its DFT batch and of its EIP batch once, however many
    EIP heads there are: labels x k, not compute x k."""
    frames = rattled("Si", n=12, seed=3)
    for k in (2, 9):
        model, cfg = tiny_model("schnet", frames, ["Si"], n_out=1 + k)
        graphs = prepare_graphs(frames, cfg, ["Si"])
        seen = []
        model.register_forward_pre_hook(lambda m, args: seen.append(args[0].n_configs))
        eip_set = LabelledSet(graphs[4:], np.random.default_rng(0).normal(-40, 1, (8, k)))
        batch = collate(graphs[:4], dtype=torch.float64)
        targets = as_targets(np.random.default_rng(1).normal(-40, 1, (4, 1 + k))).double()
        loss = mf_objective(eip_set, 1.0, True, batch_size=5, seed=0, force_weight=0.0)(model, batch, targets, 0)
        assert torch.isfinite(loss) and seen == [4, 5]  # the DFT batch, then 5 EIP-labelled configurations


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mf")
    table, split, out = tmp / "table.parquet", tmp / "split.csv", tmp / "mf"
    assert kimlabel_main(["label", DATA, "--potentials", ",".join(EIPS), "--out", str(table), "--quiet"]) == 0
    assert main(["split", DATA, "--out", str(split), "--pool", "0.5", "--train", "0.2", "--val", "0.1",
                 "--test", "0.2"]) == 0
    config = tmp / "small.yaml"
    config.write_text("model: {hidden: 48, n_layers: 3, n_rbf: 20}\ntrain: {progress: false}\n"
                      "strategy: {mf_weights: [1.0]}\n")
    assert main(["fit", "--data", DATA, "--split", str(split), "--table", str(table), "--strategy", "mf",
                 "--out", str(out), "--epochs", "40", "--config", str(config)]) == 0
    return {"out": out, "split": split, "table": table, "metrics": json.loads((out / "metrics.json").read_text())}


def test_the_run_predicts_with_its_dft_head(mf_run):
    m = mf_run["metrics"]
    assert m["strategy"] == "mf" and m["mf_weight"] == 1.0 and np.isfinite(m["test_mae_per_atom"])
    model, state = load_model(mf_run["out"])
    assert state["n_out"] == 1 and state["fidelities"] == ["DFT", *EIPS] and model.n_out == 1


def test_each_head_is_closer_to_its_own_fidelity(mf_run):
    """On the test marks, the DFT head is closer to DFT than to the EIP labels, and each EIP head
    closer to its aligned EIP than to DFT."""
    import pandas as pd
    from kimtrain.data.alignment import align
    data = load_dataset([DATA])
    split = read_split(mf_run["split"], len(data))
    test, train = indices(split, "test"), indices(split, "train")
    state = torch.load(mf_run["out"] / "eip_weight_1" / "best.pt", weights_only=False, map_location="cpu")
    model = model_from_meta(state)
    model.load_state_dict(state["model"])
    assert model.n_out == 3
    graphs = prepare_graphs(data.atoms, ModelConfig(**state["model_config"]), state["species"], key=data.key)
    pred = predict(model.eval(), [graphs[i] for i in test])
    labels = align(pd.read_parquet(mf_run["table"]), data.atoms, data.energy, train, data.species, names=EIPS)
    n = data.n_atoms[test][:, None]
    fidelities = np.concatenate([data.energy[test, None], labels.aligned[test]], axis=1) / n
    mae = np.abs(pred[:, :, None] / n[:, :, None] - fidelities[:, None, :]).mean(axis=0)  # head x fidelity
    assert mae[0, 0] < mae[0, 1:].min()
    for h in (1, 2):
        assert mae[h, h] < mae[h, 0]


def test_eip_forces_enter_the_eip_heads_loss():
    """With strategy.mf_force_weight the EIP batch's heads fit their EIPs' forces: targets equal to
    the heads' own forces add nothing to the loss, perturbed ones add their squared error."""
    from kimtrain.training.forces import energy_and_forces
    frames = rattled("Si", n=10, seed=5)
    k = 2
    model, cfg = tiny_model("schnet", frames, ["Si"], n_out=1 + k)
    graphs = prepare_graphs(frames, cfg, ["Si"])
    eip_graphs = graphs[4:]
    _, own = energy_and_forces(model, collate(eip_graphs, dtype=torch.float64))
    own = own.detach().numpy()
    bounds = np.cumsum([0] + [len(g.numbers) for g in eip_graphs])
    own_forces = [own[a:b].copy() for a, b in zip(bounds[:-1], bounds[1:])]
    for f in own_forces:
        f[:, 0] = np.nan  # no DFT forces on pool configurations
    targets = np.random.default_rng(0).normal(-40, 1, (len(eip_graphs), k))
    batch = collate(graphs[:4], dtype=torch.float64)
    dft_targets = as_targets(np.random.default_rng(1).normal(-40, 1, (4, 1 + k))).double()

    def loss(forces, weight):
        eip_set = LabelledSet(eip_graphs, targets, forces)
        objective = mf_objective(eip_set, 1.0, True, batch_size=6, seed=0, force_weight=0.0, eip_force_weight=weight)
        return objective(model, batch, dft_targets, 0).item()

    plain = loss(None, 0.0)
    assert loss(own_forces, 1.0) == pytest.approx(plain, rel=1e-9)
    shifted = [f.copy() for f in own_forces]
    for f in shifted:
        f[:, 1] += 0.5
    # the first EIP's components off by 0.5 eV/Å, the second's exact: a mean squared error of 0.125 (eV/Å)² over
    # the two heads (whatever the projection's signs), halved by the mean over the two EIP loss terms
    assert loss(shifted, 1.0) - plain == pytest.approx(0.125 / 2, rel=1e-6)
    assert loss(shifted, 2.0) - plain == pytest.approx(0.125, rel=1e-6)


def test_mf_force_weight_is_refused_where_it_cannot_act(tmp_path, capsys):
    from kimtrain.config import from_dict
    from kimtrain.strategies import get
    run = from_dict({"model": {"name": "schnet"}, "strategy": {"strategy": "baseline", "mf_force_weight": 1.0}})
    with pytest.raises(ValueError, match="strategy.mf_force_weight 1.0: only strategy mf uses it, not baseline"):
        get("baseline").check(run)
    run = from_dict({"model": {"name": "soapnet"}, "strategy": {"strategy": "mf", "mf_force_weight": 1.0}})
    with pytest.raises(ValueError, match="strategy.mf_force_weight 1.0: model soapnet gives no forces"):
        get("mf").check(run)
    run = from_dict({"model": {"name": "schnet"}, "strategy": {"strategy": "auto", "mf_force_weight": 1.0}})
    get("auto").check(run)  # mf is among auto's candidates


def test_a_fidelity_embedding_folds_into_a_plain_model():
    """SOAPNet with a fidelity embedding (strategy.mf_embedding): output f comes from its own input
    vector through one shared head (one MLP pass per fidelity), and keeping the DFT output folds its
    vector into the input standardisation: a plain SOAPNet, same predictions, that loads without
    the embedding."""
    frames = rattled("Si", n=6, seed=4)
    model, cfg = tiny_model("soapnet", frames, ["Si"], n_out=3)
    graphs = prepare_graphs(frames, cfg, ["Si"])
    batch = collate(graphs, dtype=torch.float64)
    model.embed_fidelities()
    with torch.no_grad():
        model.fidelity.copy_(torch.randn(model.fidelity.shape, generator=torch.Generator().manual_seed(0)))
    passes = []
    model.body.register_forward_hook(lambda m, args, out: passes.append(len(out)))
    full = model(batch).detach()
    assert full.shape == (6, 3) and len(passes) == 3  # one body pass per fidelity
    assert not torch.allclose(full[:, 0], full[:, 1])
    meta = {"model_config": cfg.__dict__, "n_out": 1, "n_features": model.n_features}
    single = model.keep_outputs([0])
    assert single.fidelity is None and single.n_out == 1
    assert torch.allclose(single(batch).detach()[:, 0], full[:, 0], rtol=1e-10, atol=1e-10)
    plain = model_from_meta(meta).double()
    plain.load_state_dict(single.state_dict())
    assert torch.allclose(plain(batch).detach()[:, 0], full[:, 0], rtol=1e-10, atol=1e-10)


def test_a_fidelity_embedding_is_refused_where_the_model_has_none():
    from kimtrain.config import from_dict
    from kimtrain.strategies import get
    run = from_dict({"model": {"name": "schnet"}, "strategy": {"strategy": "mf", "mf_embedding": True}})
    with pytest.raises(ValueError, match="strategy.mf_embedding true: model schnet has no fidelity embedding "
                                         r"\(soapnet has\)"):
        get("mf").check(run)
    run = from_dict({"model": {"name": "soapnet"}, "strategy": {"strategy": "mp", "mf_embedding": True}})
    with pytest.raises(ValueError, match="only strategy mf uses it, not mp"):
        get("mp").check(run)
    with pytest.raises(ValueError, match="strategy.mf_embedding must be true or false, got 'yes'"):
        from_dict({"strategy": {"strategy": "mf", "mf_embedding": "yes"}})


def test_an_embedded_mf_run_predicts_with_its_dft_fidelity(mf_run, tmp_path):
    """SOAPNet mf with strategy.mf_embedding, end to end: the run's best.pt is a plain one-output
    SOAPNet whose predictions equal the DFT fidelity of the embedded model it was trained as."""
    config = tmp_path / "emb.yaml"
    config.write_text("model: {name: soapnet, hidden: 32, n_layers: 3, soap_n_max: 4, soap_l_max: 3}\n"
                      "train: {progress: false}\nstrategy: {mf_weights: [1.0], mf_embedding: true}\n")
    out = tmp_path / "emb"
    assert main(["fit", "--data", DATA, "--split", str(mf_run["split"]), "--table", str(mf_run["table"]),
                 "--strategy", "mf", "--out", str(out), "--epochs", "5", "--config", str(config)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["mf_embedding"] is True and np.isfinite(m["test_mae_per_atom"])
    model, state = load_model(out)
    assert model.n_out == 1 and model.fidelity is None and "fidelity_embedding" not in state
    full_state = torch.load(out / "eip_weight_1" / "best.pt", weights_only=False, map_location="cpu")
    full = model_from_meta(full_state)
    full.load_state_dict(full_state["model"])
    assert full.fidelity.shape[0] == 3
    data = load_dataset([DATA])
    graphs = prepare_graphs(data.atoms[:8], ModelConfig(**state["model_config"]), state["species"])
    a, b = predict(model.eval(), graphs)[:, 0], predict(full.eval(), graphs)[:, 0]
    assert np.allclose(a, b, rtol=1e-5, atol=1e-4)
