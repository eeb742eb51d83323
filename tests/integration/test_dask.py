"""`--scheduler`: kimlabel and the experiment task runner on a real Dask LocalCluster of 2 workers."""
import io
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from kimlabel.cli import main
from kimlabel.schema import forces_path
from kimtrain.experiment.parallel import Task, run_tasks

from conftest import big_si_input, wait_for_parts

EMT = "EMT_Asap_Standard_JacobsenStoltzeNorskov_1996_AlAgAuCuNiPdPt__MO_115316750986_001"


def label(*args):
    return main(["label", *map(str, args), "--quiet"])


def test_dask_table_equals_jobs_1_with_forces(si_file, tmp_path):
    local, dask = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    assert label(si_file, "--potentials", "si", "--out", local, "--forces") == 0
    assert label(si_file, "--potentials", "si", "--out", dask, "--forces", "--scheduler", "local:2") == 0
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(dask), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(forces_path(local)), pd.read_parquet(forces_path(dask)),
                                  check_exact=True)
    assert len(pd.read_parquet(forces_path(dask))) == 60 * 8


def test_a_model_that_kills_its_dask_worker_gets_model_error_only_there(tmp_path):
    frames = [bulk("Al", "fcc", a=4.05), bulk("Al", "fcc", a=1.0), bulk("Al", "fcc", a=4.1),  # a=1 aborts EMT
              bulk("Si", "diamond", a=5.43)]
    path = tmp_path / "crash.extxyz"
    write(path, frames, format="extxyz")
    out = tmp_path / "crash.parquet"
    assert label(path, "--potentials", f"SW_Balamane,{EMT}", "--out", out, "--scheduler", "local:2") == 0
    df = pd.read_parquet(out)
    assert list(df["status__EMT_Standard"]) == ["ok", "model_error", "ok", "unsupported_species"]
    assert list(df["status__SW_Balamane"]) == ["unsupported_species"] * 3 + ["ok"]
    local = tmp_path / "local.parquet"
    assert label(path, "--potentials", f"SW_Balamane,{EMT}", "--out", local) == 0
    pd.testing.assert_frame_equal(df, pd.read_parquet(local), check_exact=True)


def test_interrupted_dask_run_resumes_to_the_same_table(tmp_path):
    src = big_si_input(tmp_path / "big.extxyz.gz", n=1500)
    killed, full = tmp_path / "killed.parquet", tmp_path / "full.parquet"
    cmd = [sys.executable, "-m", "kimlabel.cli", "label", str(src), "--potentials", "si", "--quiet",
           "--scheduler", "local:2"]
    proc = subprocess.Popen(cmd + ["--out", str(killed)], start_new_session=True)
    parts = tmp_path / "killed.parquet.parts"
    wait_for_parts(parts, 5, proc)
    assert proc.poll() is None, "run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its local workers
    proc.wait()
    assert 5 <= len(list(parts.glob("part-*.parquet"))) < 1500 // 32
    assert subprocess.run(cmd + ["--out", str(killed), "--resume"]).returncode == 0
    assert label(src, "--potentials", "si", "--out", full, "--jobs", 2) == 0
    a = pd.read_parquet(killed)
    assert len(a) == 1500 and a.config_id.is_unique
    pd.testing.assert_frame_equal(a, pd.read_parquet(full), check_exact=True)


def test_bad_scheduler_is_named_before_any_work(si_file, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert label(si_file, "--potentials", "si", "--out", out, "--scheduler", "localhost") == 2
    assert "--scheduler: expected local:N, tcp://HOST:PORT or a scheduler JSON file, got 'localhost'" in capsys.readouterr().err
    assert label(si_file, "--potentials", "si", "--out", out, "--scheduler", tmp_path / "gone.json") == 2
    assert f"scheduler file {tmp_path / 'gone.json'} does not exist" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.parts"))


def write_text(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    return text


def append_after(path, needed):
    return write_text(path, open(needed).read() + "+" + os.path.basename(path))


def test_task_runner_on_dask_keeps_order_and_results(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    tasks = [Task("b", append_after, (str(b), str(a)), ["a"]), Task("a", write_text, (str(a), "a"))]
    log = io.StringIO()
    assert run_tasks(tasks, scheduler="local:2", log=log) == {"a": "a", "b": "a+b"}
    assert log.getvalue().startswith("[1/2] a done")
    with pytest.raises(RuntimeError, match="c failed"):
        run_tasks([Task("c", append_after, (str(tmp_path / "c"), str(tmp_path / "nowhere")))], scheduler="local:2")
