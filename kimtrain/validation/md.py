"""MD stability with ASE's integrators: NVT (Langevin) at 300 K and near melting, and the NVE
energy drift at 300 K, on a >= 64-atom supercell at the relaxed lattice constant.

A run is stable when, at every check (every 10 steps), no pair is closer than
`fraction` x the equilibrium nearest-neighbour distance and the energy is finite; otherwise the
time of the first failed check is its time to failure. matcalc's MDCalc is not used: it runs a
fixed number of steps and returns the trajectory, with no check while running and no early stop."""
from __future__ import annotations

import math

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list

FRACTION = 0.6    # of the equilibrium nearest-neighbour distance: closer pairs mean a collapse
CHECK_EVERY = 10  # steps
TIMESTEP = 1.0    # fs


def shortest_distance(atoms, cutoff: float) -> float:
    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else math.inf


def run_md(calc, atoms, temperature: float, picoseconds: float, seed: int, d_nn: float, nve: bool = False,
           fraction: float = FRACTION) -> dict:
    """One run from Maxwell-Boltzmann velocities (seeded): stable or not, the time to failure (ps),
    the shortest distance seen (Å) and, for NVE, the drift of the total energy (meV/atom/ps, the
    slope of a straight-line fit)."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    if nve:
        dyn = VelocityVerlet(atoms, timestep=TIMESTEP * units.fs, logfile=None)
    else:
        dyn = Langevin(atoms, timestep=TIMESTEP * units.fs, temperature_K=temperature, friction=0.01 / units.fs,
                       logfile=None, rng=rng)
    steps = int(round(picoseconds * 1000 / TIMESTEP))
    limit = fraction * d_nn
    shortest, times, totals = math.inf, [], []
    failed_at = None
    for done in range(0, steps, CHECK_EVERY):
        try:
            dyn.run(min(CHECK_EVERY, steps - done))
            energy = atoms.get_potential_energy()
            total = energy + atoms.get_kinetic_energy()
        except Exception:  # a model that fails on a collapsed configuration fails the run
            energy = total = math.nan
        close = shortest_distance(atoms, d_nn)
        shortest = min(shortest, close)
        t = (done + min(CHECK_EVERY, steps - done)) * TIMESTEP / 1000
        if not (math.isfinite(energy) and math.isfinite(total)) or close < limit:
            failed_at = t
            break
        times.append(t)
        totals.append(total / len(atoms))
    out = {"stable": failed_at is None, "time_to_failure_ps": failed_at, "shortest_A": shortest,
           "temperature_K": temperature, "seed": seed, "ps": picoseconds, "ensemble": "NVE" if nve else "NVT"}
    if nve and failed_at is None and len(times) > 2:
        out["drift_meV_atom_ps"] = float(np.polyfit(times, totals, 1)[0] * 1000)
    return out


def md_stability(calc, system, a0: float, quick: bool = False) -> tuple[dict, list]:
    """NVT at 300 K and at system.hot over 3 seeds (1 when quick), 2 ps (0.2 when quick); NVE at
    300 K for the drift. Returns (summary for the table, every run)."""
    atoms = system.conventional(a0).repeat(system.md_repeat)
    d_nn = system.nearest_neighbour_factor * a0
    ps, seeds = (0.2, [0]) if quick else (2.0, [0, 1, 2])
    runs = [run_md(calc, atoms, t, ps, s, d_nn) for t in (300.0, system.hot) for s in seeds]
    runs.append(run_md(calc, atoms, 300.0, ps, 0, d_nn, nve=True))
    summary = {}
    for label, t in (("300K", 300.0), ("hot", system.hot)):
        these = [r for r in runs if r["temperature_K"] == t and r["ensemble"] == "NVT"]
        summary[f"md_stable_{label}"] = f"{sum(r['stable'] for r in these)}/{len(these)}"
        failures = [r["time_to_failure_ps"] for r in these if not r["stable"]]
        summary[f"md_fail_ps_{label}"] = min(failures) if failures else None
    summary["nve_drift_meV_atom_ps"] = runs[-1].get("drift_meV_atom_ps")
    return summary, runs
