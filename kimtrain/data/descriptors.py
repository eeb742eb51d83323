"""SOAP descriptors (dscribe) for SOAPNet, computed once and cached with the graphs."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from kimlabel import replacing

from .graphs import cache_dir


@dataclass
class SOAPSettings:
    r_cut: float = 5.0
    n_max: int = 8
    l_max: int = 6


def soap_features(atoms_list, species, settings: SOAPSettings, key: str | None = None) -> list[np.ndarray]:
    """Per-atom SOAP vectors (float32) for each configuration; periodic where the frame is."""
    from dscribe.descriptors import SOAP
    species = sorted(set(species))
    path = None
    if key:
        tag = f"{key}|{species}|{sorted(asdict(settings).items())}"
        path = cache_dir() / f"soap-{hashlib.sha256(tag.encode()).hexdigest()[:20]}.pt"
        if path.exists():
            return torch.load(path, weights_only=False)
    makers = {p: SOAP(species=species, periodic=p, **asdict(settings)) for p in (True, False)}
    feats = [makers[bool(a.pbc.any())].create(a).astype(np.float32) for a in atoms_list]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            torch.save(feats, tmp)
    return feats
