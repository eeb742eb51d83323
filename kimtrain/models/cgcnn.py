"""CGCNN (Xie & Grossman 2018) with the gated convolution of PyG's `CGConv`, on half neighbour lists.

Atoms start from a learned embedding of Z. Each of `n_layers` convolutions adds to atom i

    sum_j  sigmoid(z_ij W_f + b_f) * softplus(z_ij W_s + b_s) * fcut(d_ij),   z_ij = [h_i, h_j, e_ij],

where e_ij is the Gaussian expansion of the distance d_ij (n_rbf centres on [0, cutoff] Å).
Departures from CGConv: the cosine cutoff fcut makes messages vanish at the cutoff (forces and
MD need it); there is no batch norm (energies would depend on the batch); instead the sum of
messages, all positive, is divided by the square root of the average number of neighbours in the
training graphs (a constant fitted once and saved, as NequIP does with avg_num_neighbors), so
atom features grow less with the cutoff and density.
The linear maps of z_ij are split by block: the h_i and h_j parts run per atom, the e_ij part per
pair, so no (pairs x (2 hidden + n_rbf)) concatenation is built. Each stored pair sends messages
both ways. Energy by sum readout; forces by autograd.

The edge part depends on the distance only, so by default ("tabulated") it is computed on a grid
of `filter_grid` distances once per forward pass (kept between calls in eval mode) and each pair
interpolates linearly between grid points, as SchNet's filters do; "direct" evaluates it on every
pair. On the CPU the tabulated convolution runs as fused loops (`fused_gate.py`: gather, gate,
core, cutoff and sum in one pass, twice differentiable); KIMTRAIN_FUSED=0 selects the PyTorch path.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import MAX_Z, AtomisticModel
from .common import cached_in_eval
from .fused_gate import can_fuse_gate, gate_conv
from .registry import ModelSpec, register


class CGCNN(AtomisticModel):
    def __init__(self, hidden: int = 128, n_layers: int = 5, n_rbf: int = 50, cutoff: float = 5.0, n_out: int = 1,
                 filter: str = "tabulated", filter_grid: int = 2048):
        super().__init__(hidden, n_out)
        if filter not in ("tabulated", "direct"):
            raise ValueError(f"CGCNN filter must be 'tabulated' or 'direct', got {filter!r}")
        self.n_layers, self.cutoff, self.filter, self.filter_grid = n_layers, cutoff, filter, filter_grid
        self.embedding = nn.Embedding(MAX_Z, hidden)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 0.5 / (cutoff / (n_rbf - 1)) ** 2
        # per layer, gate and core halves: receiver part (with the bias) and sender part of W, then the edge part
        self.receiver = nn.ModuleList(nn.Linear(hidden, 2 * hidden) for _ in range(n_layers))
        self.sender = nn.ModuleList(nn.Linear(hidden, 2 * hidden, bias=False) for _ in range(n_layers))
        self.edge = nn.Linear(n_rbf, 2 * hidden * n_layers, bias=False)
        self.register_buffer("avg_neighbours", torch.tensor(1.0))  # fitted on training inputs (fit_inputs)

    def fit_inputs(self, graphs):
        """Average neighbours per atom in the training graphs: sums of messages are divided by its square root."""
        pairs, atoms = sum(len(g.edge_i) for g in graphs), sum(len(g.numbers) for g in graphs)
        self.avg_neighbours.fill_(max(2.0 * pairs / max(atoms, 1), 1.0))

    def edge_values(self, d: torch.Tensor) -> list[torch.Tensor]:
        """The edge term W_e rbf(d) at distances d (M,) Å: one (M, 2 hidden) tensor per layer."""
        rbf = torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2)
        return list(self.edge(rbf).split(2 * self.hidden, dim=-1))

    def edge_tables(self, d: torch.Tensor):
        """The edge term on the grid, one (filter_grid, 2 hidden) table per layer, and each pair's
        place on the grid: row k (E,) and fraction t (E,) between rows k and k + 1."""
        g = self.filter_grid
        u = (d * ((g - 1) / self.cutoff)).clamp(0.0, g - 1.0)
        k = u.detach().floor().long().clamp(max=g - 2)
        grid = lambda: torch.linspace(0.0, self.cutoff, g, device=d.device, dtype=d.dtype)
        tables = cached_in_eval(self, [self.edge.weight], (d.device, d.dtype), lambda: self.edge_values(grid()))
        return tables, k, u - k

    def atom_features(self, batch) -> torch.Tensor:
        d = batch.vectors().norm(dim=-1)
        i, j = batch.edge_i, batch.edge_j
        fcut = 0.5 * (torch.cos(d * (math.pi / self.cutoff)) + 1.0) * (d < self.cutoff)
        h = self.embedding(batch.numbers)
        if self.filter == "direct":
            edges = self.edge_values(d)
        else:
            tables, k, t = self.edge_tables(d)
            if can_fuse_gate(h):  # CPU: one fused loop per layer (forces too)
                for layer, table in enumerate(tables):
                    agg = gate_conv(self.receiver[layer](h), self.sender[layer](h), table, i, j, k, t, fcut)
                    h = h + agg / self.avg_neighbours.sqrt()
                return h
            edges = [torch.lerp(tab.index_select(0, k), tab.index_select(0, k + 1), t[:, None]) for tab in tables]
        for layer in range(self.n_layers):
            a, b = self.receiver[layer](h), self.sender[layer](h)
            agg = torch.zeros_like(h)
            for to, frm in ((i, j), (j, i)):
                z = a.index_select(0, to) + b.index_select(0, frm) + edges[layer]
                gate, core = z.chunk(2, dim=-1)
                agg.index_add_(0, to, torch.sigmoid(gate) * nn.functional.softplus(core) * fcut[:, None])
            h = h + agg / self.avg_neighbours.sqrt()
        return h


register(ModelSpec("cgcnn", "CGCNN: gated graph convolutions on Gaussian distances (Xie & Grossman 2018)",
                   lambda cfg, n_out, _: CGCNN(cfg.hidden, cfg.n_layers, cfg.n_rbf, cfg.cutoff, n_out,
                                               cfg.filter, cfg.filter_grid)))
