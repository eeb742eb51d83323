"""Lattice constant and bulk modulus (a Birch-Murnaghan fit through matcalc's EOSCalc) and the
cubic elastic constants C11, C12, C44, relaxed-ion (matcalc's ElasticityCalc: stress-strain fits
on conventional cells strained by up to ±1 %, each relaxed at fixed cell), in Å and GPa."""
from __future__ import annotations

import warnings

import numpy as np
from ase.units import GPa

RELAX = {"fmax": 1e-3, "max_steps": 1000}
QUICK_RELAX = {"fmax": 1e-2, "max_steps": 200}
STRAINS = (-0.01, -0.005, 0.005, 0.01)  # normal and shear: matcalc's default ±6 % shear is nonlinear for Si's C44


def relaxed_conventional(calc, system, quick: bool = False):
    """The conventional cubic cell relaxed (positions and cell, fmax 1e-3 eV/Å; 1e-2 and at most
    200 steps when quick), and its lattice constant (Å)."""
    from matcalc import RelaxCalc
    from pymatgen.io.ase import AseAtomsAdaptor
    result = RelaxCalc(calc, relax_cell=True, **(QUICK_RELAX if quick else RELAX)).calc(system.conventional())
    atoms = AseAtomsAdaptor.get_atoms(result["final_structure"])
    return atoms, float(np.cbrt(atoms.get_volume()))


def equation_of_state(calc, system, quick: bool = False) -> dict:
    """a0 (Å, from the relaxed conventional cell) and B (GPa, Birch-Murnaghan over ±2 % linear strain,
    about ±6 % in volume, on the primitive cell: 9 points, 5 when quick)."""
    from matcalc import EOSCalc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relax = QUICK_RELAX if quick else RELAX
        result = EOSCalc(calc, n_points=5 if quick else 9, max_abs_strain=0.02, allow_shape_change=False,
                         relax_calc_kwargs=relax, **relax).calc(system.primitive())
    _, a0 = relaxed_conventional(calc, system, quick)
    return {"a0": a0, "B": float(result["bulk_modulus_bm"]), "eos_r2": float(result["r2_score_bm"])}


def elastic_constants(calc, system, quick: bool = False) -> dict:
    """C11, C12, C44 (GPa) of the relaxed conventional cell, relaxed-ion (internal positions relaxed
    in every strained cell: Si's C44 depends on it), averaged over the cubic-equivalent entries."""
    from matcalc import ElasticityCalc
    atoms, _ = relaxed_conventional(calc, system, quick)
    relax = QUICK_RELAX if quick else RELAX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ElasticityCalc(calc, norm_strains=STRAINS, shear_strains=STRAINS, relax_structure=False,
                                relax_deformed_structures=True, fmax=relax["fmax"], use_equilibrium=True,
                                relax_calc_kwargs={"max_steps": relax["max_steps"]}).calc(atoms)
    c = np.asarray(result["elastic_tensor"].voigt) / GPa  # eV/Å³ -> GPa
    return {"C11": float(np.mean([c[i, i] for i in range(3)])),
            "C12": float(np.mean([c[0, 1], c[0, 2], c[1, 2]])),
            "C44": float(np.mean([c[i, i] for i in range(3, 6)]))}
