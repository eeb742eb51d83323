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


SMALL_MODEL = {"hidden": 64, "n_layers": 3, "soap_n_max": 4, "soap_l_max": 3}  # quick real trainings


def shared_set(tmp, name: str, **train) -> dict:
    """A set of ../shared/data with a 50/25/25 split and a YAML of small model settings (train
    options added), as {tmp, data, split, config}."""
    import yaml
    from kimtrain.cli import main
    data = str(shared_file(name))
    split = tmp / "split.csv"
    assert main(["split", data, "--out", str(split), "--seed", "0", "--pool", "0", "--train", "0.5",
                 "--val", "0.25", "--test", "0.25"]) == 0
    config = tmp / "small.yaml"
    config.write_text(yaml.safe_dump({"model": SMALL_MODEL, "train": {"progress": False, **train}}))
    return {"tmp": tmp, "data": data, "split": str(split), "config": str(config)}


@pytest.fixture(scope="session")
def cu(tmp_path_factory):
    """The Cu-Ag-Au VASP set, a 50/25/25 split, and a YAML with small model settings."""
    return shared_set(tmp_path_factory.mktemp("cu"), "CuAgAu_pyclupan_fcc.extxyz.gz")


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


def big_si_input(path, n=2500):
    """n rattled 64-atom Si cells, gzipped extxyz: a labelling run long enough to interrupt."""
    import gzip
    with gzip.open(path, "wt") as fh:
        write(fh, rattled(n=n, seed=11, repeat=(2, 2, 2)), format="extxyz")
    return path


def wait_for_parts(parts: Path, n: int, proc, timeout: float = 120):
    """Block until `parts` holds n finished chunks (or `proc` ends, or timeout s pass)."""
    import time
    deadline = time.time() + timeout
    while len(list(parts.glob("part-*.parquet"))) < n and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)


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


TINY_MODEL = {"hidden": 32, "n_layers": 3, "n_rbf": 20, "soap_n_max": 4, "soap_l_max": 3}  # float64 property checks


def tiny_model(name, frames, species, n_out=1, **options):
    """(model in float64 eval mode, its ModelConfig): a small registered model, weights from seed 0,
    input standardisation fitted on frames."""
    from kimtrain.config import ModelConfig
    from kimtrain.models.factory import new_model, prepare_graphs
    cfg = ModelConfig(name=name, **{**TINY_MODEL, **options})
    graphs = prepare_graphs(frames, cfg, species)
    return new_model(cfg, n_out, graphs, graphs, seed=0).double().eval(), cfg


def model_energies(model, cfg, frames, species):
    """First-output energies (eV) of frames in one float64 batch."""
    import torch
    from kimtrain.data.graphs import collate
    from kimtrain.models.factory import prepare_graphs
    batch = collate(prepare_graphs(frames, cfg, species), dtype=torch.float64)
    return model(batch).detach().numpy()[:, 0]


def assert_forces_match_finite_differences(name, **options):
    """Autograd forces (eV/Å) of a tiny float64 model on a rattled Si cell against central
    differences of its energy (h = 1e-5 Å) on three atom-axis pairs."""
    import torch
    from kimtrain.data.graphs import collate
    from kimtrain.models.factory import prepare_graphs
    at = rattled(n=1, seed=5, amp=0.15)[0]
    model, cfg = tiny_model(name, [at], ["Si"], **options)
    batch = collate(prepare_graphs([at], cfg, ["Si"]), dtype=torch.float64)
    batch.positions.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(batch)[0, 0], batch.positions)
    forces = -grad.numpy()
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = at.copy(), at.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        e_plus, e_minus = model_energies(model, cfg, [plus, minus], ["Si"])
        fd = -(e_plus - e_minus) / (2 * h)
        assert abs(fd - forces[atom, axis]) < 1e-6 + 1e-4 * abs(fd), (atom, axis, fd, forces[atom, axis])
    assert np.abs(forces).max() > 1e-4


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration/ (end-to-end command-line runs) is slow: `make test-fast`
    (pytest -m "not slow") leaves it out, with the tests marked slow one by one."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.slow)
