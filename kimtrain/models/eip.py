"""An aligned EIP kept inside a model (Δ-learning): E = E_net + E_EIP + Σ_s n_s μ_s.

The network learns DFT minus the aligned EIP; predictions add the EIP back, evaluated through
kimlabel's kimpy session (energies in eV, forces in eV/Å), so a Δ model relaxes and runs MD
like any other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.reference import species_offset_energy


@dataclass
class EIPBaseline:
    name: str      # short name in the kimlabel table
    kim_id: str    # full KIM model ID
    offsets: dict  # species -> μ (eV/atom), fitted on the training configurations
    _model: object = field(default=None, repr=False, compare=False)  # the KIM model, made on first use

    def to_meta(self) -> dict:
        return {"name": self.name, "kim_id": self.kim_id, "offsets": dict(self.offsets)}

    @classmethod
    def from_meta(cls, meta: dict | None):
        return cls(**meta) if meta else None

    def evaluate(self, atoms_list, forces: bool = False):
        """(energies (n,) eV, forces list of (n_atoms, 3) eV/Å or None), aligned. The KIM model is
        created once and kept in this process (a calculator calls this every MD step); an EIP
        failure on any configuration is an error naming it."""
        from kimlabel import EIP
        if getattr(self, "_model", None) is None:
            self._model = EIP(self.kim_id)  # a portable model, or a simulator model through LAMMPS
        energies, all_forces = [], []
        for k, at in enumerate(atoms_list):
            energy, f, status = self._model.compute(at, forces)
            if status != "ok":
                raise ValueError(f"EIP {self.name} ({self.kim_id}) gave status {status!r} on configuration {k}")
            energies.append(energy)
            all_forces.append(f)
        energies = np.asarray(energies) + species_offset_energy(atoms_list, self.offsets)
        return energies, (all_forces if forces else None)
