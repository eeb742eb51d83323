"""Dask clusters for `--scheduler`: local:N, tcp://HOST:PORT or a scheduler JSON file.

Used by `kimlabel label` and `kimtrain experiment`. dask[distributed] is an optional extra
(`pip install -e '.[dask]'`); it is imported only when a scheduler is asked for.
"""
from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

LOCAL = re.compile(r"^local:(\d+)$")
ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://.+")


def check_scheduler(spec: str, option: str = "--scheduler") -> str:
    """Reject a scheduler spec no cluster can come from, naming the option, before any work starts."""
    m = LOCAL.match(spec)
    if m:
        if int(m.group(1)) < 1:
            raise ValueError(f"{option} {spec}: local:N needs N >= 1 workers")
    elif not ADDRESS.match(spec):
        if not spec.endswith(".json"):
            raise ValueError(f"{option}: expected local:N, tcp://HOST:PORT or a scheduler JSON file, got {spec!r}")
        if not Path(spec).is_file():
            raise FileNotFoundError(f"{option}: scheduler file {spec} does not exist")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{option} needs dask[distributed]: pip install -e '.[dask]'") from None
    return spec


# Settings of the clusters local:N starts (a cluster of your own keeps its settings; the same
# lines in its Dask config help it too):
LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,     # a task that kills two workers fails (default: four)
    "distributed.worker.profile.enabled": False,      # the sampling profiler takes the GIL every 10 ms
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def local_cluster(n_workers: int, threads_per_worker: int = 1):
    """A LocalCluster of n worker processes on this machine, with LOCAL_CONFIG."""
    import dask
    from distributed import LocalCluster
    with dask.config.set(LOCAL_CONFIG):  # the nannies pass it on to their workers
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                            dashboard_address=None, silence_logs=logging.ERROR)


@contextlib.contextmanager
def connect(spec: str, threads_per_worker: int = 1):
    """A distributed.Client for `spec`. local:N starts N single-task worker processes here
    (local_cluster) and stops them on exit."""
    from distributed import Client
    check_scheduler(spec)
    m = LOCAL.match(spec)
    if m:
        cluster = local_cluster(int(m.group(1)), threads_per_worker)
        with cluster, Client(cluster) as client:
            yield client
    elif ADDRESS.match(spec):
        with Client(spec) as client:
            yield client
    else:
        with Client(scheduler_file=spec) as client:
            yield client


def local_workers(spec: str | None) -> int | None:
    """N for local:N, else None."""
    m = LOCAL.match(spec or "")
    return int(m.group(1)) if m else None


def n_threads(client) -> int:
    """Task threads over all the cluster's workers now (at least 1)."""
    return max(1, sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values()))
