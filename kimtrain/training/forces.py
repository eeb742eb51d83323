"""Forces: the negative gradient of the predicted energy with respect to positions (eV/Å), their
loss and their metrics. Only models registered with forces=True (SchNet, CGCNN, GemNet) have them."""
from __future__ import annotations

import numpy as np
import torch

from ..data.graphs import in_batches


def energy_and_forces(model, batch, training: bool = False):
    """(energies (B, k) in eV, forces (N, k, 3) in eV/Å): one gradient per output head.

    training=True keeps the graph of the forces, so a loss on them trains the weights (a double
    backward); each extra head costs one more backward pass.
    """
    positions = batch.positions
    if not positions.requires_grad:
        positions.requires_grad_(True)
    with torch.enable_grad():
        energy = model(batch)
        k = energy.shape[1]
        grads = [torch.autograd.grad(energy[:, h].sum(), positions, create_graph=training,
                                     retain_graph=training or h < k - 1)[0] for h in range(k)]
    return energy, -torch.stack(grads, dim=1)


def force_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared force-component error (eV²/Å²) over finite targets; NaN targets are masked
    (missing forces, EIP entries whose status is not ok, atoms over the force limit)."""
    mask = torch.isfinite(target)
    if not mask.any():
        return pred.sum() * 0.0
    return ((pred[mask] - target[mask]) ** 2).mean()


def energy_and_projected_force_mse(model, batch, generator: torch.Generator):
    """(energies (B, k) eV, force loss) for k heads at the cost of one head's forces.

    Each configuration draws signs c_h = ±1 for its heads (0 for a head without labels there); the
    forces of the combined energy sum_h c_h E_h are fitted to sum_h c_h F_h. The squared error of
    that combination, divided by the number of signed heads, has the mean squared force error
    over the heads as its expectation (the cross terms vanish), so one backward pass replaces k.
    An atom where a signed head's force is masked (NaN) is left out for that step.
    """
    positions = batch.positions
    if not positions.requires_grad:
        positions.requires_grad_(True)
    target = batch.forces                                   # (N, k, 3)
    energy = model(batch)                                   # (B, k)
    labelled = torch.isfinite(target).all(dim=2)            # (N, k) atom-head
    has = torch.zeros(batch.n_configs, energy.shape[1], dtype=energy.dtype, device=energy.device).index_add_(
        0, batch.batch, labelled.to(energy.dtype)) > 0      # (B, k) heads with labels per configuration
    signs = torch.randint(0, 2, energy.shape, generator=generator).to(energy.device) * 2.0 - 1.0
    signs = signs * has                                     # (B, k)
    (grad,) = torch.autograd.grad((signs * energy).sum(), positions, create_graph=True)
    atom_signs = signs[batch.batch]                         # (N, k)
    combined = (atom_signs[:, :, None] * torch.nan_to_num(target)).sum(dim=1)    # (N, 3)
    usable = ~((atom_signs != 0) & ~labelled).any(dim=1) & (atom_signs != 0).any(dim=1)
    if not usable.any():
        return energy, energy.sum() * 0.0
    n_signed = (atom_signs != 0).sum(dim=1).clamp_min(1)[:, None]
    err = (-grad - combined) ** 2 / n_signed
    return energy, err[usable].mean()


def predict_forces(model, graphs, batch_size: int = 32, device=None):
    """(energies (n, k) eV, list of per-configuration forces (n_i, k, 3) eV/Å), in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    energies, forces = [], []
    for part, batch in in_batches(graphs, batch_size, device):
        e, f = energy_and_forces(model, batch)
        energies.append(e.detach().double().cpu().numpy())
        f = f.detach().double().cpu().numpy()
        bounds = np.cumsum([0] + [len(g.numbers) for g in part])
        forces += [f[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    k = getattr(model, "n_out", 1)
    return (np.concatenate(energies) if energies else np.zeros((0, k))), forces


def force_metrics(pred: list, target: list) -> dict:
    """Force MAE and RMSE (eV/Å) over the finite components of the first head."""
    p = np.concatenate([np.asarray(f).reshape(len(f), -1, 3)[:, 0] for f in pred]) if pred else np.zeros((0, 3))
    t = np.concatenate([np.asarray(f).reshape(len(f), -1, 3)[:, 0] for f in target]) if target else np.zeros((0, 3))
    ok = np.isfinite(t)
    if not ok.any():
        return {}
    err = p[ok] - t[ok]
    return {"force_mae": float(np.abs(err).mean()), "force_rmse": float(np.sqrt((err ** 2).mean()))}
