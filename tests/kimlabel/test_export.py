"""`kimlabel export`: extxyz and ASE database files whose values equal the table's."""
import numpy as np
import pandas as pd
import pytest
from ase.db import connect
from ase.io import read

from kimlabel.cli import main
from kimlabel.schema import forces_path


@pytest.fixture
def table(si_file, tmp_path):
    out = tmp_path / "t.parquet"
    assert main(["label", str(si_file), "--potentials", "EDIP,SW_Balamane,Tersoff_T3", "--out", str(out),
                 "--forces", "--quiet"]) == 0
    return out


def test_extxyz_round_trip_equals_the_table(table, si_file, tmp_path):
    out = tmp_path / "t.extxyz"
    assert main(["export", str(table), "--format", "extxyz", "--out", str(out)]) == 0
    frames, df = read(out, ":"), pd.read_parquet(table)
    forces = pd.read_parquet(forces_path(table))
    originals = read(si_file, ":")
    assert len(frames) == len(df) == 60
    for at, (_, row) in zip(frames, df.iterrows()):
        assert at.info["config_id"] == row.config_id and at.info["config_type"] == "diamond_rattled"
        f = forces[forces.config_id == row.config_id].sort_values("atom")
        for name in ("EDIP", "SW_Balamane", "Tersoff_T3"):
            assert at.info[f"status__{name}"] == "ok"
            assert at.info[f"energy__{name}"] == pytest.approx(row[f"energy__{name}"], abs=1e-9)
            np.testing.assert_allclose(at.arrays[f"forces__{name}"], f[[f"fx__{name}", f"fy__{name}", f"fz__{name}"]],
                                       atol=1e-7)  # extxyz writes 8 decimals
        assert at.get_potential_energy() == pytest.approx(row.energy_ref)  # the reference, as nequip reads it
        np.testing.assert_allclose(at.positions, originals[row.config_id].positions, atol=1e-7)
    assert main(["export", str(table), "--format", "extxyz", "--out", str(out)]) == 2  # never over a file


def test_ref_keys_template_and_asedb(table, tmp_path):
    out = tmp_path / "r.extxyz"
    assert main(["export", str(table), "--format", "extxyz", "--out", str(out), "--ref-keys", "REF",
                 "--energy-key-template", "{name}_energy"]) == 0
    at, row = read(out, 0), pd.read_parquet(table).iloc[0]
    assert at.info["REF_energy"] == pytest.approx(row.energy_ref) and at.calc is None
    assert at.info["EDIP_energy"] == pytest.approx(row.energy__EDIP, abs=1e-9)
    db = tmp_path / "t.db"
    assert main(["export", str(table), "--format", "asedb", "--out", str(db)]) == 0
    with connect(db) as c:
        rows = list(c.select())
        assert len(rows) == 60
        first = c.get(config_id=0)
        assert first.key_value_pairs["energy__SW_Balamane"] == pytest.approx(row.energy__SW_Balamane, abs=1e-9)
        assert first.data["forces__EDIP"].shape == (8, 3)
        assert first.energy == pytest.approx(row.energy_ref)


def test_only_ok_entries_carry_values(tmp_path):
    from ase import Atoms
    from ase.build import bulk
    from ase.io import write
    path = tmp_path / "mixed.extxyz"
    write(path, [bulk("Si", "diamond", a=5.43), Atoms("Xe", positions=[[0, 0, 0]], cell=[5, 5, 5], pbc=True)])
    table = tmp_path / "m.parquet"
    assert main(["label", str(path), "--potentials", "EDIP", "--out", str(table), "--forces", "--quiet"]) == 0
    out = tmp_path / "m.extxyz"
    assert main(["export", str(table), "--format", "extxyz", "--out", str(out)]) == 0
    ok, bad = read(out, ":")
    assert "energy__EDIP" in ok.info and "forces__EDIP" in ok.arrays
    assert bad.info["status__EDIP"] == "unsupported_species"
    assert "energy__EDIP" not in bad.info and "forces__EDIP" not in bad.arrays
