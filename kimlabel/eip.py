"""One EIP evaluated in this process on ase.Atoms: what a calculator or a Δ model needs between two
MD steps, where kimlabel.label's worker processes would cost too much.

Portable models run through kimpy, simulator models through LAMMPS, with kimlabel's periodic
images and neighbour lists (energies in eV relative to isolated atoms, forces in eV/Å)."""
from __future__ import annotations

from .evaluator import make_model
from .neighbours import Frame
from .session import status_of


class EIP:
    """A KIM model (a KIM ID, or KIM_ID@params.yaml with parameter overrides), created once."""

    def __init__(self, kim_id: str):
        self.kim_id = kim_id
        self.model = make_model(kim_id)
        self.frame = Frame(self.model.influence)

    def compute(self, atoms, forces: bool = False):
        """(energy eV, forces (n, 3) eV/Å or None, status): status is one of kimlabel's table statuses;
        a failure of the model raises, a non-finite or absurd energy comes back with its status."""
        frame = self.frame.load(atoms.get_chemical_symbols(), atoms.get_positions(), atoms.get_cell()[:],
                                atoms.get_pbc())
        energy, f = self.model.compute(frame, forces)
        return energy, f, status_of(energy, len(atoms), f)
