"""Losses: masked energy MSE and the Tukey biweight for augmented (EIP) labels."""
from __future__ import annotations

import torch

TUKEY_C = 4.6851
MAD_SCALE = 1.4826


def residuals(pred, target, n_atoms, per_atom: bool = True):
    """Residuals (B, k) in eV/atom (per_atom) or eV; NaN targets give NaN residuals."""
    r = pred - target
    return r / n_atoms[:, None].to(r.dtype) if per_atom else r


def masked_mse(pred, target, n_atoms, per_atom: bool = True):
    """Mean squared residual over finite targets."""
    r = residuals(pred, target, n_atoms, per_atom)
    mask = torch.isfinite(r)
    if not mask.any():
        return pred.sum() * 0.0
    return (r[mask] ** 2).mean()


def finite_mse(r):
    """Mean of the squared finite residuals (0 when none is finite): plain MSE in place of Tukey."""
    r = r[torch.isfinite(r)]
    return (r ** 2).mean() if r.numel() else r.sum() * 0.0


def tukey_biweight(r, c: float = TUKEY_C):
    """Tukey's biweight loss of residuals r, scaled by s = 1.4826 * median absolute residual of the batch.

    rho(u) = c^2/6 * (1 - (1 - (u/c)^2)^3) for |u| <= c, else c^2/6, with u = r/s: labels far off
    count little. The result is multiplied by 2 s^2 (s detached), so that for small residuals it
    equals the squared error r^2 and alpha weighs augmented labels against the DFT MSE in the same
    units; without it the term would be about 1/(2 s^2) times larger (200x at s = 0.05 eV/atom).
    """
    r = r[torch.isfinite(r)]
    if r.numel() == 0:
        return r.sum() * 0.0
    scale = MAD_SCALE * r.detach().abs().median().clamp_min(1e-8)
    u = (r / scale).clamp(-c, c)
    return (2.0 * scale ** 2 * c ** 2 / 6.0 * (1.0 - (1.0 - (u / c) ** 2) ** 3)).mean()
