"""CGCNN specifics: the tabulated edge term against direct evaluation, and the fused CPU loops
(models/fused_gate.py) against the PyTorch path, with exact first and second derivatives.
(Properties every model must have, forces against finite differences included, are in
test_model_suite.py.)"""
import pytest
import torch

from kimtrain.config import ModelConfig
from kimtrain.data.graphs import collate
from kimtrain.models.factory import new_model, prepare_graphs

from conftest import TINY_MODEL as SMALL, assert_forces_match_finite_differences, rattled


def test_cgcnn_direct_edges_forces_equal_finite_differences():
    """The direct path (the tabulated default is in the shared suite)."""
    assert_forces_match_finite_differences("cgcnn", filter="direct")


def test_tabulated_edges_match_direct_evaluation(monkeypatch):
    """The edge term interpolated from 2,048 grid points on [0, 5] A (the default) against W_e rbf(d)
    on every pair, float32 as in training: edge terms within 1e-4 of their largest value, atom
    features within 1e-4 relative, on the fused and on the PyTorch path."""
    frames = rattled(n=3, seed=11, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="cgcnn")
    graphs = prepare_graphs(frames, cfg, ["Si"])
    torch.manual_seed(0)
    model = new_model(cfg, 1, graphs, graphs).eval()
    batch = collate(graphs)
    with torch.no_grad():
        d = batch.vectors().norm(dim=-1)
        tables, k, t = model.edge_tables(d)
        for tab, direct in zip(tables, model.edge_values(d)):
            interpolated = torch.lerp(tab[k], tab[k + 1], t[:, None])
            assert (interpolated - direct).abs().max() <= 1e-4 * direct.abs().max()
        features = {}
        for fused in ("1", "0"):
            monkeypatch.setenv("KIMTRAIN_FUSED", fused)
            features[fused] = model.atom_features(batch)
        model.filter = "direct"
        direct = model.atom_features(batch)
    for tabulated in features.values():
        rel = ((tabulated - direct).abs().max() / direct.abs().max()).item()
        assert 0 < rel < 1e-4, rel  # not identical (the paths differ), but equal to interpolation accuracy


def test_gate_loops_have_exact_first_and_second_derivatives():
    """gate_conv on random pairs in float64: equal to the PyTorch formula; first and second
    derivatives in every input against finite differences (gradcheck, gradgradcheck); a third
    derivative is refused, not wrong."""
    from torch.autograd import gradcheck, gradgradcheck
    from kimtrain.models.fused import fused_error
    from kimtrain.models.fused_gate import NAME, can_fuse_gate, gate_conv
    torch.manual_seed(0)
    n, f, g, e = 6, 3, 8, 11
    i, j, k = torch.randint(n, (e,)), torch.randint(n, (e,)), torch.randint(g - 1, (e,))
    a, b, table = (torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in ((n, 2 * f), (n, 2 * f), (g, 2 * f)))
    t, c = (torch.rand(e, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert can_fuse_gate(a), f"fused kernel unavailable: {fused_error(NAME)}"
    z_edge = torch.lerp(table[k], table[k + 1], t[:, None])
    reference = torch.zeros(n, f, dtype=torch.float64)
    for to, frm in ((i, j), (j, i)):
        gate, core = (a[to] + b[frm] + z_edge).chunk(2, dim=-1)
        reference = reference.index_add(0, to, torch.sigmoid(gate) * torch.nn.functional.softplus(core) * c[:, None])
    op = lambda a, b, table, t, c: gate_conv(a, b, table, i, j, k, t, c)
    assert torch.allclose(op(a, b, table, t, c), reference, rtol=1e-14, atol=1e-14)
    assert gradcheck(op, (a, b, table, t, c)) and gradgradcheck(op, (a, b, table, t, c))
    (ga,) = torch.autograd.grad(op(a, b, table, t, c).sum(), a, create_graph=True)
    (gga,) = torch.autograd.grad(ga.pow(2).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(gga.sum(), a)


def test_gate_loops_in_float32_equal_float64_to_rounding():
    """float32, as in training, runs its own exp and log1p (vectorised inline, models/fused_gate.py):
    the output and first and second derivatives equal the float64 loops (the library's exp and
    log1p) to float32 rounding, for gate and core arguments from -120 to 120 (past exp's clamp at
    -87 and softplus's linear range)."""
    from kimtrain.models.fused_gate import gate_conv
    torch.manual_seed(1)
    n, f, g, e = 40, 37, 16, 300
    i, j, k = torch.randint(n, (e,)), torch.randint(n, (e,)), torch.randint(g - 1, (e,))
    a, b, table = (40 * torch.randn(*s, dtype=torch.float64) for s in ((n, 2 * f), (n, 2 * f), (g, 2 * f)))
    t, c = torch.rand(e, dtype=torch.float64), torch.rand(e, dtype=torch.float64)
    weights = torch.randn(n, f, dtype=torch.float64)

    def outputs(dtype):
        x = [v.to(dtype).requires_grad_() for v in (a, b, table, t, c)]
        y = gate_conv(*x[:3], i, j, k, *x[3:])
        grads = torch.autograd.grad((y * weights.to(dtype)).sum(), x, create_graph=True)
        second = torch.autograd.grad(sum(d.pow(2).sum() for d in grads), x)
        return [y, *grads, *second]

    for low, high in zip(outputs(torch.float32), outputs(torch.float64)):
        assert torch.allclose(low.detach().double(), high.detach(), rtol=2e-5, atol=2e-5 * float(high.detach().abs().max()))


def test_fused_force_training_equals_the_pytorch_path(monkeypatch):
    """Training on forces through the fused loops: energies, forces and every parameter gradient
    of an energy + force loss (the double backward) equal the PyTorch path to rounding, float64."""
    from kimtrain.training.forces import energy_and_forces, force_mse
    frames = rattled(n=4, seed=5, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="cgcnn", **SMALL)
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
    assert torch.allclose(e_fused, e_torch, rtol=1e-12, atol=0) and e_torch.std() > 1e-4
    assert f_torch.abs().max() > 0.01 and torch.allclose(f_fused, f_torch, rtol=0, atol=1e-12 * f_torch.abs().max().item())
    for a, b in zip(g_fused, g_torch):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item())
