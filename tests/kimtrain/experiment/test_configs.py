"""The experiment files shipped in configs/ load and pass every check (keys, strategies, variants
and the runs they adopt from, each strategy's refusals for each model), as `kimtrain experiment`
would run them from the repository root. A file whose data is not on this machine (a download, or
the shared sets beside the repository) is skipped, naming the missing file."""
import os
from pathlib import Path

import pytest
import yaml

from kimtrain.experiment.spec import load_spec

from conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _missing(path: Path) -> list[str]:
    raw = yaml.safe_load(path.read_text())
    files = [f for ds in raw["datasets"] for f in ds["data"] + ([ds["pool_file"]] if ds.get("pool_file") else [])]
    return [f for f in files if not (any(REPO.glob(f)) if any(ch in f for ch in "*?[") else (REPO / f).is_file())]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_experiment_file_loads(path, monkeypatch):
    missing = _missing(path)
    if missing:
        pytest.skip(f"{path.name}: data not on this machine ({missing[0]})")
    monkeypatch.chdir(REPO)
    spec = load_spec(os.path.relpath(path, REPO))
    assert spec.datasets and spec.models
    assert spec.strategies or spec.variants, f"{path.name} runs nothing"

