"""GemNet-T (Gasteiger et al. 2021): messages on directed edges, updated through triplets of edges
that share an atom, with energies summed over atoms and forces by autograd.

Per block: the edge messages m (hidden) pass through a radial gate, are projected down to
`triplet_size` features, and every triplet (k -> j, j -> i) sends them on weighted by a spherical
basis of (d_kj, angle kji); the sums come back up to hidden, both directions of a pair are mixed,
atoms collect their incoming messages through a radial gate, and edges read their two atoms back.
The spherical basis is P_l(cos angle) times a radial Bessel basis of d_kj (GemNet uses order-l
spherical Bessel functions; order 0 for every l here, which stays accurate in float32 at short
distances), with DimeNet's smooth envelope. Triplets run in chunks of `triplet_chunk` (see
triplets.py), and when a batch has more triplets than one chunk each block is recomputed during
backward instead of keeping its per-edge tensors, so memory is bounded whatever the number of
triplets; the paper's GemNet ran out of memory on ANI-Al for want of this. On the CPU the triplet
sums run as fused loops (fused_triplets.py: the radial part of the basis folded into a per-edge
tensor, P_l(cos) per triplet, shared by the blocks when the batch is one chunk); KIMTRAIN_FUSED=0
selects the PyTorch path. No torch_scatter or torch_sparse.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import MAX_Z, AtomisticModel
from .expansions import BesselBasis, legendre
from .common import ShiftedSoftplus, mlp
from .registry import ModelSpec, register
from .fused_triplets import can_fuse_triplets
from .triplets import Triplets

INV_SQRT2 = 1 / math.sqrt(2.0)


class Block(nn.Module):
    def __init__(self, hidden: int, n_radial: int, n_spherical: int, triplet_size: int):
        super().__init__()
        self.act = ShiftedSoftplus()
        self.n_spherical = n_spherical
        self.pre = nn.Linear(hidden, hidden)
        self.radial_gate = nn.Linear(n_radial, hidden, bias=False)
        self.down = nn.Linear(hidden, triplet_size, bias=False)
        self.spherical = nn.Linear(n_spherical * n_radial, triplet_size, bias=False)
        self.up = nn.Linear(triplet_size, hidden, bias=False)
        self.skip = nn.Linear(hidden, hidden)
        self.residual = mlp([hidden, hidden, hidden])
        self.atom_gate = nn.Linear(n_radial, hidden, bias=False)
        self.atom_update = mlp([hidden, hidden, hidden])
        self.edge_update = nn.Linear(3 * hidden, hidden)

    def triplet_rows(self, a, b, x_down, u, d, rbf):
        """One row per triplet: x_down of edge a weighted by the spherical basis of (d_a, angle(a, b))."""
        cos = -(u.index_select(0, a) * u.index_select(0, b)).sum(-1) / (d.index_select(0, a) * d.index_select(0, b))
        basis = legendre(cos.clamp(-1.0, 1.0), self.n_spherical)[:, :, None] * rbf.index_select(0, a)[:, None, :]
        return x_down.index_select(0, a) * self.spherical(basis.flatten(1))

    def fused_triplets(self, x_down, rbf, unit, triplets):
        """The same sums through the fused loops: the radial part of the basis is folded into a
        per-edge (E, n_spherical, triplet_size) tensor, and the triplets carry only P_l(cos)."""
        w = self.spherical.weight.view(-1, self.n_spherical, rbf.shape[1])  # (C, L, R)
        return triplets.contract(x_down, rbf, w.permute(2, 1, 0).flatten(1), unit, self.n_spherical)

    def forward(self, h, m, rbf, u, d, graph):
        triplets, target, source, unit = graph
        x = self.act(self.pre(m)) * self.radial_gate(rbf)
        x_down = self.act(self.down(x))
        if unit is not None:
            agg = self.fused_triplets(x_down, rbf, unit, triplets)
        else:
            agg = triplets.aggregate(self.triplet_rows, x_down.shape[1], x_down, u, d, rbf)
        x_up = self.act(self.up(agg))
        x_up = (x_up + x_up.index_select(0, triplets.reverse)) * INV_SQRT2  # both directions of each pair
        m = (self.act(self.skip(m)) + x_up) * INV_SQRT2
        m = (m + self.residual(m)) * INV_SQRT2
        incoming = torch.zeros_like(h).index_add_(0, target, m * self.atom_gate(rbf))
        h = (h + self.atom_update(incoming)) * INV_SQRT2
        both = torch.cat([h.index_select(0, target), h.index_select(0, source), m], dim=-1)
        m = (m + self.act(self.edge_update(both))) * INV_SQRT2
        return h, m


class GemNet(AtomisticModel):
    def __init__(self, hidden: int = 128, n_blocks: int = 5, n_radial: int = 6, n_spherical: int = 7,
                 cutoff: float = 5.0, n_out: int = 1, triplet_size: int = 64, triplet_chunk: int = 4_000_000):
        super().__init__(hidden, n_out)
        self.triplet_chunk = triplet_chunk
        self.embedding = nn.Embedding(MAX_Z, hidden)
        self.rbf = BesselBasis(n_radial, cutoff)
        self.edge_embedding = mlp([2 * hidden + n_radial, hidden], final_activation=True)
        self.blocks = nn.ModuleList(Block(hidden, n_radial, n_spherical, triplet_size) for _ in range(n_blocks))

    def atom_features(self, batch) -> torch.Tensor:
        vec = batch.vectors()
        u = torch.cat([vec, -vec])  # directed edges: from target to source, Å
        target = torch.cat([batch.edge_i, batch.edge_j])
        source = torch.cat([batch.edge_j, batch.edge_i])
        d = u.norm(dim=-1)
        rbf = self.rbf(d)
        h = self.embedding(batch.numbers)
        m = self.edge_embedding(torch.cat([h.index_select(0, target), h.index_select(0, source), rbf], dim=-1))
        triplets = Triplets(target, source, len(h), self.triplet_chunk)
        unit = u / d[:, None] if can_fuse_triplets(h) else None  # CPU: the fused triplet loops
        graph = (triplets, target, source, unit)
        # a batch with more triplets than one chunk is large: keep only each block's inputs and
        # recompute the block during backward (same values, about one more forward pass of time)
        recompute = torch.is_grad_enabled() and triplets.n_triplets > self.triplet_chunk
        for block in self.blocks:
            h, m = (checkpoint(block, h, m, rbf, u, d, graph, use_reentrant=False) if recompute
                    else block(h, m, rbf, u, d, graph))
        return h


register(ModelSpec("gemnet", "GemNet-T: directed-edge messages through triplets with a spherical basis "
                             "(Gasteiger et al. 2021), triplets in bounded-memory chunks",
                   lambda cfg, n_out, _: GemNet(cfg.hidden, cfg.n_layers, cfg.n_radial, cfg.n_spherical, cfg.cutoff,
                                                n_out, cfg.triplet_size, cfg.triplet_chunk)))
