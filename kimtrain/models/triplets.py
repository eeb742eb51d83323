"""Triplets of directed edges for angle-aware message passing, enumerated and used in chunks.

Directed edges come from a half neighbour list of P pairs: edge e < P points from atom j (source)
to atom i (target) of pair e, edge e + P the other way; u_e (Å) is the vector from target to source.
A triplet (a, b) feeds edge a = k -> j into edge b = j -> i, for every a with target j except b's
own reverse (k = i through the same pair; other periodic images of i do count). Triplets are
enumerated for a range of b at a time and summed into b, so memory grows with the chunk, not with
the number of triplets; with gradients on, each chunk is recomputed during backward
(torch.utils.checkpoint) instead of keeping its tensors.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .expansions import legendre
from .fused_triplets import TripletIndex, interact


class Triplets:
    def __init__(self, target: torch.Tensor, source: torch.Tensor, n_atoms: int, chunk: int):
        n_edges = len(target)
        self.reverse = torch.arange(n_edges, device=target.device).roll(n_edges // 2)
        self.source = source
        self.order = torch.argsort(target, stable=True)  # incoming edges grouped by target atom
        count = torch.bincount(target, minlength=n_atoms)
        self.start = torch.cumsum(count, 0) - count
        self.per_b = count[source]  # candidate a per b (its reverse included, dropped later)
        cum = torch.cumsum(self.per_b, 0)
        total = int(cum[-1]) if n_edges else 0
        self.n_triplets = total - n_edges
        # chunk boundaries over b: about `chunk` candidates each
        marks = torch.arange(chunk, total, chunk, device=cum.device) if total > chunk else cum[:0]
        bounds = [0] + sorted({int(c) + 1 for c in torch.searchsorted(cum, marks).tolist()} - {n_edges}) + [n_edges]
        self.ranges = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        self._shared = None  # one chunk: its index and Legendre values, shared by every block

    def indices(self, lo: int, hi: int):
        """(a, b) of the triplets whose b lies in [lo, hi)."""
        rep = self.per_b[lo:hi]
        b = torch.repeat_interleave(torch.arange(lo, hi, device=rep.device), rep)
        k = torch.arange(len(b), device=rep.device) - torch.repeat_interleave(torch.cumsum(rep, 0) - rep, rep)
        a = self.order[self.start[self.source[b]] + k]
        keep = a != self.reverse[b]
        return a[keep], b[keep]

    def aggregate(self, fn, width: int, *tensors) -> torch.Tensor:
        """sum over a of fn(a, b, *tensors) ((triplets, width) rows) into each b: (n_edges, width)."""
        def chunk(lo, hi, *ts):
            a, b = self.indices(lo, hi)
            rows = fn(a, b, *ts)
            return rows.new_zeros((hi - lo, rows.shape[1])).index_add_(0, b - lo, rows)
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        parts = [checkpoint(chunk, lo, hi, *tensors, use_reentrant=False) if grad else chunk(lo, hi, *tensors)
                 for lo, hi in self.ranges]
        return torch.cat(parts) if parts else tensors[0].new_zeros((len(self.source), width))

    def contract(self, x: torch.Tensor, rbf: torch.Tensor, Wf: torch.Tensor, unit: torch.Tensor,
                 n_spherical: int) -> torch.Tensor:
        """(n_edges, C): sum over the triplets (a, b) of each b of sum_l P_l(cos angle(a, b)) Y[a, l, :]
        with Y[a, l, c] = x[a, c] (rbf @ Wf)[a, l C + c], x (n_edges, C), rbf (n_edges, R), Wf (R, L C)
        and unit (n_edges, 3) the edges' unit vectors; the fused loops of fused_triplets.py. With one
        chunk, its index and P are built once for all blocks."""
        def basis(lo, hi, unit):
            a, b = self.indices(lo, hi)
            cos = -(unit.index_select(0, a) * unit.index_select(0, b)).sum(-1)
            border = torch.argsort(self.source[lo:hi], stable=True)  # b by source atom, a by target atom
            idx = TripletIndex(a, b - lo, hi - lo, len(self.source), border, self.order)
            return idx, legendre(cos.clamp(-1.0, 1.0), n_spherical)

        def chunk(lo, hi, *ts):
            idx, P = basis(lo, hi, ts[-1])
            return interact(*ts[:-1], P, idx)

        tensors = (x, rbf, Wf, unit)
        if not self.ranges:
            return x.new_zeros(x.shape)
        if len(self.ranges) == 1:
            if self._shared is None:
                self._shared = basis(*self.ranges[0], unit)
            idx, P = self._shared
            return interact(x, rbf, Wf, P, idx)
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        return torch.cat([checkpoint(chunk, lo, hi, *tensors, use_reentrant=False) if grad else chunk(lo, hi, *tensors)
                          for lo, hi in self.ranges])
