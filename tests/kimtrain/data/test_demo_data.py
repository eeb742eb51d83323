"""The bundled GPAW demo set: its contents, and kimlabel carrying its energies into the table."""
import numpy as np
import pandas as pd
from ase.io import read

from kimlabel.cli import main
from kimtrain.data.dataset import load_dataset

from conftest import REPO

DFT = REPO / "data" / "si_demo_dft.extxyz.gz"
POOL = REPO / "data" / "si_demo_pool.extxyz.gz"


def test_demo_set_contents():
    frames = read(DFT, ":")
    assert 350 <= len(frames) <= 450 and max(len(a) for a in frames) <= 16
    types = {a.info["config_type"] for a in frames}
    assert {"diamond_strained", "diamond_rattled", "beta_tin", "simple_cubic", "bcc", "fcc", "hcp",
            "random_dense", "cluster", "vacancy", "surface"} <= types
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    forces = np.concatenate([a.get_forces() for a in frames])
    assert np.isfinite(e).all() and np.isfinite(forces).all()
    assert frames[int(e.argmin())].info["config_type"].startswith("diamond")  # the ground state is lowest
    assert not any(a.pbc.any() for a in frames if a.info["config_type"] == "cluster")
    pool = load_dataset([POOL])  # ase's own gzip reading is quadratic in the frame count
    assert len(pool) >= 2500 and np.isnan(pool.energy).all()


def test_label_demo_set_carries_gpaw_energies(tmp_path):
    out = tmp_path / "demo.parquet"
    assert main(["label", str(DFT), "--potentials", "si", "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    df = pd.read_parquet(out)
    frames = read(DFT, ":")
    assert np.allclose(df.energy_ref, [a.get_potential_energy() for a in frames], rtol=0, atol=1e-6)
    assert list(df.config_type) == [a.info["config_type"] for a in frames]
    ok = (df.filter(like="status__") == "ok").mean()
    assert (ok > 0.9).all(), ok
