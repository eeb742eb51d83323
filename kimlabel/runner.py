"""Streaming, parallel, resumable labelling of configuration files into a kimlabel table."""
from __future__ import annotations

import collections
import contextlib
import itertools
import os
import sys
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from .evaluator import (crashed_result, evaluate_chunk, evaluate_chunks, init_worker, merge_model_results,
                        worker_failures)
from .inputs import ConfigBatch, from_atoms, has_foreign_results
from .model_check import crashed, refuse
from .session import flush_c_stdio, process_context


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


ATOMS_PER_CHUNK = 2048  # a chunk: about 1-10 ms of work per EIP; large cells go in fewer per chunk


def chunked(configs, size: int, max_atoms: int = ATOMS_PER_CHUNK):
    """Lists of at most `size` configurations and, past the first, at most `max_atoms` atoms:
    small cells in large chunks (each chunk costs about a millisecond of inter-process traffic),
    large cells in small ones (workers finish together)."""
    chunk, atoms = [], 0
    for cfg in configs:
        n = len(cfg.symbols)
        if chunk and (len(chunk) >= size or atoms + n > max_atoms):
            yield chunk
            chunk, atoms = [], 0
        chunk.append(cfg)
        atoms += n
    if chunk:
        yield chunk


def _pool(jobs, potentials, forces, scratch):
    flush_c_stdio()  # a forked worker would print the parent's unflushed C output again
    return ProcessPoolExecutor(jobs, mp_context=process_context(), initializer=init_worker,
                               initargs=(potentials, forces, scratch))


class ProcessEngine:
    """Worker processes on this machine. A crash breaks the whole pool: every chunk in flight is
    re-run in isolation and the pool restarted."""

    breaks_all = True
    crashes, lost = (BrokenProcessPool,), ()
    chunks_per_task = 1

    def __init__(self, jobs, potentials, forces, scratch):
        self.width, self._args = max(jobs, 1), (max(jobs, 1), potentials, forces, scratch)
        self.potentials = potentials
        self.pool = _pool(*self._args)

    def check(self):
        """Ask a worker which models it could not create; confirm() waits for the answer, so the
        first chunks can be read and queued while the workers create their models."""
        self._check = self.pool.submit(worker_failures)

    def confirm(self):
        """Stop before any result is used, naming each model a worker could not create."""
        try:
            failed = self._check.result()
        except BrokenProcessPool:
            raise crashed(self.potentials) from None
        refuse(failed)

    def submit(self, chunks):
        return self.pool.submit(evaluate_chunks, [ConfigBatch.pack(c) for c in chunks])

    def restart(self):
        self.pool.shutdown(cancel_futures=True)
        self.pool = _pool(*self._args)

    def close(self):
        self.pool.shutdown(cancel_futures=True)


def _isolated(chunk, potentials, forces, scratch):
    """Evaluate in a throwaway process; raises BrokenProcessPool if the model code crashes it."""
    with _pool(1, potentials, forces, scratch) as pool:
        return pool.submit(evaluate_chunk, chunk).result()


def _recover(chunk, potentials, forces, scratch):
    """Re-run a chunk whose worker died: config by config, then model by model for a crashing
    config, so only the (configuration, model) pairs that crash get status model_error."""
    rows, frc = [], []
    for cfg in chunk:
        try:
            r, f = _isolated([cfg], potentials, forces, scratch)
        except BrokenProcessPool:
            parts = {}
            for name, kim_id in potentials.items():
                try:
                    parts[name] = _isolated([cfg], {name: kim_id}, forces, scratch)
                except BrokenProcessPool:
                    parts[name] = crashed_result(cfg, name, forces)
            r, f = merge_model_results(cfg, potentials, forces, parts)
        rows += r
        frc += f
    return rows, frc


@contextlib.contextmanager
def _engine(potentials, forces, jobs, scheduler, scratch):
    if scheduler is None:
        engine = ProcessEngine(jobs, potentials, forces, scratch)
        try:
            yield engine
        finally:
            engine.close()
        return
    from .cluster import connect
    from .dask_engine import DaskEngine
    with connect(scheduler) as client:
        yield DaskEngine(client, potentials, forces)


RESUBMITS = 3  # times a chunk cancelled by a cluster restart is submitted again


def evaluate_stream(configs, potentials, forces=False, jobs=1, chunk_size=256, scheduler=None):
    """Yield (rows, force dicts) per chunk of configs, in input order.

    Models run in worker processes (`jobs` here, or the workers of Dask `scheduler`), so a crash
    in native model code cannot take the run down: the chunk is re-run in isolated processes
    here, config by config. A task carries engine.chunks_per_task chunks (more on Dask, where each
    task costs the client and scheduler CPU time); a bounded window of tasks is in flight, so
    memory stays flat however many configurations stream through.
    """
    with scratch_cwd() as tmp, _engine(potentials, forces, jobs, scheduler, tmp) as engine:
        engine.check()
        tasks = batched(chunked(configs, chunk_size), engine.chunks_per_task)
        window, resubmitted, confirmed = collections.deque(), collections.Counter(), False
        for task in itertools.chain(tasks, [None]):
            if task is not None:
                window.append((task, engine.submit(task)))
            while window and (task is None or len(window) >= 2 * engine.width):
                if not confirmed:  # a model that cannot be created stops the run before any result
                    engine.confirm()
                    confirmed = True
                head, fut = window.popleft()
                try:
                    results = fut.result()
                except engine.lost:
                    first = head[0][0].config_id
                    resubmitted[first] += 1
                    if resubmitted[first] > RESUBMITS:
                        raise
                    window.appendleft((head, engine.submit(head)))
                    continue
                except engine.crashes:
                    print(f"kimlabel: a model crashed its worker process; re-running configs "
                          f"{head[0][0].config_id}.. in isolation", file=sys.stderr)
                    redo = list(head)
                    if engine.breaks_all:
                        redo += [c for t, _ in window for c in t]
                        window.clear()
                    for c in redo:
                        yield _recover(c, potentials, forces, tmp)
                    if engine.breaks_all:
                        engine.restart()
                    continue
                yield from results


def warn_foreign_results(atoms_list, energy_key: str | None = None):
    """Warn, naming the frames, when calculators hold another configuration's results: those
    frames get no reference energy or forces (kimlabel.inputs.own_results)."""
    foreign = [i for i, a in enumerate(atoms_list)
               if has_foreign_results(a) and not (energy_key and energy_key in a.info)]
    if foreign:
        shown = ", ".join(map(str, foreign[:10])) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
        warnings.warn(f"kimlabel.label: frame(s) {shown} of {len(atoms_list)}: the attached calculator's results "
                      "belong to another configuration (one calculator shared by several Atoms?), so their "
                      "energy_ref and reference forces are left empty. Give each frame its own results (a "
                      "SinglePointCalculator, as ase.io.read does) or pass energy_key.", stacklevel=3)


def label(atoms_list, potentials, forces: bool = False, jobs: int = 1, energy_key: str | None = None,
          scheduler: str | None = None):
    """Energies (eV) of every EIP in `potentials` on a list of ase.Atoms, as a DataFrame.

    potentials: a system name ('si'), comma list of names/KIM IDs, or {name: kim_id}.
    With forces=True the DataFrame has a `forces` attribute (`df.attrs['forces']`): a per-atom
    DataFrame keyed by config_id. scheduler: a Dask cluster (local:N, tcp://HOST:PORT or a
    scheduler JSON file) instead of `jobs` local processes.
    """
    from .potentials import resolve
    from .schema import forces_schema, table_schema
    pots = resolve(potentials)
    atoms_list = list(atoms_list)
    warn_foreign_results(atoms_list, energy_key)
    configs = (from_atoms(a, i, energy_key=energy_key) for i, a in enumerate(atoms_list))
    frames, frc = [], []
    for r, f in evaluate_stream(configs, pots, forces, jobs, scheduler=scheduler):
        frames.append(pd.DataFrame(r, columns=table_schema(pots).names))  # while the workers compute
        frc += f
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=table_schema(pots).names)
    if forces:
        fdf = pd.concat([pd.DataFrame(f) for f in frc], ignore_index=True) if frc else pd.DataFrame()
        df.attrs["forces"] = fdf.reindex(columns=forces_schema(pots).names)
    return df
