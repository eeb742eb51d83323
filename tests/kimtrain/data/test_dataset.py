"""Dataset readers (ANI-Al HDF5, DeePMD), splits, and the shared DFT sets through the same loaders."""
import h5py
import numpy as np
import pandas as pd
import pytest
from ase.io import read

from kimtrain.cli import main
from kimtrain.data.dataset import load_dataset
from kimtrain.data.readers import convert, read_ani_al, read_deepmd
from kimtrain.data.splits import make_split, read_split

from conftest import shared_file


def test_ani_al_hdf5_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    coords, cells = rng.random((3, 4, 3)) * 4, np.stack([np.eye(3) * 4.05] * 3)
    energy, force, fermi = rng.normal(-3.7, 0.1, 3), rng.normal(0, 0.1, (3, 4, 3)), rng.random(3)
    path = tmp_path / "al.h5"
    with h5py.File(path, "w") as fh:
        g = fh.create_group("set0/Al4")
        g["coordinates"], g["cell"], g["energy"], g["force"], g["fermi"] = coords, cells, energy, force, fermi
        g["species"] = np.array([b"Al"] * 4)
    frames = read_ani_al(path)
    assert len(frames) == 3 and frames[0].get_chemical_formula() == "Al4" and frames[0].pbc.all()
    assert convert("ani-al", path, tmp_path / "al.extxyz") == 3
    back = read(tmp_path / "al.extxyz", ":")
    for k, at in enumerate(back):
        assert np.allclose(at.positions, coords[k]) and np.allclose(at.cell, cells[k])
        assert at.get_potential_energy() == pytest.approx(energy[k]) and np.allclose(at.get_forces(), force[k])
        assert at.info["fermi"] == pytest.approx(fermi[k])
    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh["x/coordinates"] = coords
    with pytest.raises(ValueError, match="bad.h5.*energy|bad.h5.*cell"):
        read_ani_al(tmp_path / "bad.h5")


def test_deepmd_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    system = tmp_path / "AgAu" / "sys0"
    (system / "set.000").mkdir(parents=True)
    (system / "type.raw").write_text("0\n1\n1\n0\n")
    (system / "type_map.raw").write_text("Ag\nAu\n")
    coord, box = rng.random((2, 12)) * 4, np.tile((np.eye(3) * 4.1).ravel(), (2, 1))
    energy, force = np.array([-12.1, -12.3]), rng.normal(0, 0.1, (2, 12))
    for name, arr in (("coord", coord), ("box", box), ("energy", energy), ("force", force)):
        np.save(system / "set.000" / f"{name}.npy", arr)
    frames = read_deepmd(system)
    assert [a.get_chemical_symbols() for a in frames][0] == ["Ag", "Au", "Au", "Ag"]
    assert convert("deepmd", tmp_path / "AgAu", tmp_path / "agau.extxyz") == 2
    back = load_dataset([tmp_path / "agau.extxyz"])
    assert np.allclose(back.energy, energy)
    assert np.allclose(back.atoms[1].positions, coord[1].reshape(4, 3))
    (system / "set.000" / "force.npy").unlink()
    with pytest.raises(ValueError, match="force.npy"):
        read_deepmd(system)


def test_split_reproducible_and_exact(tmp_path):
    a = make_split(1000, 3, {"pool": 0.8, "train": 0.12, "val": 0.04, "test": 0.04})
    b = make_split(1000, 3, {"pool": 0.8, "train": 0.12, "val": 0.04, "test": 0.04})
    pd.testing.assert_frame_equal(a, b)
    assert a.mark.value_counts().to_dict() == {"pool": 800, "train": 120, "val": 40, "test": 40}
    c = make_split(1000, 4, {"pool": 0.8, "train": 0.12, "val": 0.04, "test": 0.04})
    assert not (a.mark == c.mark).all()
    odd = make_split(101, 0, {"pool": 0.8, "train": 0.12, "val": 0.04, "test": 0.04}).mark.value_counts()
    assert odd.sum() == 101 and abs(odd["pool"] - 80.8) < 1 and abs(odd["train"] - 12.12) < 1


def test_split_cli_on_shared_set_with_pool_file_and_strata(tmp_path):
    si = shared_file("Si_mlearn.extxyz.gz")
    pool = shared_file("Si_liu2023_vacancy_interstitial.extxyz.gz")
    out = tmp_path / "split.csv"
    args = ["split", str(si), "--pool-file", str(pool), "--seed", "1", "--pool", "0", "--train", "0.5",
            "--val", "0.25", "--test", "0.25", "--stratify", "config_type", "--out", str(out)]
    assert main(args) == 0
    split = read_split(out, 239 + 370)
    assert (split.mark[239:] == "pool").all()
    data = load_dataset([si])
    per_type = pd.crosstab(np.array(data.config_type), split.mark[:239].values)
    assert (per_type["train"] >= per_type["test"]).all() and per_type.loc["AIMD-NVT", "train"] == 50
    assert np.isfinite(data.energy).all()
    assert (data.energy / data.n_atoms).min() == pytest.approx(-5.4253, abs=1e-4)  # the data README
    with pytest.raises(ValueError, match="split.csv"):
        read_split(out, 239)
