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


def cached_in_eval(module: nn.Module, params, extra_key, compute):
    """compute() (tensors of a grid), recomputed with their graph in training mode, where the weights
    change each step; in eval mode computed once per set of weights (keyed by the parameters'
    storage and in-place versions, and extra_key) and kept without a graph, so inference, MD and
    relaxations skip the network that fills the grid."""
    if module.training:
        module._grid_cache = None
        return compute()
    key = (extra_key, tuple((p.data_ptr(), p._version) for p in params))
    cached = getattr(module, "_grid_cache", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, [t.detach() for t in compute()])
        module._grid_cache = cached
    return cached[1]
