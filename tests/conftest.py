"""Shared fixtures: small real configurations written by the tests, and the third-party DFT sets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def demo_spec() -> dict:
    """configs/demo.yaml with its data paths made absolute (tests write the spec elsewhere)."""
    import yaml
    spec = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    ds = spec["datasets"][0]
    ds["data"] = [str(REPO / p) for p in ds["data"]]
    ds["pool_file"] = str(REPO / ds["pool_file"])
    return spec


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip with the reason when the folder is absent."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} not present (third-party DFT sets live in ../shared/data)")
    return path


def rattled(symbol="Si", structure="diamond", a=5.43, n=10, seed=0, cubic=True, repeat=(1, 1, 1), amp=0.08):
    """n strained and rattled copies of a bulk cell (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        at = bulk(symbol, structure, a=a, cubic=cubic).repeat(repeat)
        at.set_cell(at.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        at.rattle(amp, seed=int(rng.integers(1 << 30)))
        at.info["config_type"] = f"{structure}_rattled"
        out.append(at)
    return out


def agau_cells(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        at = bulk("Ag", "fcc", a=4.12, cubic=True)
        at.set_chemical_symbols(rng.choice(["Ag", "Au"], size=len(at)).tolist())
        at.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out


def write_labelled(path, frames, energies):
    for at, e in zip(frames, energies):
        at.calc = SinglePointCalculator(at, energy=e)
    write(path, frames, format="extxyz")
    return path


@pytest.fixture
def si_file(tmp_path):
    """60 rattled 8-atom Si cells with made-up reference energies, as extxyz."""
    frames = rattled(n=60, seed=1)
    return write_labelled(tmp_path / "si.extxyz", frames, [-5.4 * len(a) + 0.01 * k for k, a in enumerate(frames)])
