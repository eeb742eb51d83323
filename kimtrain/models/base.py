"""AtomisticModel: per-atom outputs summed per configuration, plus per-species reference energies."""
from __future__ import annotations

import torch
from torch import nn

from .common import mlp, sum_by

MAX_Z = 119


class AtomisticModel(nn.Module):
    """Subclasses implement atom_features(batch) -> (N, hidden).

    forward(batch) returns (B, n_out) total energies in eV: sum over atoms of
    scale * head(h) + species_ref[z]. species_ref (eV/atom) and scale (eV/atom) are buffers
    fitted on training data and saved with the model.
    """

    def __init__(self, hidden: int, n_out: int = 1):
        super().__init__()
        self.hidden, self.n_out = hidden, n_out
        self.head = mlp([hidden, hidden // 2, n_out])
        self.register_buffer("species_ref", torch.zeros(MAX_Z, n_out))
        self.register_buffer("scale", torch.ones(n_out))

    def atom_features(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def fit_inputs(self, graphs):
        """Fit input standardisation on training inputs, once before training (default: none)."""

    def pooled(self, batch) -> torch.Tensor:
        """Per-configuration representation (B, hidden): sum of atom features."""
        return sum_by(self.atom_features(batch), batch.batch, batch.n_configs)

    def forward(self, batch) -> torch.Tensor:
        h = self.atom_features(batch)
        per_atom = self.head(h) * self.scale + self.species_ref[batch.numbers]
        return sum_by(per_atom, batch.batch, batch.n_configs)

    def keep_outputs(self, indices):
        """Keep only the outputs `indices` of the head (their last-layer rows, references and scales):
        a multi-fidelity model becomes the single-fidelity model its predictions use."""
        idx = self._keep_references(indices)
        last = self.head[-1]
        new = nn.Linear(last.in_features, len(idx)).to(device=last.weight.device, dtype=last.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(last.weight[idx])
            new.bias.copy_(last.bias[idx])
        self.head[-1] = new
        return self

    def _keep_references(self, indices) -> torch.Tensor:
        """Keep the per-species references and scales of the outputs `indices`; returns them as
        an index tensor."""
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=self.scale.device)
        self.species_ref = self.species_ref[:, idx].clone()
        self.scale = self.scale[idx].clone()
        self.n_out = len(idx)
        return idx

    def replace_head(self, n_out: int):
        """A fresh head with n_out outputs (references reset); the representation is kept."""
        self.n_out = n_out
        device = self.scale.device
        self.head = mlp([self.hidden, self.hidden // 2, n_out]).to(device)
        self.species_ref = torch.zeros(MAX_Z, n_out, device=device)
        self.scale = torch.ones(n_out, device=device)


class Classifier(nn.Module):
    """A classification head on the mean-pooled representation of an AtomisticModel."""

    leaves_parameters_unused = True  # the body's energy head (data-parallel training must know)

    def __init__(self, body: AtomisticModel, n_classes: int):
        super().__init__()
        self.body = body
        self.head = mlp([body.hidden, body.hidden // 2, n_classes])

    def forward(self, batch) -> torch.Tensor:
        pooled = self.body.pooled(batch) / batch.n_atoms[:, None].to(self.body.scale.dtype)
        return self.head(pooled)
