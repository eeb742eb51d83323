"""auto trains its candidates and keeps the one with the lowest validation error: the choice is
the argmin of its recorded figures, and its test metrics are that candidate's own."""
import json

import pytest

from kimlabel.cli import main as kimlabel_main
from kimtrain.cli import main

from conftest import REPO

DATA = str(REPO / "data" / "si_demo_dft.extxyz.gz")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auto")
    table, split = tmp / "table.parquet", tmp / "split.csv"
    assert kimlabel_main(["label", DATA, "--potentials", "SW_Balamane,Tersoff_T2", "--out", str(table), "--quiet"]) == 0
    assert main(["split", DATA, "--out", str(split), "--pool", "0.4", "--train", "0.2", "--val", "0.1",
                 "--test", "0.2"]) == 0
    config = tmp / "small.yaml"
    config.write_text("model: {hidden: 32, n_layers: 2, n_rbf: 20}\ntrain: {progress: false, threads: 1}\n"
                      "strategy: {pretrain_epochs: 3, auto_candidates: [baseline, mp, delta]}\n")
    return tmp, ["--data", DATA, "--split", str(split), "--table", str(table), "--epochs", "4", "--config", str(config)]


def fit(tmp, args, strategy) -> dict:
    out = tmp / strategy
    assert main(["fit", *args, "--strategy", strategy, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_auto_keeps_the_candidate_with_the_lowest_validation_error(setting):
    tmp, args = setting
    m = fit(tmp, args, "auto")
    figures = m["auto_validation"]
    assert set(figures) == {"baseline training", "mp fine-tuning", "delta eip=SW_Balamane", "delta eip=Tersoff_T2"}
    best = min(figures, key=figures.get)
    assert best.split()[0] == m["auto_choice"] and m["val_mae_per_atom"] == pytest.approx(figures[best])
    assert m["auto_trainings"] == 5  # four variants and one shared pretraining
    assert (tmp / "auto" / "shared" / "pretrain" / "best.pt").exists()
    # the chosen candidate run on its own gives the same test metrics
    alone = fit(tmp, args, m["auto_choice"])
    assert alone["test_mae_per_atom"] == pytest.approx(m["test_mae_per_atom"], rel=1e-6)
    assert alone.get("eip") == m.get("eip")


def test_unknown_candidates_are_refused_by_name(setting, tmp_path, capsys):
    _, args = setting
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: {auto_candidates: [baseline, mpp]}\n")
    args = [a if a != args[-1] else str(bad) for a in args]
    assert main(["fit", *args, "--strategy", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "unknown strategy 'mpp'" in capsys.readouterr().err
