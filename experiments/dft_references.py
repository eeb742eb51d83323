"""PBE references for `kimtrain validate` (kimtrain/validation/references.yaml): lattice constant,
bulk modulus, C11, C12, C44 (relaxed-ion) and the highest Γ frequency of diamond Si and fcc Al,
with GPAW (plane waves, PBE), the functional of the shared data sets (VASP-PBE).

Run with Debian's interpreter, which sees Debian's gpaw:
    /usr/bin/python3 experiments/dft_references.py [si al] --out experiments/dft_references.json

Method, per system:
- a0, B: 7 volumes of the primitive cell within ±4 %, Birch-Murnaghan (ase.eos);
- C11, C12: ±0.5 % normal strain of the conventional cell at a0 (diamond and fcc keep their
  internal positions under it by symmetry), C11 = dσxx/dε, C12 = dσyy/dε;
- C44: ±1 % engineering shear (γyz) of the conventional cell at a0, positions relaxed at fixed cell
  (Si's internal strain), C44 = dσyz/dγ;
- Γ: frozen phonon in the primitive cell (displacing an atom moves all its images, so this is the
  dynamical matrix at Γ), central differences of ±0.01 Å; for Al, whose Γ modes are acoustic, none.
Each finished number is written to the JSON at once; a rerun skips what it holds.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.eos import EquationOfState
from ase.optimize import BFGS
from ase.units import GPa, _amu, _e

SETTINGS = {
    "si": dict(symbol="Si", structure="diamond", a=5.47, occupations={"name": "fermi-dirac", "width": 0.01},
               kprim=(8, 8, 8), kconv=(6, 6, 6)),
    "al": dict(symbol="Al", structure="fcc", a=4.04, occupations={"name": "fermi-dirac", "width": 0.05},
               kprim=(16, 16, 16), kconv=(10, 10, 10)),
}
ECUT = 500.0  # eV: stress needs a higher cutoff than energies


def calculator(kpts, occupations, txt, symmetry="on"):
    """GPAW PBE; strained cells run without symmetry (with it, GPAW 22.8 gave Al's strained cells
    C11 21 and C12 106 GPa, with C11 + 2 C12 still 3 B)."""
    from gpaw import GPAW, PW
    extra = {} if symmetry == "on" else {"symmetry": "off"}
    return GPAW(mode=PW(ECUT), xc="PBE", kpts={"size": kpts, "gamma": True}, occupations=occupations,
                convergence={"energy": 1e-7, "density": 1e-6}, txt=txt, **extra)


def run(name, out: Path):
    s = SETTINGS[name]
    done = json.loads(out.read_text()) if out.exists() else {}
    res = done.setdefault(name, {"settings": {"code": "GPAW (Debian)", "xc": "PBE", "ecut_eV": ECUT,
                                              "kpts_primitive": s["kprim"], "kpts_conventional": s["kconv"],
                                              "occupations": s["occupations"]}})
    log = out.with_suffix(f".{name}.txt")

    def save():
        out.write_text(json.dumps(done, indent=1))

    if "a0" not in res:
        volumes, energies = [], []
        for f in np.linspace(0.96, 1.04, 7):
            at = bulk(s["symbol"], s["structure"], a=s["a"])
            at.set_cell(at.cell * f ** (1 / 3), scale_atoms=True)
            at.calc = calculator(s["kprim"], s["occupations"], str(log))
            volumes.append(at.get_volume())
            energies.append(at.get_potential_energy())
        v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        n = len(bulk(s["symbol"], s["structure"], a=s["a"]))
        res["a0"] = float((v0 / n * len(bulk(s["symbol"], s["structure"], a=s["a"], cubic=True))) ** (1 / 3))
        res["B"] = float(b / GPa)
        save()
    a0 = res["a0"]
    if "C11" not in res:
        sig = {}
        for e in (0.005, -0.005):
            at = bulk(s["symbol"], s["structure"], a=a0, cubic=True)
            cell = at.cell[:].copy()
            cell[0] *= 1 + e
            at.set_cell(cell, scale_atoms=True)
            at.calc = calculator(s["kconv"], s["occupations"], str(log), symmetry="off")
            sig[e] = at.get_stress(voigt=True)
        d = (sig[0.005] - sig[-0.005]) / 0.01 / GPa
        res["C11"], res["C12"] = float(d[0]), float((d[1] + d[2]) / 2)
        save()
    if "C44" not in res:
        sig = {}
        for g in (0.01, -0.01):
            at = bulk(s["symbol"], s["structure"], a=a0, cubic=True)
            strain = np.eye(3)
            strain[1, 2] = strain[2, 1] = g / 2
            at.set_cell(at.cell[:] @ strain, scale_atoms=True)
            at.calc = calculator(s["kconv"], s["occupations"], str(log), symmetry="off")
            if s["structure"] == "diamond":
                BFGS(at, logfile=None).run(fmax=0.005)
            sig[g] = at.get_stress(voigt=True)
        res["C44"] = float((sig[0.01][3] - sig[-0.01][3]) / 0.02 / GPa)
        save()
    if s["structure"] == "diamond" and "nu_gamma_max" not in res:
        f = {}
        for sign in (1, -1):
            at = bulk(s["symbol"], s["structure"], a=a0)
            pos = at.get_positions()
            pos[0, 0] += sign * 0.01
            at.set_positions(pos)
            at.calc = calculator(s["kprim"], s["occupations"], str(log))
            f[sign] = at.get_forces()[0, 0]
        k = -(f[1] - f[-1]) / 0.02                       # eV/Å², the on-site Γ force constant
        m = bulk(s["symbol"]).get_masses()[0]
        omega = np.sqrt(2 * k / m * _e / _amu) * 1e10    # rad/s: optical mode of two equal masses
        res["nu_gamma_max"] = float(omega / (2 * np.pi * 1e12))
        save()
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("systems", nargs="*", default=["si", "al"], help="systems to compute (si, al)")
    p.add_argument("--out", default="experiments/dft_references.json", help="JSON of the results (resumed)")
    args = p.parse_args()
    for name in args.systems:
        t = time.time()
        print(name, run(name, Path(args.out)), f"{time.time() - t:.0f} s", flush=True)
