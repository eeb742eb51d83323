"""SchNet (Schütt et al. 2018) on half neighbour lists: each pair's filter is computed once.

Gaussian radial basis on [0, cutoff] Å, cosine cutoff, continuous-filter convolutions with
shifted softplus, residual interaction blocks; messages flow both ways along each stored pair.
The filters depend on distance only, so by default ("tabulated") the filter network runs on a
grid of `filter_grid` distances once per forward pass and each pair interpolates linearly between
grid points; "direct" runs the filter network on every pair. Both are differentiable in the
positions (forces by autograd).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import MAX_Z, AtomisticModel
from .common import ShiftedSoftplus, cached_in_eval, mlp
from .fused import can_fuse, fused_conv
from .registry import ModelSpec, register


class SchNet(AtomisticModel):
    def __init__(self, hidden: int = 128, n_blocks: int = 5, n_rbf: int = 50, cutoff: float = 5.0, n_out: int = 1,
                 filter: str = "tabulated", filter_grid: int = 2048):
        super().__init__(hidden, n_out)
        if filter not in ("tabulated", "direct"):
            raise ValueError(f"SchNet filter must be 'tabulated' or 'direct', got {filter!r}")
        self.n_blocks, self.cutoff, self.filter, self.filter_grid = n_blocks, cutoff, filter, filter_grid
        self.embedding = nn.Embedding(MAX_Z, hidden)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 0.5 / (cutoff / (n_rbf - 1)) ** 2
        self.filter_in = nn.Linear(n_rbf, hidden * n_blocks)
        self.filter_act = ShiftedSoftplus()
        self.filter_out = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_blocks))
        self.in2f = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(n_blocks))
        self.f2out = nn.ModuleList(mlp([hidden, hidden, hidden]) for _ in range(n_blocks))
        for layer in self.modules():  # SchNet's usual initialisation: Xavier weights, zero biases
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def filter_values(self, d: torch.Tensor) -> list[torch.Tensor]:
        """Filter network at distances d (M,) Å, cosine cutoff applied: one (M, hidden) tensor per block."""
        rbf = torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2)
        fcut = 0.5 * (torch.cos(d * (math.pi / self.cutoff)) + 1.0) * (d < self.cutoff)
        first = self.filter_act(self.filter_in(rbf)).split(self.hidden, dim=-1)
        return [self.filter_out[b](first[b]) * fcut[:, None] for b in range(self.n_blocks)]

    def filter_tables(self, d: torch.Tensor):
        """The filter network on the grid, one (filter_grid, hidden) table per block, and each
        pair's place on the grid: index k (E,) and fraction t (E,) between rows k and k + 1."""
        g = self.filter_grid
        u = (d * ((g - 1) / self.cutoff)).clamp(0.0, g - 1.0)
        k = u.detach().floor().long().clamp(max=g - 2)
        return self.grid_tables(d.device, d.dtype), k, u - k

    def grid_tables(self, device, dtype) -> list[torch.Tensor]:
        """The filter tables on the grid (kept between calls in eval mode: `cached_in_eval`; in
        training recomputed with their graph)."""
        grid = lambda: torch.linspace(0.0, self.cutoff, self.filter_grid, device=device, dtype=dtype)
        params = [self.filter_in.weight, self.filter_in.bias, *(p for m in self.filter_out for p in m.parameters())]
        return cached_in_eval(self, params, (device, dtype), lambda: self.filter_values(grid()))

    def pair_filters(self, d: torch.Tensor):
        """Per-pair filters for each block (E, hidden), evaluated directly or interpolated from the grid."""
        if self.filter == "direct":
            return self.filter_values(d)
        tables, k, t = self.filter_tables(d)
        return [torch.lerp(tab.index_select(0, k), tab.index_select(0, k + 1), t[:, None]) for tab in tables]

    def atom_features(self, batch) -> torch.Tensor:
        d = batch.vectors().norm(dim=-1)
        i, j = batch.edge_i, batch.edge_j
        h = self.embedding(batch.numbers)
        if self.filter == "tabulated" and can_fuse(h):  # CPU: one fused loop per block (forces too)
            tables, k, t = self.filter_tables(d)
            for b, table in enumerate(tables):
                h = h + self.f2out[b](fused_conv(self.in2f[b](h), table, i, j, k, t))
            return h
        for b, w in enumerate(self.pair_filters(d)):
            x = self.in2f[b](h)
            # index_select, not x[j]: its backward is index_add_, far faster on CPU than advanced indexing's
            agg = torch.zeros_like(x).index_add_(0, i, x.index_select(0, j) * w)
            agg.index_add_(0, j, x.index_select(0, i) * w)
            h = h + self.f2out[b](agg)
        return h


register(ModelSpec("schnet", "SchNet: continuous-filter convolutions on Gaussian distances (Schütt et al. 2018)",
                   lambda cfg, n_out, _: SchNet(cfg.hidden, cfg.n_layers, cfg.n_rbf, cfg.cutoff, n_out,
                                                cfg.filter, cfg.filter_grid)))
