"""SchNet (Schütt et al. 2018) on half neighbour lists: each pair's filter is computed once.

Gaussian radial basis on [0, cutoff] A, cosine cutoff, continuous-filter convolutions with
shifted softplus, residual interaction blocks. The first filter layer of all blocks is one
fused matrix product; messages flow both ways along each stored pair.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import MAX_Z, AtomisticModel
from .common import ShiftedSoftplus, mlp


class SchNet(AtomisticModel):
    def __init__(self, hidden: int = 128, n_blocks: int = 5, n_rbf: int = 50, cutoff: float = 5.0, n_out: int = 1):
        super().__init__(hidden, n_out)
        self.n_blocks, self.cutoff = n_blocks, cutoff
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

    def atom_features(self, batch) -> torch.Tensor:
        d = batch.vectors().norm(dim=-1)
        rbf = torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2)
        fcut = 0.5 * (torch.cos(d * (math.pi / self.cutoff)) + 1.0) * (d < self.cutoff)
        filters = self.filter_act(self.filter_in(rbf)).split(self.hidden, dim=-1)
        i, j = batch.edge_i, batch.edge_j
        h = self.embedding(batch.numbers)
        for b in range(self.n_blocks):
            w = self.filter_out[b](filters[b]) * fcut[:, None]
            x = self.in2f[b](h)
            agg = torch.zeros_like(x).index_add_(0, i, x[j] * w).index_add_(0, j, x[i] * w)
            h = h + self.f2out[b](agg)
        return h
