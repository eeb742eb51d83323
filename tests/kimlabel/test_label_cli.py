"""kimlabel command line: tables, statuses, resume after SIGKILL, shards, jobs, bad input."""
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from kimlabel.cli import main
from kimlabel.schema import STATUSES, forces_path, read_metadata

from conftest import big_si_input, rattled, wait_for_parts


def run_cli(*args):
    return main([str(a) for a in args])


def test_label_table_schema_and_reference_energies(si_file, tmp_path):
    out = tmp_path / "t.parquet"
    assert run_cli("label", si_file, "--potentials", "si", "--out", out, "--csv", "--forces", "--quiet") == 0
    df = pd.read_parquet(out)
    assert list(df.config_id) == list(range(60))
    assert (df.n_atoms == 8).all() and (df.formula == "Si8").all()
    assert (df.config_type == "diamond_rattled").all()
    assert np.allclose(df.energy_ref, [-5.4 * 8 + 0.01 * k for k in range(60)])
    assert (df.filter(like="status__") == "ok").all().all()
    meta = read_metadata(out)
    assert meta["models"]["EDIP"].startswith("EDIP_JustoBazantKaxiras_1998_Si__MO_")
    assert meta["kimpy"] and meta["kim_api"].startswith("2.") and len(meta["inputs"][0]["sha256"]) == 64
    assert pd.read_csv(out.with_suffix(".csv")).shape == df.shape
    forces = pd.read_parquet(forces_path(out))
    assert len(forces) == 60 * 8 and forces.fx__EDIP.notna().all()
    assert not list(tmp_path.glob("*.parts"))


def test_relative_paths_are_read_from_the_working_directory(si_file, tmp_path, monkeypatch):
    """Inputs, output and parameter files given relative to where the command runs (the models
    themselves run from a scratch directory)."""
    import shutil
    shutil.copy(si_file, tmp_path / "in.extxyz")
    (tmp_path / "sw.yaml").write_text("A: [16.0]\n")
    monkeypatch.chdir(tmp_path)
    assert run_cli("label", "in.extxyz", "--potentials", "EDIP,SW_Balamane@sw.yaml", "--out", "t.parquet",
                   "--quiet") == 0
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert len(df) == 60 and (df.status__SW_Balamane_sw == "ok").all()
    assert read_metadata(tmp_path / "t.parquet")["inputs"][0]["path"] == "in.extxyz"


def test_energy_key(tmp_path):
    frames = rattled(n=3, seed=9)
    for k, a in enumerate(frames):
        a.info["dft_energy"] = -40.0 - k
    path = tmp_path / "k.extxyz"
    write(path, frames, format="extxyz")
    out = tmp_path / "k.parquet"
    assert run_cli("label", path, "--potentials", "EDIP", "--out", out, "--energy-key", "dft_energy", "--quiet") == 0
    assert list(pd.read_parquet(out).energy_ref) == [-40.0, -41.0, -42.0]


def test_every_status_from_real_cases(tmp_path, capsys):
    frames = [
        bulk("Si", "diamond", a=5.43),                           # ok
        Atoms("Xe", positions=[[0, 0, 0]]),                      # unsupported_species
        Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0]]),          # model_error: atoms on top of each other
        Atoms("Si2", positions=[[0, 0, 0], [0.3, 0, 0]]),        # above_limit: 0.3 A apart under SW
        bulk("Al", "fcc", a=1.0),                                # EMT aborts the process (native assertion)
    ]
    path = tmp_path / "s.extxyz"
    write(path, frames, format="extxyz")
    out = tmp_path / "s.parquet"
    emt = "EMT_Asap_Standard_JacobsenStoltzeNorskov_1996_AlAgAuCuNiPdPt__MO_115316750986_001"
    assert run_cli("label", path, "--potentials", f"SW_Balamane,{emt}", "--out", out, "--quiet") == 0
    df = pd.read_parquet(out)
    sw = "status__SW_Balamane"
    assert list(df[sw]) == ["ok", "unsupported_species", "model_error", "above_limit", "unsupported_species"]
    assert df.loc[3, "energy__SW_Balamane"] / 2 > 200
    assert math.isnan(df.loc[1, "energy__SW_Balamane"])
    assert set(df.filter(like="status__").to_numpy().ravel()) <= set(STATUSES)
    em = df["status__EMT_Standard"]  # the KIM ID takes its registry name
    assert em[4] == "model_error" and em[0] == "unsupported_species"
    err = capsys.readouterr().err
    assert "SW_Balamane (SW_BalamaneHaliciogluTiller_1992_Si__MO_113686039439_004) does not support species Al, Xe" in err
    # every model_error keeps its reason, in the table and in the summary
    assert df.loc[2, "error__SW_Balamane"] == "atoms closer than 1e-5 Å"
    assert df.loc[4, "error__EMT_Standard"] == "the model's native code crashed the process"
    assert df.error__SW_Balamane.isna().sum() == 4 and df.error__EMT_Standard.isna().sum() == 4
    assert "SW_Balamane model_error on 1 configuration(s) (config_id 2): atoms closer than 1e-5 Å" in err
    assert "EMT_Standard model_error on 1 configuration(s) (config_id 4): the model's native code crashed" in err


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    src = big_si_input(tmp_path / "big.extxyz.gz")
    full, killed = tmp_path / "full.parquet", tmp_path / "killed.parquet"
    cmd = [sys.executable, "-m", "kimlabel.cli", "label", str(src), "--potentials", "si", "--quiet"]
    proc = subprocess.Popen(cmd + ["--out", str(killed)], start_new_session=True)
    parts = tmp_path / "killed.parquet.parts"
    wait_for_parts(parts, 5, proc)
    assert proc.poll() is None, "run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_parts = len(list(parts.glob("part-*.parquet")))
    assert 5 <= n_parts < 2500 // 32
    assert subprocess.run(cmd + ["--out", str(killed)]).returncode != 0  # refuses without --resume
    assert subprocess.run(cmd + ["--out", str(killed), "--resume"]).returncode == 0
    assert subprocess.run(cmd + ["--out", str(full), "--jobs", "2"]).returncode == 0
    a, b = pd.read_parquet(killed), pd.read_parquet(full)
    assert len(a) == 2500 and a.config_id.is_unique
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # bit for bit, whatever the workers


def test_shards_merge_and_jobs(si_file, tmp_path):
    single, two_jobs = tmp_path / "single.parquet", tmp_path / "jobs2.parquet"
    assert run_cli("label", si_file, "--potentials", "si", "--out", single, "--forces", "--quiet") == 0
    assert run_cli("label", si_file, "--potentials", "si", "--out", two_jobs, "--forces", "--jobs", 2, "--quiet") == 0
    pd.testing.assert_frame_equal(pd.read_parquet(single), pd.read_parquet(two_jobs), check_exact=True)
    shards = [tmp_path / f"shard{i}.parquet" for i in range(3)]
    for i, s in enumerate(shards):
        assert run_cli("label", si_file, "--potentials", "si", "--out", s, "--shard", f"{i}/3", "--forces", "--quiet") == 0
    assert len(pd.read_parquet(shards[1])) == 20
    merged = tmp_path / "merged.parquet"
    assert run_cli("merge", *shards, "--out", merged) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(single), pd.read_parquet(merged))
    pd.testing.assert_frame_equal(pd.read_parquet(forces_path(single)), pd.read_parquet(forces_path(merged)))
    assert run_cli("merge", shards[0], shards[2], "--out", merged) != 0     # missing shard
    assert run_cli("merge", shards[0], shards[0], shards[1], shards[2], "--out", merged) != 0  # duplicated


def test_bad_input_names_file_and_frame(tmp_path, capsys):
    good = rattled(n=2, seed=3)
    path = tmp_path / "bad.extxyz"
    write(path, good, format="extxyz")
    text = path.read_text().splitlines()
    text[2 + 8 + 2 + 3] = "Si 1.0 oops 2.0"   # third atom of frame 1
    path.write_text("\n".join(text) + "\n")
    assert run_cli("label", path, "--potentials", "si", "--out", tmp_path / "o.parquet", "--quiet") == 2
    err = capsys.readouterr().err
    assert "bad.extxyz, frame 1" in err
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    assert run_cli("label", empty, "--potentials", "si", "--out", tmp_path / "e.parquet", "--quiet") == 2
    assert "empty.extxyz" in capsys.readouterr().err
    assert run_cli("label", tmp_path / "nope.xyz", "--potentials", "si", "--out", tmp_path / "n.parquet") == 2
    assert run_cli("label", path, "--potentials", "NotAModel", "--out", tmp_path / "n.parquet") == 2
    assert "NotAModel" in capsys.readouterr().err


def test_resume_never_replaces_a_finished_table_from_other_inputs(si_file, tmp_path, capsys):
    """The reported accident: --resume with other inputs replaced a finished table and exited 0."""
    done = tmp_path / "done.parquet"
    assert run_cli("label", si_file, "--potentials", "EDIP", "--out", done, "--quiet") == 0
    before = done.read_bytes()
    other = tmp_path / "other.extxyz"
    write(other, rattled(n=1, seed=9))
    capsys.readouterr()
    assert run_cli("label", other, "--potentials", "EDIP", "--out", done, "--resume", "--quiet") == 2
    err = capsys.readouterr().err
    assert "inputs (si.extxyz -> other.extxyz)" in err and "would replace it" in err
    assert run_cli("label", si_file, "--potentials", "EDIP,SW_Balamane", "--out", done, "--resume", "--quiet") == 2
    assert "models (EDIP -> EDIP, SW_Balamane)" in capsys.readouterr().err
    assert done.read_bytes() == before and len(pd.read_parquet(done)) == 60
    # the same command again with --resume is a no-op on the finished table; without it, refused
    assert run_cli("label", si_file, "--potentials", "EDIP", "--out", done, "--resume", "--quiet") == 0
    assert run_cli("label", other, "--potentials", "EDIP", "--out", done, "--quiet") == 2
    assert f"{done} exists: choose another --out" in capsys.readouterr().err
    assert done.read_bytes() == before
