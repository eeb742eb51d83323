"""Labelling chunks on a Dask cluster (`kimlabel label --scheduler ...`).

Each worker builds its KIM models once, through a worker plugin (re-run on a restarted worker);
only configurations and model names cross the wire, since kimpy objects cannot be pickled. The
client alone writes the table's parts, so resume and merge are those of a local run.
"""
from __future__ import annotations

import hashlib
import json

from distributed import KilledWorker, WorkerPlugin, get_worker
from distributed.client import CancelledError

from .cluster import n_threads
from .evaluator import worker_evaluator
from .inputs import ConfigBatch
from .model_check import check_models


class EvaluatorPlugin(WorkerPlugin):
    """Dask worker plugin: one Evaluator per worker for a potential set and forces flag."""

    def __init__(self, potentials: dict, forces: bool):
        self.potentials, self.forces = dict(potentials), forces
        self.evaluator = None

    def setup(self, worker):
        self.evaluator = worker_evaluator(self.potentials, self.forces)

    def teardown(self, worker):
        self.evaluator = None


def plugin_name(potentials: dict, forces: bool) -> str:
    digest = hashlib.sha256(json.dumps([potentials, forces], sort_keys=True).encode()).hexdigest()[:16]
    return f"kimlabel-{digest}"


def evaluate_on_worker(batches, name: str):
    """Evaluate chunks (ConfigBatch) with this worker's Evaluator `name`; returns (rows, force
    column dicts) per chunk."""
    evaluator = get_worker().plugins[name].evaluator
    return [evaluator.evaluate_chunk(batch.unpack()) for batch in batches]


class DaskEngine:
    """Submits chunks to a distributed.Client. A task whose model code kills its worker ends in
    KilledWorker (the caller re-runs that chunk in isolation); a task cancelled by a cluster
    restart is submitted again."""

    breaks_all = False  # a crash fails only the task that caused it
    chunks_per_task = 4  # each task costs the client and scheduler about 20 ms of CPU

    def __init__(self, client, potentials: dict, forces: bool):
        check_models(potentials)  # here, in a child process: a model that cannot be created stops the run
        self.client = client
        self.name = plugin_name(potentials, forces)
        client.register_plugin(EvaluatorPlugin(potentials, forces), name=self.name)
        self.width = n_threads(client)
        self.crashes, self.lost = (KilledWorker,), (CancelledError,)

    def check(self):
        """Done in __init__, before the workers are given the models."""

    def confirm(self):
        """Done in __init__."""

    def submit(self, chunks):
        return self.client.submit(evaluate_on_worker, [ConfigBatch.pack(c) for c in chunks], self.name, pure=False)

    def restart(self):
        pass

    def close(self):
        pass
