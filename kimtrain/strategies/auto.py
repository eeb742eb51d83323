"""auto: train every candidate strategy (strategy.auto_candidates: baseline, mp, delta, mf and
mp+delta by default) on the same split and keep the one with the lowest validation error.

Its steps are the candidates' shared steps, each run once (mp and mp+delta share one pretraining);
its variants are every candidate's variants (Δ's EIPs, mf's weights), each trained in the
candidate's own folder (OUT/<candidate>/...). metrics.json records the choice (`auto_choice`, with
the candidate's own choice: its EIP or weight), the validation figure of every variant
(`auto_validation`) and the number of trainings it cost (`auto_trainings`: the variants plus the
shared steps, each counted once). The test marks never enter the choice.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .base import REGISTRY, Strategy, get, register
from .steps import STEP_OPTIONS, Prepared


def candidate_run(run, name: str):
    """A copy of run as candidate `name` runs it: its own strategy name, and the options of steps it
    lacks (a pretraining force weight for baseline, say) and of other strategies set to 0."""
    run = copy.deepcopy(run)
    run.strategy.strategy = name
    steps = {s.name for s in get(name).steps_for(run)}
    for option, (step, _) in STEP_OPTIONS.items():
        if step not in steps:
            setattr(run.strategy, option, 0.0)
    for other in REGISTRY.items():
        for option in other.own_options:
            if option not in get(name).own_options:
                setattr(run.strategy, option, 0.0)
    return run


def candidate_context(ctx, name: str):
    """ctx with its run as candidate `name` runs it (candidate_run)."""
    return dataclasses.replace(ctx, run=candidate_run(ctx.run, name))


def choose(metrics: dict, key: str) -> str:
    """The candidate (name -> its metrics.json) with the lowest validation figure `key`."""
    usable = {n: m for n, m in metrics.items() if m.get(key) is not None and m[key] == m[key]}
    if not usable:
        raise ValueError(f"auto: no candidate has a validation {key} ({', '.join(metrics)})")
    return min(usable, key=lambda n: usable[n][key])


@dataclass(frozen=True)
class Auto(Strategy):
    def candidates(self, run) -> list:
        names = list(run.strategy.auto_candidates)
        if not names or "auto" in names:
            raise ValueError(f"strategy.auto_candidates must list other strategies, got {names!r}")
        return [get(name) for name in names]  # an unknown name is refused here, with the choices

    def steps_for(self, run) -> tuple:
        """The candidates' shared steps, each once, in order."""
        steps = []
        for c in self.candidates(run):
            steps += [s for s in c.steps_for(run) if s not in steps]
        return tuple(steps)

    def options_for(self, run) -> tuple:
        return tuple(o for c in self.candidates(run) for o in c.own_options)

    def check(self, run):
        self.candidates(run)
        super().check(run)  # step options against the candidates' steps together

    def variants(self, run) -> list:
        return [(c.name, v) for c in self.candidates(run) for v in c.variants(run)]

    def variant_name(self, variant) -> str:
        name, v = variant
        return f"{name} {get(name).variant_name(v)}"

    def variant_report(self, variant) -> dict:
        name, v = variant
        return {"auto_choice": name, **get(name).variant_report(v)}

    def trainings(self, run) -> int:
        """What auto costs, in trainings: every candidate's variants plus their shared steps, each once."""
        return len(self.variants(run)) + len(self.steps_for(run))

    def candidate_runs(self, run) -> dict:
        """Each candidate's run config as the candidate runs on its own (an experiment trains these
        as runs of their own, reusing sibling runs with the same settings, and auto chooses among them)."""
        self.check(run)
        return {c.name: candidate_run(run, c.name) for c in self.candidates(run)}

    def adopt_choice(self, run, metrics: dict):
        """A learning-curve point tries only the candidate chosen at the full size, with its choice."""
        if metrics.get("auto_choice"):
            run.strategy.auto_candidates = [metrics["auto_choice"]]
            get(metrics["auto_choice"]).adopt_choice(run, metrics)

    def prepare(self, ctx, out, resume: bool = False, shared=None) -> Prepared:
        """Each candidate's Prepared; their shared steps run (or are reused) in one shared folder:
        the experiment's, or OUT/shared for a single run."""
        self.check(ctx.run)
        shared = shared or Path(out) / "shared"
        parts = {c.name: c.prepare(candidate_context(ctx, c.name), Path(out) / c.name, resume, shared)
                 for c in self.candidates(ctx.run)}
        report = {k: v for part in parts.values() for k, v in part.report.items()}
        report.update(auto_validation={}, auto_trainings=self.trainings(ctx.run))
        return Prepared(report=report, parts=parts)

    def train(self, ctx, out, prepared, variant, resume: bool = False):
        name, v = variant
        model, best, folder = get(name).train(candidate_context(ctx, name), Path(out) / name, prepared.parts[name], v,
                                              resume)
        key = "val_loss" if ctx.run.train.force_weight > 0 else "val_mae_per_atom"
        prepared.report["auto_validation"][self.variant_name(variant)] = best.get(key)
        return model, best, folder

    def scoring_context(self, ctx, report: dict):
        name = report["auto_choice"]
        return get(name).scoring_context(candidate_context(ctx, name), report)


AUTO = register(Auto("auto", "the candidate strategy with the lowest validation error", uses_table=True))
