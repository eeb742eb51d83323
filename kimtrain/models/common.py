"""Building blocks shared by the models: shifted softplus, MLPs, per-configuration sums."""
from __future__ import annotations

import math

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """ssp(x) = softplus(x) - ln 2 (zero at zero, as in SchNet)."""

    def forward(self, x):
        return nn.functional.softplus(x) - math.log(2.0)


def mlp(sizes, final_activation: bool = False) -> nn.Sequential:
    """Linear layers with shifted-softplus activations between them."""
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2 or final_activation:
            layers.append(ShiftedSoftplus())
    return nn.Sequential(*layers)


def sum_by(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of `values` into n groups given by `index` (no torch_scatter needed)."""
    out = values.new_zeros((n,) + values.shape[1:])
    return out.index_add_(0, index, values)
