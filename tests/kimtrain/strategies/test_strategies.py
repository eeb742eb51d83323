"""Strategies are plugins: one registered in a test runs through `kimtrain experiment` untouched."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

from kimtrain import strategies
from kimtrain.cli import main
from kimtrain.strategies.base import REGISTRY, Strategy
from kimtrain.strategies.steps import SharedStep

from conftest import demo_spec


@dataclasses.dataclass(frozen=True)
class HalfEpochs(Strategy):
    """A toy: the baseline trained for half the epochs."""

    def train(self, ctx, out, prepared, variant, resume=False):
        run = dataclasses.replace(ctx.run, train=dataclasses.replace(ctx.run.train, epochs=ctx.run.train.epochs // 2))
        return super().train(dataclasses.replace(ctx, run=run), out, prepared, variant, resume)


def quick_demo(tmp_path, strategies: list, **quick):
    """kimtrain experiment --quick on the demo set, SchNet only: (its folder, results by strategy)."""
    spec = demo_spec()
    spec["strategies"] = strategies
    spec["quick"] = {**quick, "models": ["schnet"]}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "exp"
    assert main(["experiment", str(config), "--out", str(out), "--quick"]) == 0
    return out, pd.read_csv(out / "results.csv").set_index("strategy")


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


@pytest.mark.slow
def test_a_registered_toy_strategy_runs_in_an_experiment(toy, tmp_path):
    out, runs = quick_demo(tmp_path, ["baseline", "toy"], epochs=4, pool_max=50)
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


class MeanEIPLabels(SharedStep):
    """A toy shared step of a new kind: the mean of the aligned EIP energies of each pool
    configuration, written to the shared folder once and offered as augmented labels."""
    name = "mean_eip"

    def run(self, ctx, labels, folder, reuse):
        path = folder / "labels.npz"
        if not (reuse and path.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            pool = ctx.idx["pool"]
            values = np.nanmean(labels.aligned[pool], axis=1)
            keep = np.isfinite(values)
            np.savez(path, ids=pool[keep], values=values[keep])
        return dict(np.load(path))

    def apply(self, ctx, labels, result, prepared):
        prepared.aux = ctx.subset(result["ids"], result["values"])
        prepared.report["mean_eip_labels"] = int(len(result["ids"]))


@dataclasses.dataclass(frozen=True)
class MeanEIP(Strategy):
    def variants(self, run):
        return [0.5]

    def variant_name(self, variant):
        return f"alpha={variant:g}"


@pytest.fixture
def toy_step():
    strategy = strategies.register(MeanEIP("mean-eip", "DFT plus the mean EIP label of each pool configuration",
                                           steps=(MeanEIPLabels(),)))
    yield strategy
    del REGISTRY["mean-eip"]


@pytest.mark.slow
def test_a_strategy_with_a_new_kind_of_shared_step_runs_through_an_experiment(toy_step, tmp_path):
    """The planner knows steps only through Strategy.steps: the toy's step becomes a task of its
    own in the shared folder, and its training starts from what the step made."""
    out, runs = quick_demo(tmp_path, ["baseline", "mean-eip"], epochs=3, pool_max=60)
    seed = out / "si-demo" / "schnet" / "seed0"
    kept = np.load(seed / "shared" / "mean_eip" / "labels.npz")
    assert runs.loc["mean-eip", "mean_eip_labels"] == len(kept["ids"]) > 40  # the step's report reached metrics.json
    assert (seed / "mean-eip" / "alpha_0.5" / "best.pt").exists()  # trained with the step's labels, alpha 0.5
    assert runs.loc["mean-eip", "val_mae"] != runs.loc["baseline", "val_mae"]
