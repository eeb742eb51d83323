"""KIM simulator models through LAMMPS: TMOD in the si set, finite differences, unusable models."""
import numpy as np
import pytest
from ase.build import bulk

import kimlabel
from kimlabel.cli import main
from kimlabel.potentials import resolve

TMOD = "Sim_LAMMPS_ModifiedTersoff_KumagaiIzumiHara_2007_Si__SM_773333226968_000"
SMTBQ = "Sim_LAMMPS_SMTBQ_SallesPolitanoAmzallag_2016_Al__SM_404097633924_000"


def test_tmod_is_in_the_si_set_and_gives_its_cohesive_energy():
    assert resolve("si")["TMOD"] == TMOD
    df = kimlabel.label([bulk("Si", "diamond", a=5.43)], "TMOD")
    assert df.loc[0, "status__TMOD"] == "ok"
    assert df.loc[0, "energy__TMOD"] / 2 == pytest.approx(-4.630, abs=5e-4)


def test_tmod_forces_equal_finite_differences_in_a_triclinic_cell():
    at = bulk("Si", "diamond", a=5.43)  # primitive, triclinic cell
    at = at.repeat((2, 2, 1))
    at.rattle(0.05, seed=3)
    h = 1e-4
    probes = [(0, 0), (3, 1), (5, 2)]
    frames = [at]
    for atom, axis in probes:
        for sign in (1, -1):
            d = at.copy()
            d.positions[atom, axis] += sign * h
            frames.append(d)
    df = kimlabel.label(frames, "TMOD", forces=True)
    f = df.attrs["forces"]
    f0 = f[f.config_id == 0].sort_values("atom")[["fx__TMOD", "fy__TMOD", "fz__TMOD"]].to_numpy()
    assert np.abs(f0).max() > 0.1  # rattled: real forces
    for p, (atom, axis) in enumerate(probes):
        fd = -(df.loc[1 + 2 * p, "energy__TMOD"] - df.loc[2 + 2 * p, "energy__TMOD"]) / (2 * h)
        assert fd == pytest.approx(f0[atom, axis], abs=2e-3)


def test_a_simulator_model_this_lammps_cannot_run_stops_before_any_work(tmp_path, capsys):
    from ase.io import write
    path = tmp_path / "al.extxyz"
    write(path, [bulk("Al", "fcc", a=4.05)])
    out = tmp_path / "t.parquet"
    assert main(["label", str(path), "--potentials", f"EDIP,{SMTBQ}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs LAMMPS pair style smtbq, which this LAMMPS lacks" in err
    assert not out.exists() and not (tmp_path / "t.parquet.parts").exists()


def test_models_listing_marks_simulator_models(capsys):
    assert main(["models", "--species", "Si"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tmod = [line for line in lines if line.startswith(TMOD)]
    assert tmod and "runs here through LAMMPS" in tmod[0]
    assert any(line.startswith("EDIP_JustoBazantKaxiras_1998_Si__MO_958932894036_002") for line in lines)

