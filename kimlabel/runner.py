"""Streaming, parallel, resumable labelling of configuration files into a kimlabel table."""
from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import os
import tempfile

import pandas as pd

from .evaluator import evaluate_chunk, init_worker
from .inputs import from_atoms


@contextlib.contextmanager
def scratch_cwd():
    """Run inside a temporary directory (the KIM API writes kim.log to the working directory)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="kimlabel-") as tmp:
        os.chdir(tmp)
        try:
            yield tmp
        finally:
            os.chdir(old)


def batched(iterable, n):
    it = iter(iterable)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def evaluate_stream(configs, potentials, forces=False, jobs=1, chunk_size=32):
    """Yield (rows, force dicts) per chunk of configs, in input order.

    jobs > 1 uses a spawned process pool with a bounded window of chunks in flight, so memory
    stays flat however many configurations stream through.
    """
    chunks = batched(configs, chunk_size)
    if jobs <= 1:
        with scratch_cwd() as tmp:
            init_worker(potentials, forces, tmp)
            for chunk in chunks:
                yield evaluate_chunk(chunk)
        return
    ctx = multiprocessing.get_context("spawn")
    with scratch_cwd() as tmp, ctx.Pool(jobs, initializer=init_worker, initargs=(potentials, forces, tmp)) as pool:
        window = collections.deque()
        for chunk in chunks:
            window.append(pool.apply_async(evaluate_chunk, (chunk,)))
            if len(window) >= 3 * jobs:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


def label(atoms_list, potentials, forces: bool = False, jobs: int = 1, energy_key: str | None = None):
    """Energies (eV) of every EIP in `potentials` on a list of ase.Atoms, as a DataFrame.

    potentials: a system name ('si'), comma list of names/KIM IDs, or {name: kim_id}.
    With forces=True the DataFrame has a `forces` attribute (`df.attrs['forces']`): a per-atom
    DataFrame keyed by config_id.
    """
    from .registry import resolve
    from .schema import forces_schema, table_schema
    pots = resolve(potentials)
    configs = (from_atoms(a, i, energy_key=energy_key) for i, a in enumerate(atoms_list))
    rows, frc = [], []
    for r, f in evaluate_stream(configs, pots, forces, jobs):
        rows += r
        frc += f
    df = pd.DataFrame(rows, columns=table_schema(pots).names)
    if forces:
        fdf = pd.concat([pd.DataFrame(f) for f in frc], ignore_index=True) if frc else pd.DataFrame()
        df.attrs["forces"] = fdf.reindex(columns=forces_schema(pots).names)
    return df
