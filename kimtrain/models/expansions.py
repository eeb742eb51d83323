"""Distance and angle bases for message passing: a smooth polynomial envelope, a radial Bessel
basis on [0, cutoff] Å, and Legendre polynomials of cos(angle)."""
from __future__ import annotations

import math

import torch
from torch import nn


def envelope(x: torch.Tensor, p: int = 5) -> torch.Tensor:
    """Polynomial envelope of DimeNet/GemNet on x = d / cutoff: 1 at 0, zero value, slope and
    curvature at 1, zero beyond."""
    env = 1 - (p + 1) * (p + 2) / 2 * x ** p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return env * (x < 1)


class BesselBasis(nn.Module):
    """sin(n pi x) / x * envelope(x) with x = d / c, n = 1..n_radial (d, c in Å): DimeNet's radial
    basis without its sqrt(2/c^3) normalisation, so that values are of order one at bond lengths."""

    def __init__(self, n_radial: int, cutoff: float):
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("freq", math.pi * torch.arange(1, n_radial + 1, dtype=torch.float32))

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        x = d[:, None] / self.cutoff
        return torch.sin(self.freq * x) / x * envelope(x)


def legendre(x: torch.Tensor, n: int) -> torch.Tensor:
    """(len(x), n): P_0..P_{n-1} at x in [-1, 1], by Bonnet's recursion."""
    out = [torch.ones_like(x), x]
    for ell in range(1, n - 1):
        out.append(((2 * ell + 1) * x * out[ell] - ell * out[ell - 1]) / (ell + 1))
    return torch.stack(out[:n], dim=-1)
