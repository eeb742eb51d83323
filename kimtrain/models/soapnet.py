"""SOAPNet: SOAP descriptors (dscribe) fed to a per-atom MLP with shifted softplus, summed per configuration."""
from __future__ import annotations

import numpy as np
import torch

from .base import AtomisticModel
from .common import mlp
from .registry import ModelSpec, register


class SOAPNet(AtomisticModel):
    """Per-atom MLP on standardised SOAP vectors; `n_layers` hidden layers in all (the last in the head)."""

    def __init__(self, n_features: int, hidden: int = 128, n_layers: int = 5, n_out: int = 1):
        super().__init__(hidden, n_out)
        self.n_features = n_features
        self.body = mlp([n_features] + [hidden] * (n_layers - 1), final_activation=True)
        self.register_buffer("feat_mean", torch.zeros(n_features))
        self.register_buffer("feat_std", torch.ones(n_features))

    def fit_inputs(self, graphs):
        """Mean/std of the training atoms' descriptors."""
        features = np.concatenate([g.features for g in graphs])
        self.feat_mean.copy_(torch.as_tensor(features.mean(0)))
        self.feat_std.copy_(torch.as_tensor(features.std(0) + 1e-6))

    def atom_features(self, batch) -> torch.Tensor:
        if batch.features is None:
            raise ValueError("SOAPNet needs SOAP features: build the data with kimtrain.data.descriptors")
        return self.body((batch.features - self.feat_mean) / self.feat_std)


register(ModelSpec("soapnet", "SOAP descriptors (dscribe) and a per-atom MLP; energies only",
                   lambda cfg, n_out, n_features: SOAPNet(n_features, cfg.hidden, cfg.n_layers, n_out),
                   inputs="soap", forces=False))
