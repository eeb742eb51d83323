"""auto in an experiment: its candidates are runs of their own (a sibling strategy with the same
settings is reused, not trained twice) and auto only chooses among them on validation."""
import json

import pandas as pd
import pytest
import yaml

from kimtrain.cli import main
from kimtrain.experiment.plan import plan_tasks
from kimtrain.experiment.run import Execution, Plan, _plan_dataset
from kimtrain.experiment.spec import load_spec

from conftest import demo_spec


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auto_plan")
    spec = demo_spec()
    spec["datasets"][0]["potentials"] = ["SW_Balamane", "Tersoff_T2"]
    spec["strategies"] = ["baseline", "auto"]
    spec["strategy"] = dict(spec.get("strategy") or {}, auto_candidates=["baseline", "mf"], mf_weights=[0.1, 1.0])
    spec["quick"] = {"epochs": 2, "pretrain_epochs": 2, "classifier_epochs": 2, "pool_max": 60, "models": ["schnet"]}
    path = tmp / "auto.yaml"
    path.write_text(yaml.safe_dump(spec))
    return tmp, path


def test_auto_reuses_the_sibling_run_and_adds_the_missing_candidate(config):
    tmp, path = config
    spec = load_spec(path, quick=True)
    plan = Plan()
    _plan_dataset(plan, spec, spec.datasets[0], tmp / "plan", Execution(quick=True))
    labels = [p.label for p in plan.runs]
    assert labels == ["baseline", "mf", "auto"]  # mf added before auto; baseline is the sibling itself
    auto = plan.runs[-1]
    assert [c.label for c in auto.candidates] == ["baseline", "mf"] and auto.candidates[0] is plan.runs[0]
    tasks = {t.name: t for t in plan_tasks(plan.runs, tmp / "plan", None)}
    auto_task = tasks["si-demo/schnet/seed0/auto"]
    assert sorted(auto_task.needs) == ["si-demo/schnet/seed0/baseline", "si-demo/schnet/seed0/mf"]
    assert not any("auto " in name for name in tasks)  # no training of auto's own


def test_auto_takes_the_lowest_validation_candidate_and_its_test_metrics(config):
    tmp, path = config
    out = tmp / "exp"
    assert main(["experiment", str(path), "--out", str(out), "--quick"]) == 0
    df = pd.read_csv(out / "results.csv").set_index("strategy")
    m = json.loads((out / "si-demo" / "schnet" / "seed0" / "auto" / "metrics.json").read_text())
    figures = m["auto_validation"]
    assert set(figures) == {"baseline", "mf"}
    choice = min(figures, key=figures.get)
    assert m["auto_choice"] == choice
    assert df.loc["auto", "test_mae_per_atom"] == pytest.approx(df.loc[choice, "test_mae_per_atom"], rel=1e-12)
    assert df.loc["auto", "val_mae_per_atom"] == pytest.approx(figures[choice], rel=1e-12)
    assert m["auto_trainings"] == 3  # baseline once, mf's two weights
    assert (out / "si-demo" / "schnet" / "seed0" / "auto" / "best.pt").exists()
    assert not (out / "si-demo" / "schnet" / "seed0" / "auto" / "mf").exists()  # nothing trained twice
