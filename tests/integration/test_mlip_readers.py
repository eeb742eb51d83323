"""The exports that MACE and nequip read, read by the real packages (`make check-mlip` installs each
in a virtual environment of its own: they pin different e3nn). Skipped where neither is installed."""
import numpy as np
import pytest

from kimlabel.cli import main

from conftest import rattled, write_labelled


@pytest.fixture(scope="module", params=[[], ["--ref-keys", "REF"]], ids=["calculator", "REF-keys"])
def export(tmp_path_factory, request):
    """10 Si cells labelled by EDIP with forces, exported to extxyz, the DFT reference as the frames'
    calculator results or as REF_energy / REF_forces: (path, table, forces table, ref keys used)."""
    import pandas as pd
    tmp = tmp_path_factory.mktemp("mlip")
    frames = rattled(n=10, seed=4)
    data = write_labelled(tmp / "si.extxyz", frames, [-5.4 * len(a) for a in frames])
    table = tmp / "si.parquet"
    assert main(["label", str(data), "--potentials", "EDIP", "--forces", "--out", str(table), "--quiet"]) == 0
    out = tmp / "si_eip.extxyz"
    assert main(["export", str(table), "--format", "extxyz", "--out", str(out), *request.param]) == 0
    return out, pd.read_parquet(table), pd.read_parquet(tmp / "si.forces.parquet"), bool(request.param)


def edip_forces(forces, k):
    return forces[forces.config_id == k].sort_values("atom")[["fx__EDIP", "fy__EDIP", "fz__EDIP"]].to_numpy()


def test_mace_reads_the_eip_labels(export):
    pytest.importorskip("mace")
    from mace.data.utils import KeySpecification, load_from_xyz
    path, table, forces, _ = export
    keys = KeySpecification.from_defaults().update(info_keys={"energy": "energy__EDIP"},
                                                   arrays_keys={"forces": "forces__EDIP"})
    _, configs = load_from_xyz(str(path), keys)
    assert len(configs) == 10
    for k, c in enumerate(configs):
        assert c.properties["energy"] == pytest.approx(table.energy__EDIP[k], abs=1e-9)
        np.testing.assert_allclose(c.properties["forces"], edip_forces(forces, k), atol=1e-7)  # extxyz: 8 decimals


def test_nequip_reads_the_eip_labels(export):
    nequip = pytest.importorskip("nequip")
    if int(nequip.__version__.split(".")[1]) < 7 and nequip.__version__.startswith("0."):
        pytest.skip(f"nequip {nequip.__version__}: the example is written for nequip >= 0.7 (its ASEDataset)")
    from nequip.data.dataset import ASEDataset
    path, table, forces, ref_keys = export
    ds = ASEDataset(file_path=str(path), transforms=[], include_keys=["energy__EDIP", "forces__EDIP"],
                    key_mapping={"energy__EDIP": "total_energy", "forces__EDIP": "forces"})
    assert len(ds) == 10
    for k in range(10):
        energy = float(ds[k]["total_energy"].reshape(-1)[0])  # float32
        if not ref_keys:  # nequip takes a frame's calculator results over key_mapping: the DFT energy
            assert energy == pytest.approx(table.energy_ref[k], rel=1e-7)
            continue
        assert energy == pytest.approx(table.energy__EDIP[k], rel=1e-7)
        np.testing.assert_allclose(ds[k]["forces"].numpy(), edip_forces(forces, k), atol=1e-5)
