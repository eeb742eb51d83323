"""`kimtrain experiment --jobs 2` and `--scheduler local:2` (Dask) train the same models as `--jobs 1`; results kept in a folder
rebuild the tables and let a later sitting skip finished runs."""
import json

import pandas as pd
import pytest
import yaml

from kimtrain.cli import main

from conftest import demo_spec

COLUMNS = ["val_mae", "val_mae_per_atom", "test_mae", "test_mae_per_atom", "best_epoch", "alpha",
           "pretrain_loss_last", "classifier_val_accuracy", "n_selected"]


@pytest.fixture
def demo_config(tmp_path):
    spec = demo_spec()
    spec["quick"] = {"epochs": 4, "classifier_epochs": 4, "pretrain_epochs": 3, "pool_max": 150,
                     "alphas": [0.1, 1.0], "models": ["schnet"]}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    return config


def test_jobs_2_and_dask_equal_jobs_1(demo_config, tmp_path):
    tables = {}
    for name, engine in (("jobs1", ["--jobs", "1"]), ("jobs2", ["--jobs", "2"]), ("dask", ["--scheduler", "local:2"])):
        out = tmp_path / name
        assert main(["experiment", str(demo_config), "--out", str(out), "--quick", *engine,
                     "--threads", "1", "--results", str(tmp_path / f"kept-{name}")]) == 0
        tables[name] = pd.read_csv(out / "results.csv").set_index("strategy")
    one = tables["jobs1"]
    assert one.loc["la", "alpha"] in (0.1, 1.0)
    for name in ("jobs2", "dask"):
        assert list(one.index) == ["baseline", "la", "mp", "mp+la", "best EIP"] == list(tables[name].index)
        pd.testing.assert_frame_equal(one[COLUMNS], tables[name][COLUMNS], check_exact=True)


def test_results_folder_skips_finished_runs_and_rebuilds_tables(demo_config, tmp_path, capsys):
    kept = tmp_path / "kept"
    args = ["experiment", str(demo_config), "--quick", "--strategies", "baseline,mp", "--results", str(kept)]
    assert main(args + ["--out", str(tmp_path / "first")]) == 0
    saved = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("metrics.json"))
    assert saved == ["si-demo/best_EIP/seed0/metrics.json", "si-demo/schnet/seed0/baseline/metrics.json",
                     "si-demo/schnet/seed0/mp/metrics.json"]
    assert json.loads((kept / saved[1]).read_text())["label"] == "baseline"
    capsys.readouterr()
    # a new machine: an empty --out, the kept folder only; nothing is trained again
    assert main(args + ["--out", str(tmp_path / "second")]) == 0
    assert "done" not in capsys.readouterr().err
    first = pd.read_csv(tmp_path / "first" / "results.csv")
    second = pd.read_csv(tmp_path / "second" / "results.csv")
    pd.testing.assert_frame_equal(first, second)
    assert not (tmp_path / "second" / "si-demo" / "schnet" / "seed0" / "baseline" / "best.pt").exists()

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- kimtrain-results:start -->\nold\n<!-- kimtrain-results:end -->\noutro\n")
    assert main(["tables", str(kept), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    mp = first.set_index("strategy").loc["mp", "test_mae_per_atom"]
    assert "## si-demo / schnet" in text and "| mp | " in text and f"{mp:.4f}" in text
    kept_md = (kept / "results.md").read_text()
    assert "Test errors per config_type" in kept_md and "Test errors per config_type" not in text  # results.md only
    assert kept_md.split("\n", 2)[2].split("Test errors per config_type")[0].strip() in text


@pytest.mark.parametrize("flag, value, option", [("--epochs", "0", "train.epochs"), ("--cut", "-1", "strategy.cut"),
                                                 ("--threads", "0", "train.threads")])
def test_fit_rejects_non_positive_options_before_any_work(tmp_path, flag, value, option, capsys):
    out = tmp_path / "run"
    assert main(["fit", "--data", "nowhere.extxyz", "--split", "nowhere.csv", "--out", str(out), flag, value]) != 0
    err = capsys.readouterr().err
    assert option in err and flag in err and "positive" in err
    assert not out.exists()


def test_learning_curve_subsets_are_nested_and_tabulated(demo_config, tmp_path):
    out = tmp_path / "lc"
    assert main(["experiment", str(demo_config), "--out", str(out), "--quick", "--strategies", "baseline,la",
                 "--train-sizes", "8,0.5,20"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert sorted(df[df.strategy == "baseline"].n_train) == [8, 20, 40, 80]  # 0.5 of the 80 train marks; all of them
    names = {n: f"seed0_n{n}.csv" for n in (8, 20, 40)} | {80: "seed0.csv"}  # the full set is the main run
    splits = {n: pd.read_csv(out / "si-demo" / "splits" / name) for n, name in names.items()}
    train = {n: set(s.config_id[s.mark == "train"]) for n, s in splits.items()}
    assert train[8] < train[20] < train[40] < train[80]
    for mark in ("val", "test", "pool"):  # only the train marks shrink
        assert len({frozenset(s.config_id[s.mark == mark]) for s in splits.values()}) == 1
    again = pd.read_csv(out / "si-demo" / "splits" / "seed0_n20.csv")  # seeded: the same subset again
    assert set(again.config_id[again.mark == "train"]) == train[20]
    # the smaller points adopt the alpha chosen on the full train set and train that one alpha only
    la = df[df.strategy == "la"].set_index("n_train").alpha
    assert la.nunique() == 1 and len(la) == 4
    chosen = la[80]
    for n in (8, 20, 40):
        trained = sorted(p.name for p in (out / "si-demo" / "schnet" / "seed0" / f"n{n}" / "la").glob("alpha_*"))
        assert trained == [f"alpha_{chosen:g}"]
    assert len(list((out / "si-demo" / "schnet" / "seed0" / "la").glob("alpha_*"))) == 2  # both alphas at full size
    text = (out / "results.md").read_text()
    assert "Learning curve, si-demo / schnet" in text and "| 8 | " in text and "| 80 | " in text
    assert (out / "learning_si-demo_schnet.png").stat().st_size > 5_000
