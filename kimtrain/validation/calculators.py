"""ASE calculators for validation: a trained run (kimtrain.Calculator, stress by autograd) or an
EIP (kimlabel.EIP through kimpy; stress by central differences of its energy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator as ASECalculator
from ase.calculators.calculator import all_changes

from ..calculator import Calculator, numerical_stress


class EIPCalculator(ASECalculator):
    """Energy (eV), forces (eV/Å) and stress (eV/Å³) of one KIM model, evaluated by kimlabel's
    kimpy session (the KIM model is created once). A status other than ok is an error naming it."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, kim_id: str, **kwargs):
        super().__init__(**kwargs)
        from kimlabel import EIP
        self.kim_id = kim_id
        self.eip = EIP(kim_id)

    def energy_of(self, atoms, forces: bool = False):
        energy, f, status = self.eip.compute(atoms, forces)
        if status != "ok":
            raise ValueError(f"EIP {self.kim_id} gave status {status!r} on a {len(atoms)}-atom {atoms.get_chemical_formula()}")
        return energy, f

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = self.energy_of(self.atoms, forces=True)
        self.results.update(energy=energy, free_energy=energy, forces=np.asarray(forces))
        if "stress" in properties:
            self.results["stress"] = numerical_stress(lambda at: self.energy_of(at)[0], self.atoms)


def run_calculator(run_dir) -> Calculator:
    """kimtrain.Calculator of RUN_DIR/best.pt on the CPU (validation runs one configuration at a
    time), with a tabulated SchNet evaluating its filter network directly."""
    if not (Path(run_dir) / "best.pt").exists():
        raise FileNotFoundError(f"{run_dir}: no best.pt (validate needs a trained run; results folders keep "
                                "metrics only)")
    calc = Calculator(run_dir, device="cpu")
    if getattr(calc.model, "filter", None) == "tabulated":
        # the filter network itself, not its linear interpolation: interpolated filters have forces
        # that jump at the grid's nodes, and relaxations to 1e-3 eV/Å stall on them
        calc.model.filter = "direct"
    return calc
