"""A strategy: how a model uses (or doesn't use) EIP knowledge, declared once and registered by name.

Every strategy runs the same way, so that `kimtrain experiment --jobs N` can run its parts in
parallel: the shared steps it declares (`steps`: trainings kept in a `shared` folder and reused by
sibling strategies on the same split, such as mp's pretraining and la's classifier), then one
training per variant (per alpha for LA), then the variant with the lowest validation error is chosen.
A subclass overrides what differs: its variants, its training, what it scores on.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..plugins import Registry
from .steps import STEP_OPTIONS, Prepared, prepare, train_variant

REGISTRY = Registry("strategy")  # name -> Strategy


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    steps: tuple = ()          # SharedStep instances, run in order before the trainings
    uses_table: bool = False   # reads the aligned EIP labels without a shared step (delta)
    own_options: tuple = ()    # strategy options only this strategy acts on (mf: mf_force_weight)

    @property
    def needs_table(self) -> bool:
        """A kimlabel table is needed by any strategy that uses EIP labels."""
        return bool(self.steps) or self.uses_table

    def steps_for(self, run) -> tuple:
        """The shared steps this strategy runs for `run` (the planner schedules them)."""
        return self.steps

    def check(self, run):
        """Refuse, before any work, options this strategy cannot use: a step's option without the
        step, a force weight on a model without forces."""
        names = {step.name for step in self.steps_for(run)}
        for option, (step, what) in STEP_OPTIONS.items():
            value = getattr(run.strategy, option, None)
            if value and step not in names:
                having = [s.name for s in REGISTRY.items() if step in {t.name for t in s.steps}]
                raise ValueError(f"strategy.{option} {value}: strategy {self.name} has no {what}"
                                 + (f" ({' and '.join(having)} have)" if having else ""))
        for other in REGISTRY.items():
            for option in other.own_options:
                value = getattr(run.strategy, option, None)
                if value and option not in self.options_for(run):
                    raise ValueError(f"strategy.{option} {value}: only strategy {other.name} uses it, not {self.name}")
        for step in self.steps_for(run):
            step.check(run)

    def options_for(self, run) -> tuple:
        """The own options this strategy acts on for `run` (auto: those of its candidates)."""
        return self.own_options

    def record(self, run) -> dict:
        """The settings metrics.json records for this strategy's steps."""
        return {k: v for step in self.steps_for(run) for k, v in step.record(run).items()}

    def variants(self, run) -> list:
        """The trainings to choose among on validation (LA: the weights alpha); one by default."""
        return [0.0]

    def variant_name(self, variant) -> str:
        return "training"

    def variant_report(self, variant) -> dict:
        """What metrics.json records of the chosen variant."""
        return {}

    def adopt_choice(self, run, metrics: dict):
        """Fix run's variant to the one another run chose (its metrics.json): learning-curve points
        and ablations reuse a choice made on the same validation marks instead of repeating it."""

    def prepare(self, ctx, out, resume: bool = False, shared=None) -> Prepared:
        self.check(ctx.run)
        return prepare(ctx, out, self.steps, self.uses_table, resume, shared)

    def scoring_context(self, ctx, report: dict):
        """The context whose test marks score the chosen model (delta: DFT minus its EIP)."""
        return ctx

    def train(self, ctx, out, prepared: Prepared, variant: float, resume: bool = False):
        """One variant's training; returns (model, best validation metrics, its folder with best.pt)."""
        return train_variant(ctx, out, prepared, variant, resume)

    def fit(self, ctx, out, resume: bool = False, shared=None):
        """All variants, the best on validation (the validation loss when training on forces, else the
        per-atom energy MAE) copied to OUT/best.pt; returns (model, best, report)."""
        prepared = self.prepare(ctx, out, resume, shared)
        chosen = None
        key = "val_loss" if ctx.run.train.force_weight > 0 else "val_mae_per_atom"
        for variant in self.variants(ctx.run):
            model, best, folder = self.train(ctx, out, prepared, variant, resume)
            if model is not None and (chosen is None or best[key] < chosen[1][key]):
                chosen = (model, best, folder, variant)
        if chosen is None:
            raise ValueError(f"strategy {self.name}: no variant could be trained ({', '.join(map(str, self.variants(ctx.run)))})")
        model, best, folder, variant = chosen
        if Path(folder) != Path(out):
            shutil.copyfile(Path(folder) / "best.pt", Path(out) / "best.pt")
        return model, best, {**prepared.report, **self.variant_report(variant)}


def register(strategy: Strategy) -> Strategy:
    """Make a strategy available by name to `kimtrain fit --strategy`, experiments and tables."""
    return REGISTRY.register(strategy)


def get(name: str) -> Strategy:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()
