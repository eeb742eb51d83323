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
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import MAX_Z, AtomisticModel
from .registry import ModelSpec, register


class CGCNN(AtomisticModel):
    def __init__(self, hidden: int = 128, n_layers: int = 5, n_rbf: int = 50, cutoff: float = 5.0, n_out: int = 1):
        super().__init__(hidden, n_out)
        self.n_layers, self.cutoff = n_layers, cutoff
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

    def atom_features(self, batch) -> torch.Tensor:
        d = batch.vectors().norm(dim=-1)
        i, j = batch.edge_i, batch.edge_j
        rbf = torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2)
        fcut = (0.5 * (torch.cos(d * (math.pi / self.cutoff)) + 1.0) * (d < self.cutoff))[:, None]
        edge = self.edge(rbf).split(2 * self.hidden, dim=-1)
        h = self.embedding(batch.numbers)
        for layer in range(self.n_layers):
            a, b = self.receiver[layer](h), self.sender[layer](h)
            agg = torch.zeros_like(h)
            for to, frm in ((i, j), (j, i)):
                z = a.index_select(0, to) + b.index_select(0, frm) + edge[layer]
                gate, core = z.chunk(2, dim=-1)
                agg.index_add_(0, to, torch.sigmoid(gate) * nn.functional.softplus(core) * fcut)
            h = h + agg / self.avg_neighbours.sqrt()
        return h


register(ModelSpec("cgcnn", "CGCNN: gated graph convolutions on Gaussian distances (Xie & Grossman 2018)",
                   lambda cfg, n_out, _: CGCNN(cfg.hidden, cfg.n_layers, cfg.n_rbf, cfg.cutoff, n_out)))
