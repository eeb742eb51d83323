"""Strategies are plugins: one registered in a test runs through `kimtrain experiment` untouched."""
import dataclasses

import pandas as pd
import pytest
import yaml

from kimtrain import strategies
from kimtrain.cli import main
from kimtrain.strategies.base import REGISTRY, Strategy

from conftest import demo_spec


@dataclasses.dataclass(frozen=True)
class HalfEpochs(Strategy):
    """A toy: the baseline trained for half the epochs."""

    def train(self, ctx, out, prepared, variant, resume=False):
        run = dataclasses.replace(ctx.run, train=dataclasses.replace(ctx.run.train, epochs=ctx.run.train.epochs // 2))
        return super().train(dataclasses.replace(ctx, run=run), out, prepared, variant, resume)


@pytest.fixture
def toy():
    strategy = strategies.register(HalfEpochs("toy", "baseline for half the epochs"))
    yield strategy
    del REGISTRY["toy"]


def test_paper_strategies_are_registered_in_table_order():
    assert strategies.names()[:4] == ["baseline", "la", "mp", "mp+la"]
    assert [strategies.get(n).needs_table for n in ("baseline", "la", "mp", "mp+la")] == [False, True, True, True]
    with pytest.raises(ValueError, match="unknown strategy 'nope'.*baseline, la, mp, mp\\+la"):
        strategies.get("nope")


def test_a_registered_toy_strategy_runs_in_an_experiment(toy, tmp_path):
    spec = demo_spec()
    spec["strategies"] = ["baseline", "toy"]
    spec["quick"] = {"epochs": 4, "pool_max": 50, "models": ["schnet"]}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "exp"
    assert main(["experiment", str(config), "--out", str(out), "--quick"]) == 0
    runs = pd.read_csv(out / "results.csv").set_index("strategy")
    assert list(runs.index) == ["baseline", "toy", "best EIP"]
    history = pd.read_csv(out / "si-demo" / "schnet" / "seed0" / "toy" / "history.csv")
    assert list(history.epoch) == [1, 2]  # the toy's own training, not the baseline's 4 epochs
    assert runs.loc["toy", "val_mae"] != runs.loc["baseline", "val_mae"]
    assert "| toy |" in (out / "results.md").read_text()


def test_unknown_strategy_in_an_experiment_stops_before_any_work(tmp_path, capsys):
    spec = demo_spec()
    spec["strategies"] = ["baseline", "typo"]
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert main(["experiment", str(config), "--out", str(tmp_path / "exp"), "--quick"]) == 2
    assert "unknown strategy 'typo'" in capsys.readouterr().err
    assert not (tmp_path / "exp" / "si-demo").exists()
