"""Datasets: configurations with DFT energies, numbered exactly as kimlabel numbers them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from kimlabel import file_sha256, iter_configs


@dataclass
class Dataset:
    atoms: list            # ase.Atoms, config_id = position
    energy: np.ndarray     # (n,) eV, NaN where the file has none
    config_type: list      # str or None per configuration
    key: str               # content hash of the files (cache key)
    paths: list
    sources: list          # the file each configuration came from (as given)
    forces: list = None    # (n_atoms, 3) eV/Å DFT forces per configuration, None where the file has none

    def __len__(self):
        return len(self.atoms)

    @property
    def n_atoms(self) -> np.ndarray:
        return np.array([len(a) for a in self.atoms])

    def forces_of(self, ids) -> list:
        """DFT forces (n_i, 1, 3) eV/Å of configurations ids, NaN where the file has none."""
        return [(self.forces[i] if self.forces and self.forces[i] is not None
                 else np.full((len(self.atoms[i]), 3), np.nan))[:, None, :] for i in ids]

    @property
    def species(self) -> list[str]:
        return sorted({s for a in self.atoms for s in a.get_chemical_symbols()})


def load_dataset(paths, energy_key: str | None = None) -> Dataset:
    """Read all frames of `paths` (anything ase.io reads) in order; config_id 0..n-1."""
    paths = [str(p) for p in ([paths] if isinstance(paths, str) else paths)]
    atoms, energy, ctype, sources, forces = [], [], [], [], []
    for cfg in iter_configs(paths, energy_key):
        atoms.append(cfg.to_atoms())
        energy.append(cfg.energy_ref)
        ctype.append(cfg.config_type)
        sources.append(cfg.source)
        forces.append(cfg.forces_ref)
    key = hashlib.sha256("|".join(file_sha256(p) for p in paths).encode()).hexdigest()
    return Dataset(atoms, np.asarray(energy, dtype=float), ctype, key, paths, sources, forces)
