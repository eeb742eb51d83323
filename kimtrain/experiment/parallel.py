"""Run a plan of trainings, some waiting on others, in this process, in N worker processes, or
on a Dask cluster.

A task is a picklable call (a module-level function and its arguments) with the names of the
tasks it needs. Local workers are spawned processes with the CPU cores divided among them; on a
Dask cluster every ready task is submitted at once, those that others wait on first. Each
finished task has already written its results to disk, so a crash or a kill loses no finished
task. Progress: one line per finished task with tasks done / total, elapsed time and ETA.
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context

from ..training.trainer import duration


@dataclass
class Task:
    name: str                 # unique; shown in progress lines
    fn: object                # module-level function (picklable)
    args: tuple = ()
    needs: list = field(default_factory=list)  # names of tasks that must finish first


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """CPU threads for each of `jobs` concurrent runs: given, or the cores divided among them."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def _waiting_on(name: str, tasks: list[Task]) -> int:
    """How many tasks wait, directly or not, on task `name`: those go first (a shared pretraining
    before the LA weights that do not need it), so no worker idles at the end waiting for it."""
    needed_by = {}
    for t in tasks:
        for n in t.needs:
            needed_by.setdefault(n, []).append(t.name)
    seen, todo = set(), [name]
    while todo:
        for nxt in needed_by.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return len(seen)


def failure(task: Task, exc: Exception) -> RuntimeError:
    return RuntimeError(f"{task.name} failed: {exc}; finished runs are kept, rerun the same command to continue")


def _init_worker(threads: int):
    import torch
    torch.set_num_threads(threads)


def _on_dask_worker(threads: int | None, fn, args):
    """Run fn(*args) on a Dask worker with `threads` torch threads (default: the worker's cores
    divided among its task threads)."""
    import torch
    from distributed import get_worker
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // get_worker().state.nthreads))
    return fn(*args)


def run_tasks(tasks: list[Task], jobs: int = 1, threads: int | None = None, log=None,
              scheduler: str | None = None) -> dict:
    """Run every task once its needs are done; returns {name: result}. jobs=1 runs in this process;
    a Dask `scheduler` (local:N, tcp://HOST:PORT, scheduler JSON file) runs them on its workers.
    log: where progress lines go (default: sys.stderr at the time of the call)."""
    log = log if log is not None else sys.stderr
    names = {t.name for t in tasks}
    for t in tasks:
        missing = [n for n in t.needs if n not in names]
        if missing:
            raise ValueError(f"task {t.name} needs unknown task(s) {missing}")
    results, t0 = {}, time.perf_counter()
    pending = sorted(tasks, key=lambda t: -_waiting_on(t.name, tasks))  # stable: plan order among equals

    def finished(task, result):
        results[task.name] = result
        done, elapsed = len(results), time.perf_counter() - t0
        eta = elapsed / done * (len(tasks) - done)
        print(f"[{done}/{len(tasks)}] {task.name} done; elapsed {duration(elapsed)}, ETA {duration(eta)}",
              file=log, flush=True)

    def ready():
        return [t for t in pending if all(n in results for n in t.needs)]

    if jobs <= 1:
        if threads:
            _init_worker(threads)
        while pending:
            batch = ready()
            if not batch:
                raise ValueError(f"tasks wait on each other: {[t.name for t in pending]}")
            t = batch[0]
            pending.remove(t)
            try:
                result = t.fn(*t.args)
            except Exception as exc:
                raise failure(t, exc) from exc
            finished(t, result)
        return results
    if scheduler is not None:
        from kimlabel import connect, local_workers
        if local_workers(scheduler):  # N workers on this machine share its cores
            threads = threads_per_job(local_workers(scheduler), threads)
        with connect(scheduler) as client:
            # ClientExecutor futures are concurrent.futures futures: the loop below serves both
            order = {t.name: -k for k, t in enumerate(pending)}
            return _run_pool(lambda t: client.get_executor(pure=False, priority=order[t.name]).submit(
                _on_dask_worker, threads, t.fn, t.args), len(tasks), pending, ready, finished, results)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(threads_per_job(jobs, threads),)) as pool:
        return _run_pool(lambda t: pool.submit(t.fn, *t.args), jobs, pending, ready, finished, results)


def _run_pool(submit, width: int, pending: list, ready, finished, results: dict) -> dict:
    """Keep up to `width` ready tasks submitted until every task has finished."""
    running = {}
    while pending or running:
        for t in ready():
            if len(running) >= width:
                break
            pending.remove(t)
            running[submit(t)] = t
        if not running:
            raise ValueError(f"tasks wait on each other: {[t.name for t in pending]}")
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            task = running.pop(future)
            try:
                result = future.result()
            except Exception as exc:
                raise failure(task, exc) from exc
            finished(task, result)
    return results
