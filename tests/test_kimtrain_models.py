"""SchNet specifics: the direct filter path, tabulated filters, the fused CPU loop. (Properties
every model must have are in test_model_suite.py.)"""
import torch

from kimtrain.config import ModelConfig
from kimtrain.graphs import collate
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
