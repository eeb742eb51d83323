"""Write the small unlabelled sample sets used by `make label-si/-al/-agau` (ASE-built, deterministic)."""
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.io import write

HERE = Path(__file__).resolve().parent


def strained_rattled(make, n, seed, amp=0.08, eps=0.04):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        at = make(rng)
        at.set_cell(at.cell @ (np.eye(3) + np.diag(rng.uniform(-eps, eps, 3))), scale_atoms=True)
        at.rattle(amp, seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out


def agau(rng):
    at = bulk("Ag", "fcc", a=4.12, cubic=True).repeat((2, 1, 1))
    at.set_chemical_symbols(rng.choice(["Ag", "Au"], size=len(at)).tolist())
    at.info["config_type"] = "fcc_alloy"
    return at


def tagged(at, name):
    at.info["config_type"] = name
    return at


if __name__ == "__main__":
    write(HERE / "si_samples.extxyz", strained_rattled(
        lambda r: tagged(bulk("Si", "diamond", a=5.43, cubic=True), "diamond"), 40, 0), format="extxyz")
    write(HERE / "al_samples.extxyz", strained_rattled(
        lambda r: tagged(bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2)), "fcc"), 40, 1), format="extxyz")
    write(HERE / "agau_samples.extxyz", strained_rattled(agau, 40, 2), format="extxyz")
