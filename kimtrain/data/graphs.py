"""Configurations as graphs: periodic half neighbour lists from vesin, cached, batched by concatenation.

Each unordered pair within the cutoff is stored once (i, j, shift); models use it in both
directions. Distances are recomputed in torch from positions and cell shifts, so forces come
from autograd. Units: positions and cutoff in A, energies in eV.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kimlabel import replacing

GRAPH_FORMAT = 1  # bump when the cached layout changes


@dataclass
class Graph:
    numbers: np.ndarray    # (n,) atomic numbers
    positions: np.ndarray  # (n, 3) A
    edge_i: np.ndarray     # (E,) first atom of each pair
    edge_j: np.ndarray     # (E,) second atom
    shift: np.ndarray      # (E, 3) A, cartesian cell offset added to positions[j]
    features: np.ndarray | None = None  # (n, D) per-atom descriptors (SOAPNet)


def neighbour_pairs(positions, cell, pbc, cutoff: float):
    """Half neighbour list (i, j, cartesian shift) within `cutoff` A (vesin)."""
    from vesin import NeighborList
    pbc = np.asarray(pbc, dtype=bool)
    box = np.asarray(cell, dtype=float) if pbc.any() else np.zeros((3, 3))
    if pbc.any() and abs(np.linalg.det(box)) < 1e-10:
        raise ValueError("periodic configuration with a degenerate cell")
    i, j, s = NeighborList(cutoff=cutoff, full_list=False).compute(
        points=np.asarray(positions, dtype=float), box=box, periodic=pbc.tolist(), quantities="ijS")
    return i.astype(np.int64), j.astype(np.int64), (s @ box) if len(s) else np.zeros((0, 3))


def build_graph(atoms, cutoff: float) -> Graph:
    i, j, shift = neighbour_pairs(atoms.get_positions(), atoms.get_cell(), atoms.get_pbc(), cutoff)
    return Graph(atoms.get_atomic_numbers().astype(np.int64), atoms.get_positions(), i, j, shift)


def cache_dir() -> Path:
    return Path(os.environ.get("KIMTRAIN_CACHE", Path.home() / ".cache" / "kimtrain"))


def build_graphs(atoms_list, cutoff: float, key: str | None = None) -> list[Graph]:
    """Graphs for all configurations, cached on disk under `key` (e.g. the data file's hash)."""
    path = None
    if key:
        digest = hashlib.sha256(f"{key}|{cutoff}|{GRAPH_FORMAT}".encode()).hexdigest()[:20]
        path = cache_dir() / f"graphs-{digest}.pt"
        if path.exists():
            return [Graph(**g) for g in torch.load(path, weights_only=False)]
    graphs = [build_graph(a, cutoff) for a in atoms_list]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            torch.save([g.__dict__ for g in graphs], tmp)
    return graphs


@dataclass
class Batch:
    numbers: torch.Tensor    # (N,) long
    positions: torch.Tensor  # (N, 3)
    batch: torch.Tensor      # (N,) configuration of each atom
    edge_i: torch.Tensor     # (E,)
    edge_j: torch.Tensor     # (E,)
    shift: torch.Tensor      # (E, 3)
    n_atoms: torch.Tensor    # (B,)
    n_configs: int
    features: torch.Tensor | None = None
    forces: torch.Tensor | None = None  # (N, k, 3) eV/Å reference forces, set by the trainer (NaN: masked)

    def to(self, device):
        moved = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)

    def vectors(self):
        """Pair vectors r_j - r_i + shift (A), differentiable w.r.t. positions."""
        return self.positions[self.edge_j] - self.positions[self.edge_i] + self.shift


def collate(graphs, dtype=torch.float32) -> Batch:
    """Concatenate graphs into one batch, offsetting atom indices."""
    counts = np.array([len(g.numbers) for g in graphs])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cat = np.concatenate
    return Batch(
        numbers=torch.from_numpy(cat([g.numbers for g in graphs])),
        positions=torch.from_numpy(cat([g.positions for g in graphs])).to(dtype),
        batch=torch.from_numpy(np.repeat(np.arange(len(graphs)), counts)),
        edge_i=torch.from_numpy(cat([g.edge_i + o for g, o in zip(graphs, offsets)])),
        edge_j=torch.from_numpy(cat([g.edge_j + o for g, o in zip(graphs, offsets)])),
        shift=torch.from_numpy(cat([g.shift for g in graphs])).to(dtype),
        n_atoms=torch.from_numpy(counts),
        n_configs=len(graphs),
        features=(torch.from_numpy(cat([g.features for g in graphs])).to(dtype)
                  if graphs[0].features is not None else None),
    )


def in_batches(graphs, batch_size: int, device):
    """(graphs of the batch, their Batch on `device`) for consecutive slices of batch_size graphs:
    the one loop behind every batched inference (energies, classes, forces)."""
    for start in range(0, len(graphs), batch_size):
        part = graphs[start:start + batch_size]
        yield part, collate(part).to(device)
