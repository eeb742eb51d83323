"""Vacuum-padded cells: the cost of one configuration should follow its atoms, not its cell.

A Si dimer (and a 64-atom Si cluster) centred in cubic periodic cells of growing size, evaluated by
every portable EIP of the si set through kimlabel's Evaluator (periodic images and neighbour
lists built once per configuration for all models), and by ASE's KIM calculator where it can.
Prints the time per configuration and the ratio to the smallest cell, for kimlabel and ASE,
measured in the same run (target: kimlabel's ratio stays near 1 up to 10^4 Å).
    python bench/vacuum.py [--rounds 20]
"""
import argparse
import time

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.kim import KIM

from kimlabel.evaluator import Evaluator
from kimlabel.inputs import from_atoms
from kimlabel.potentials import resolve
from kimlabel.runner import scratch_cwd
from kimlabel.simulator import is_simulator_model
from machine import describe

SIZES = [20.0, 200.0, 700.0, 1000.0, 10_000.0]


def structures():
    """{name: (atoms, centred)}: a dimer with an atom at the cell's corner (its images lie on the far
    faces), the same dimer centred, and a 64-atom cluster centred."""
    dimer = Atoms("Si2", positions=[[0, 0, 0], [2.35, 0, 0]])
    cluster = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    cluster.rattle(0.05, seed=0)
    return {"dimer at the corner": (dimer, False), "dimer, centred": (dimer, True),
            "64-atom cluster, centred": (Atoms(cluster.symbols, positions=cluster.positions), True)}


def boxed(atoms, size, centred=True):
    at = atoms.copy()
    at.set_cell([size] * 3)
    at.pbc = True
    if centred:
        at.center()
    return at


def kimlabel_time(ev, atoms, rounds):
    cfg = from_atoms(atoms, 0)
    row, _ = ev.evaluate(cfg)  # warm
    t0 = time.perf_counter()
    for _ in range(rounds):
        row, _ = ev.evaluate(cfg)
    bad = {k: v for k, v in row.items() if k.startswith("status__") and v != "ok"}
    return (time.perf_counter() - t0) / rounds, bad


def ase_time(calcs, atoms, rounds):
    try:
        t0 = time.perf_counter()
        for _ in range(rounds):
            for calc in calcs:
                at = atoms.copy()
                at.calc = calc
                at.get_potential_energy()
        return (time.perf_counter() - t0) / rounds
    except Exception as err:  # kimpy's neighbour list fails on very large cells
        return f"fails ({type(err).__name__})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="evaluations per configuration and cell (default 20)")
    a = ap.parse_args()
    pots = {k: v for k, v in resolve("si").items() if not is_simulator_model(v)}
    print(describe(f"python bench/vacuum.py --rounds {a.rounds}") + f"; {len(pots)} portable si EIPs, one process")
    with scratch_cwd():
        ev = Evaluator(pots)
        calcs = [KIM(kim_id) for kim_id in pots.values()]
        for name, (atoms, centred) in structures().items():
            print(f"\n{name}: ms per configuration (all {len(pots)} EIPs), ratio to the {SIZES[0]:g} Å cell")
            print(f"{'cell (Å)':>10} {'kimlabel':>10} {'ratio':>7} {'ASE KIM':>14} {'ratio':>7}  statuses")
            base = {}
            for size in SIZES:
                at = boxed(atoms, size, centred)
                t, bad = kimlabel_time(ev, at, a.rounds)
                r = ase_time(calcs, at, a.rounds)
                base.setdefault("k", t)
                if isinstance(r, float):
                    base.setdefault("a", r)
                a_ms = f"{r * 1e3:14.2f}" if isinstance(r, float) else f"{r:>14}"
                a_ratio = f"{r / base['a']:7.1f}" if isinstance(r, float) else f"{'':>7}"
                print(f"{size:10g} {t * 1e3:10.3f} {t / base['k']:7.2f} {a_ms} {a_ratio}  {bad or 'all ok'}")
    print("\nkimlabel's targets: ratio near 1 at every size, every status ok")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
