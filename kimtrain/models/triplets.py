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
