"""SOAPNet: SOAP descriptors (dscribe) fed to a per-atom MLP with shifted softplus, summed per configuration."""
from __future__ import annotations

import numpy as np
import torch

from .base import AtomisticModel
from .common import mlp, sum_by
from .registry import ModelSpec, register


class SOAPNet(AtomisticModel):
    """Per-atom MLP on standardised SOAP vectors; `n_layers` hidden layers in all (the last in the head)."""

    def __init__(self, n_features: int, hidden: int = 128, n_layers: int = 5, n_out: int = 1):
        super().__init__(hidden, n_out)
        self.n_features = n_features
        self.body = mlp([n_features] + [hidden] * (n_layers - 1), final_activation=True)
        self.register_buffer("feat_mean", torch.zeros(n_features))
        self.register_buffer("feat_std", torch.ones(n_features))
        self.fidelity = None  # with embed_fidelities(): one learned input vector per output

    def fit_inputs(self, graphs):
        """Mean/std of the training atoms' descriptors."""
        features = np.concatenate([g.features for g in graphs])
        self.feat_mean.copy_(torch.as_tensor(features.mean(0)))
        self.feat_std.copy_(torch.as_tensor(features.std(0) + 1e-6))

    def _inputs(self, batch) -> torch.Tensor:
        if batch.features is None:
            raise ValueError("SOAPNet needs SOAP features: build the data with kimtrain.data.descriptors")
        return (batch.features - self.feat_mean) / self.feat_std

    def atom_features(self, batch) -> torch.Tensor:
        return self.body(self._inputs(batch))

    def embed_fidelities(self):
        """Multi-fidelity by a learned fidelity embedding instead of a readout head per fidelity:
        output f is the one-output head on body(standardised SOAP + e_f), e_f a learned vector per
        output (zeros at first; the per-output references and scales stay). The whole network
        then depends on the fidelity, and a configuration costs one MLP pass per fidelity."""
        self.fidelity = torch.nn.Parameter(torch.zeros(self.n_out, self.n_features, dtype=self.feat_std.dtype,
                                                     device=self.scale.device))
        last = self.head[-1]
        self.head[-1] = torch.nn.Linear(last.in_features, 1).to(device=last.weight.device, dtype=last.weight.dtype)
        return self

    def forward(self, batch) -> torch.Tensor:
        if self.fidelity is None:
            return super().forward(batch)
        x = self._inputs(batch)
        per_atom = torch.cat([self.head(self.body(x + e)) for e in self.fidelity], dim=1)
        per_atom = per_atom * self.scale + self.species_ref[batch.numbers]
        return sum_by(per_atom, batch.batch, batch.n_configs)

    def keep_outputs(self, indices):
        """As AtomisticModel.keep_outputs; with a fidelity embedding, its rows too, and a single
        kept fidelity folded into the input standardisation (a plain SOAPNet, same predictions)."""
        if self.fidelity is None:
            return super().keep_outputs(indices)
        rows = self.fidelity.detach()[self._keep_references(indices)].clone()
        if len(rows) == 1:  # (f - mean) / std + e = (f - (mean - e std)) / std
            self.feat_mean = self.feat_mean - rows[0].to(self.feat_mean.dtype) * self.feat_std
            self.fidelity = None
        else:
            self.fidelity = torch.nn.Parameter(rows)
        return self


register(ModelSpec("soapnet", "SOAP descriptors (dscribe) and a per-atom MLP; energies only",
                   lambda cfg, n_out, n_features: SOAPNet(n_features, cfg.hidden, cfg.n_layers, n_out),
                   inputs="soap", forces=False, fidelity_embedding=True))
