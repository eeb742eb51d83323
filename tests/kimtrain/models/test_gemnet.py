"""GemNet's fused triplet loops (models/fused_triplets.py) against the PyTorch path: the sums and
their derivatives to any order, energies, forces and the gradients of force training.
(Enumeration and chunking are in test_triplets.py; properties every model must have in
test_model_suite.py.)"""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from kimtrain.config import ModelConfig
from kimtrain.data.graphs import collate
from kimtrain.models.factory import new_model, prepare_graphs

from conftest import TINY_MODEL as SMALL, rattled


def random_triplets(n_edges=30, n_b=11, n_triplets=120, seed=0):
    from kimtrain.models.fused_triplets import TripletIndex
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(n_edges, (n_triplets,), generator=g)
    b = torch.sort(torch.randint(n_b, (n_triplets,), generator=g)).values
    order = (torch.randperm(n_b, generator=g), torch.randperm(n_edges, generator=g))  # any visiting order
    return a, b, TripletIndex(a, b, n_b, n_edges, *order)


def test_triplet_loops_equal_their_formulas_and_are_differentiable_to_any_order():
    from kimtrain.models.fused_triplets import contract, interact, pair, spread
    a, b, idx = random_triplets()
    g = torch.Generator().manual_seed(1)
    E, nb, T, L, C, R = 30, 11, len(a), 4, 6, 3
    Y, G, P = (torch.randn(*s, dtype=torch.float64, generator=g).requires_grad_() for s in ((E, L, C), (nb, C), (T, L)))
    x, rbf, Wf = (torch.randn(*s, dtype=torch.float64, generator=g).requires_grad_() for s in ((E, C), (E, R), (R, L * C)))
    formulas = {
        "contract": (lambda Y, P: contract(Y, P, idx), (Y, P),
                     lambda Y, P: torch.zeros(nb, C, dtype=Y.dtype).index_add(0, b, (P[:, :, None] * Y[a]).sum(1))),
        "spread": (lambda G, P: spread(G, P, idx), (G, P),
                   lambda G, P: torch.zeros(E, L, C, dtype=G.dtype).index_add(0, a, P[:, :, None] * G[b][:, None, :])),
        "pair": (lambda Y, G: pair(Y, G, idx), (Y, G), lambda Y, G: (Y[a] * G[b][:, None, :]).sum(-1)),
        "interact": (lambda x, rbf, Wf, P: interact(x, rbf, Wf, P, idx), (x, rbf, Wf, P),
                     lambda x, rbf, Wf, P: contract((rbf @ Wf).view(E, L, C) * x[:, None, :], P, idx)),
    }
    for name, (op, args, formula) in formulas.items():
        assert torch.allclose(op(*args), formula(*args), rtol=1e-13, atol=1e-13), name
        assert gradcheck(op, args) and gradgradcheck(op, args), name
    # a third derivative is a call of the same loops too
    (gY,) = torch.autograd.grad(contract(Y, P, idx).pow(2).sum(), Y, create_graph=True)
    (gP,) = torch.autograd.grad(gY.pow(2).sum(), P, create_graph=True)
    (gG,) = torch.autograd.grad(gP.sin().sum(), Y)
    assert gG.abs().max() > 0


def gemnet_results(monkeypatch, fused: str, dtype, chunk=10**9):
    """Energies, forces and the parameter gradients of an energy + force loss, one batch."""
    from kimtrain.training.forces import energy_and_forces, force_mse
    monkeypatch.setenv("KIMTRAIN_FUSED", fused)
    frames = rattled(n=3, seed=6, amp=0.2, repeat=(2, 1, 1))
    cfg = ModelConfig(name="gemnet", **{**SMALL, "triplet_chunk": chunk})
    graphs = prepare_graphs(frames, cfg, ["Si"])
    torch.manual_seed(0)
    model = new_model(cfg, 1, graphs, graphs).to(dtype)
    batch = collate(graphs, dtype=dtype)
    energy, forces = energy_and_forces(model, batch, training=True)
    loss = (energy ** 2).mean() + force_mse(forces, torch.zeros_like(forces))
    params = list(model.parameters())  # the last block's edge update feeds nothing: no gradient
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return energy.detach(), forces.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("chunk", [10**9, 997])  # one chunk shared by the blocks; chunks and recomputation
def test_fused_force_training_equals_the_pytorch_path(monkeypatch, chunk):
    """float64: energies, forces and every parameter gradient of an energy + force loss (the double
    backward through the loops) equal the PyTorch path to rounding."""
    e_fused, f_fused, g_fused = gemnet_results(monkeypatch, "1", torch.float64, chunk)
    e_torch, f_torch, g_torch = gemnet_results(monkeypatch, "0", torch.float64, chunk)
    assert torch.allclose(e_fused, e_torch, rtol=1e-12, atol=0) and e_torch.std() > 1e-4
    assert f_torch.abs().max() > 1e-3 and torch.allclose(f_fused, f_torch, rtol=0, atol=1e-11 * f_torch.abs().max().item())
    assert sum(int(g.abs().max() > 0) for g in g_torch) > 50
    for a, b in zip(g_fused, g_torch):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11 * b.abs().max().item())


def test_fused_float32_equals_the_pytorch_path_to_1e_5(monkeypatch):
    """float32, as trained: energies to 1e-5 relative, forces to 1e-5 of their largest component."""
    e_fused, f_fused, _ = gemnet_results(monkeypatch, "1", torch.float32)
    e_torch, f_torch, _ = gemnet_results(monkeypatch, "0", torch.float32)
    assert torch.allclose(e_fused, e_torch, rtol=1e-5, atol=0)
    assert torch.allclose(f_fused, f_torch, rtol=0, atol=1e-5 * f_torch.abs().max().item())
