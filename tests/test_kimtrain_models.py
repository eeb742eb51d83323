"""Model properties for SchNet and SOAPNet: symmetry, extensivity, batching, forces."""
import numpy as np
import pytest
import torch
from ase.build import bulk

from kimtrain.config import ModelConfig
from kimtrain.graphs import collate
from kimtrain.pipeline import new_model, prepare_graphs

from conftest import agau_cells, rattled

SMALL = {"hidden": 32, "n_layers": 3, "n_rbf": 20, "soap_n_max": 4, "soap_l_max": 3}


def make(name, frames, species):
    cfg = ModelConfig(name=name, **SMALL)
    torch.manual_seed(0)
    graphs = prepare_graphs(frames, cfg, species)
    model = new_model(cfg, 1, graphs, graphs).double().eval()
    return model, cfg


def energies(model, cfg, frames, species):
    graphs = prepare_graphs(frames, cfg, species)
    batch = collate(graphs, dtype=torch.float64)
    return model(batch)[:, 0].detach().numpy()


@pytest.mark.parametrize("name", ["schnet", "soapnet"])
def test_invariances_and_extensivity(name):
    at = agau_cells(1, seed=3)[0]
    species = ["Ag", "Au"]
    model, cfg = make(name, [at], species)
    moved = at.copy()
    moved.translate([0.7, -1.3, 2.1])
    rotated = at.copy()
    rotated.rotate(37, "x", rotate_cell=True)
    rotated.rotate(-71, "z", rotate_cell=True)
    perm = np.random.default_rng(0).permutation(len(at))
    permuted = at[perm]
    supercell = at.repeat((2, 1, 1))
    e = energies(model, cfg, [at, moved, rotated, permuted, supercell], species)
    assert np.allclose(e[1:4], e[0], atol=1e-8, rtol=0), e
    assert abs(e[4] - 2 * e[0]) < 1e-8 * max(1, abs(e[0])), e
    assert abs(e[0]) > 1e-3  # a model that outputs nothing would pass the checks above


@pytest.mark.parametrize("name", ["schnet", "soapnet"])
def test_batch_equals_one_by_one(name):
    frames = rattled(n=4, seed=7) + [bulk("Si", "diamond", a=5.43)]
    model, cfg = make(name, frames, ["Si"])
    together = energies(model, cfg, frames, ["Si"])
    alone = np.array([energies(model, cfg, [f], ["Si"])[0] for f in frames])
    assert np.allclose(together, alone, atol=1e-9, rtol=0)
    assert np.ptp(together) > 1e-4


@pytest.mark.parametrize("filter_", ["tabulated", "direct"])
def test_schnet_forces_equal_finite_differences(filter_):
    at = rattled(n=1, seed=5, amp=0.15)[0]
    model, cfg = make("schnet", [at], ["Si"])
    model.filter = cfg.filter = filter_
    batch = collate(prepare_graphs([at], cfg, ["Si"]), dtype=torch.float64)
    batch.positions.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(batch)[0, 0], batch.positions)
    forces = -grad.numpy()
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = at.copy(), at.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        e_plus, e_minus = energies(model, cfg, [plus, minus], ["Si"])
        fd = -(e_plus - e_minus) / (2 * h)
        assert abs(fd - forces[atom, axis]) < 1e-6 + 1e-4 * abs(fd), (atom, axis, fd, forces[atom, axis])
    assert np.abs(forces).max() > 1e-4


def test_tabulated_filters_match_direct_evaluation():
    """Interpolated filters (2,048 grid points on [0, 5] A, the default) against the filter network
    evaluated on every pair, in float32 as in training: per-atom features within 1e-4 relative."""
    frames = rattled(n=3, seed=11, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="schnet")
    graphs = prepare_graphs(frames, cfg, ["Si"])
    torch.manual_seed(0)
    model = new_model(cfg, 1, graphs, graphs).eval()
    batch = collate(graphs)
    with torch.no_grad():
        d = batch.vectors().norm(dim=-1)
        direct_filters, tab_filters = model.filter_values(d), model.pair_filters(d)
        tabulated = model.atom_features(batch)
        model.filter = "direct"
        direct = model.atom_features(batch)
    for w_tab, w_dir in zip(tab_filters, direct_filters):
        assert (w_tab - w_dir).abs().max() <= 1e-4 * w_dir.abs().max()
    rel = ((tabulated - direct).abs().max() / direct.abs().max()).item()
    assert 0 < rel < 1e-4, rel  # not identical (the paths differ), but equal to interpolation accuracy


def test_fused_cpu_convolution_equals_the_pytorch_path(monkeypatch):
    """The fused C++ loop (energy training on the CPU) against the PyTorch path, float64: energies
    and every parameter gradient agree to rounding."""
    from kimtrain.models.fused import can_fuse, fused_error
    frames = rattled(n=4, seed=3, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="schnet", **SMALL)
    graphs = prepare_graphs(frames, cfg, ["Si"])
    torch.manual_seed(0)
    model = new_model(cfg, 1, graphs, graphs).double()
    batch = collate(graphs, dtype=torch.float64)
    assert can_fuse(batch.positions, batch.positions), f"fused kernel unavailable: {fused_error()}"
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("KIMTRAIN_FUSED", fused)
        energy = model(batch)[:, 0]
        results.append((energy.detach(), torch.autograd.grad((energy ** 2).sum(), list(model.parameters()))))
    (e_fused, g_fused), (e_torch, g_torch) = results
    assert torch.allclose(e_fused, e_torch, rtol=1e-12, atol=0) and e_torch.std() > 1e-4
    for a, b in zip(g_fused, g_torch):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item())
