"""SchNet specifics: the direct filter path, tabulated filters, the fused CPU loops. (Properties
every model must have are in test_model_suite.py.)"""
import torch

from kimtrain.config import ModelConfig
from kimtrain.data.graphs import collate
from kimtrain.models.factory import new_model, prepare_graphs

from conftest import TINY_MODEL as SMALL, assert_forces_match_finite_differences, rattled


def test_schnet_direct_filter_forces_equal_finite_differences():
    """The direct-filter path (the tabulated default is in the shared suite)."""
    assert_forces_match_finite_differences("schnet", filter="direct")


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
    assert can_fuse(batch.positions), f"fused kernel unavailable: {fused_error()}"
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("KIMTRAIN_FUSED", fused)
        energy = model(batch)[:, 0]
        results.append((energy.detach(), torch.autograd.grad((energy ** 2).sum(), list(model.parameters()))))
    (e_fused, g_fused), (e_torch, g_torch) = results
    assert torch.allclose(e_fused, e_torch, rtol=1e-12, atol=0) and e_torch.std() > 1e-4
    for a, b in zip(g_fused, g_torch):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item())


def test_fused_loops_have_exact_first_and_second_derivatives():
    """conv, scat and pdot (models/fused.py) on random pairs in float64: every input's first and
    second derivatives against finite differences (gradcheck, gradgradcheck); conv against the
    PyTorch formula."""
    from torch.autograd import gradcheck, gradgradcheck
    from kimtrain.models.fused import can_fuse, conv, fused_error, pdot, scat
    torch.manual_seed(0)
    n, f, g, e = 5, 3, 6, 9
    pairs = (torch.randint(n, (e,)), torch.randint(n, (e,)), torch.randint(g - 1, (e,)))
    i, j, k = pairs
    x, y, table = (torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in ((n, f), (n, f), (g, f)))
    a, b = (torch.randn(e, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert can_fuse(x), f"fused kernel unavailable: {fused_error()}"
    w = a[:, None] * table[k] + b[:, None] * table[k + 1]
    reference = torch.zeros(n, f, dtype=torch.float64).index_add(0, i, x[j] * w).index_add(0, j, x[i] * w)
    assert torch.allclose(conv(x, table, a, b, pairs), reference, rtol=1e-14, atol=1e-14)
    for op, inputs in ((lambda x, t, a, b: conv(x, t, a, b, pairs), (x, table, a, b)),
                       (lambda x, y, a, b: scat(x, y, a, b, pairs, g), (x, y, a, b)),
                       (lambda x, y, t: pdot(x, y, t, pairs), (x, y, table))):
        assert gradcheck(op, inputs) and gradgradcheck(op, inputs)


def test_fused_force_training_equals_the_pytorch_path(monkeypatch):
    """Training on forces through the fused loops: energies, forces and every parameter gradient
    of an energy + force loss (the double backward) equal the PyTorch path to rounding, float64."""
    from kimtrain.training.forces import energy_and_forces, force_mse
    frames = rattled(n=4, seed=5, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="schnet", **SMALL)
    graphs = prepare_graphs(frames, cfg, ["Si"])
    torch.manual_seed(0)
    model = new_model(cfg, 1, graphs, graphs).double()
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("KIMTRAIN_FUSED", fused)
        batch = collate(graphs, dtype=torch.float64)
        energy, forces = energy_and_forces(model, batch, training=True)
        loss = (energy ** 2).mean() + force_mse(forces, torch.zeros_like(forces))
        results.append((energy.detach(), forces.detach(), torch.autograd.grad(loss, list(model.parameters()))))
    (e_fused, f_fused, g_fused), (e_torch, f_torch, g_torch) = results
    assert torch.allclose(e_fused, e_torch, rtol=1e-12, atol=0)
    assert f_torch.abs().max() > 0.1 and torch.allclose(f_fused, f_torch, rtol=0, atol=1e-12 * f_torch.abs().max().item())
    for a, b in zip(g_fused, g_torch):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item())
