"""`kimtrain validate --quick` end to end: a trained Δ run (network + its EIP) and an EIP, one table,
the phonon plot, a resumed rerun that computes nothing again, and refusals before any work."""
import json

import pandas as pd

from kimlabel.cli import main as kimlabel_main
from kimtrain.cli import main

from conftest import REPO

DATA = str(REPO / "data" / "si_demo_dft.extxyz.gz")


def test_validate_a_delta_run_and_an_eip(tmp_path, capsys):
    table, split, run = tmp_path / "t.parquet", tmp_path / "split.csv", tmp_path / "delta"
    assert kimlabel_main(["label", DATA, "--potentials", "SW_Balamane", "--out", str(table), "--quiet"]) == 0
    assert main(["split", DATA, "--out", str(split), "--pool", "0.4", "--train", "0.3", "--val", "0.1",
                 "--test", "0.2"]) == 0
    assert main(["fit", "--data", DATA, "--split", str(split), "--table", str(table), "--strategy", "delta",
                 "--eip", "SW_Balamane", "--epochs", "10", "--out", str(run)]) == 0
    out = tmp_path / "val"
    assert main(["validate", str(run), "--eips", "SW_Balamane", "--out", str(out), "--quick"]) == 0
    df = pd.read_csv(out / "validation.csv").set_index("target")
    assert list(df.index) == [str(run), "EIP SW_Balamane"] and set(df.system) == {"si"}
    for target in df.index:  # every property computed or its failure recorded
        row = df.loc[target]
        for prop, step in (("a0", "eos"), ("C11", "elastic"), ("nu_gamma_max", "phonons"), ("E_vac", "vacancy"),
                           ("md_stable_300K", "md")):
            assert pd.notna(row.get(prop)) or pd.notna(row.get(f"{step}_error")), (target, prop)
    eip = df.loc["EIP SW_Balamane"]
    assert abs(eip.a0 - 5.431) < 5e-3 and eip.md_stable_300K == "1/1"
    assert "| EIP SW_Balamane | 1 | 5.43" in (out / "validation.md").read_text()
    assert (out / "phonons_si.png").stat().st_size > 20_000
    # a rerun resumes: nothing is computed again
    before = json.loads((out / "EIP_SW_Balamane.json").read_text())
    capsys.readouterr()
    assert main(["validate", str(run), "--eips", "SW_Balamane", "--out", str(out), "--quick"]) == 0
    assert " in " not in capsys.readouterr().err
    assert json.loads((out / "EIP_SW_Balamane.json").read_text()) == before
    # another target into the same folder joins the table; the earlier rows stay
    assert main(["validate", "--eips", "EDIP", "--out", str(out), "--quick"]) == 0
    assert list(pd.read_csv(out / "validation.csv").target) == [str(run), "EIP EDIP", "EIP SW_Balamane"]


def test_validate_refuses_runs_it_cannot_use_before_any_work(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nothing"), "--out", str(tmp_path / "v")]) == 2
    assert "no best.pt" in capsys.readouterr().err
    assert main(["validate", "--eips", "EMT", "--system", "si", "--out", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v" / "validation.csv").exists()
