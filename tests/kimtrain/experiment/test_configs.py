"""The experiment files shipped in configs/ load and pass every check (keys, strategies, variants
and the runs they adopt from, each strategy's refusals for each model), as `kimtrain experiment`
would run them from the repository root. A file whose data is not on this machine (a download, or
the shared sets beside the repository) is skipped, naming the missing file."""
import os
from pathlib import Path

import pytest
import yaml

from kimtrain.experiment.spec import expand, load_spec

from conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _missing(path: Path) -> str | None:
    """The first data file (or pattern) of the experiment file `path` absent here, else None."""
    for ds in yaml.safe_load(path.read_text())["datasets"]:
        entries = ds["data"] + ([ds["pool_file"]] if ds.get("pool_file") else [])
        try:
            files = expand(entries, ds["name"])
        except ValueError as err:  # a pattern that matches nothing
            return str(err)
        for f in files:
            if not Path(f).is_file():
                return f
    return None


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_experiment_file_loads(path, monkeypatch):
    monkeypatch.chdir(REPO)
    missing = _missing(path)
    if missing:
        pytest.skip(f"{path.name}: data not on this machine ({missing})")
    spec = load_spec(os.path.relpath(path, REPO))
    assert spec.datasets and spec.models
    assert spec.strategies or spec.variants, f"{path.name} runs nothing"
