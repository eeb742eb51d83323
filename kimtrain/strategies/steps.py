"""Shared steps: trainings that sibling strategies on the same split reuse (the multi-task
pretraining, the LA classifier, or a step of your own), declared by each strategy and walked by
the experiment's planner without knowing any strategy or step by name.

prepare() aligns the table's EIPs on the train marks, loads their forces when a step asks for
them, runs (or reuses, from the shared folder) each declared step, and lets each step put what it
made into the Prepared its trainings start from. train_variant() trains one model from a Prepared,
with one LA weight alpha.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from ..data.alignment import align, eip_forces, load_eip_table
from ..training.context import check_forces_model, train_energy

STEP_OPTIONS: dict[str, tuple[str, str]] = {}  # strategy option -> (step name, what the option acts on)


@dataclass
class Prepared:
    """What a strategy's trainings start from."""
    start: object = None    # a model to fine-tune (a pretrained representation with a fresh head), or None
    aux: object = None      # LabelledSet of augmented labels (la, mp+la), or None
    report: dict = None     # the steps' figures for metrics.json
    labels: object = None   # EIPLabels aligned on the train marks, when the strategy uses the table
    kim_ids: dict = None    # EIP short name -> full KIM ID (the table's metadata)
    parts: dict = None      # auto: each candidate strategy's own Prepared, by name


class SharedStep:
    """A training that sibling strategies reuse on the same split and EIPs, kept in the shared
    folder under folder(run). A subclass defines run() (train, or reuse what the folder holds) and
    apply() (put the result into a Prepared). `force_option` names the strategy option weighting
    the EIP forces this step trains on, if any: a model without forces refuses it, metrics.json
    records it, and a strategy without this step refuses it (it acts on `acts_on`)."""
    name = "step"
    force_option: str | None = None   # e.g. "pretrain_force_weight"
    acts_on = ""                      # what that option weighs, for messages: "multi-task pretraining"
    forces_key = "eip_force_masked_atoms"  # metrics.json key of the atoms masked when this step loads EIP forces

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.force_option:
            STEP_OPTIONS[cls.force_option] = (cls.name, cls.acts_on)

    def folder(self, run) -> str:
        """The step's folder inside the shared folder (one per setting that changes its result)."""
        return self.name

    def force_weight(self, run) -> float:
        return getattr(run.strategy, self.force_option) if self.force_option else 0.0

    def uses_eip_forces(self, run) -> bool:
        return self.force_weight(run) > 0

    def check(self, run):
        """Refuse, before any work, settings this step cannot use (a force weight on a model without forces)."""
        if self.force_option:
            check_forces_model(run.model.name, self.force_weight(run), f"strategy.{self.force_option}")

    def record(self, run) -> dict:
        """The step's settings metrics.json records."""
        return {self.force_option: self.force_weight(run)} if self.uses_eip_forces(run) else {}

    def run(self, ctx, labels, folder: Path, reuse: bool):
        raise NotImplementedError

    def apply(self, ctx, labels, result, prepared: Prepared):
        raise NotImplementedError


def aligned_labels(ctx, steps) -> tuple:
    """(EIPLabels aligned on the train marks, the table's KIM IDs, report): with the EIP forces when a
    step uses them."""
    run = ctx.run
    if not run.table:
        raise ValueError(f"strategy {run.strategy.strategy} needs a kimlabel table (--table)")
    frame, meta = load_eip_table(run.table, len(ctx.data))
    labels = align(frame, ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species,
                   run.strategy.max_energy_per_atom, run.strategy.eips)
    report = {"eips": ",".join(labels.names)}
    with_forces = [s for s in steps if s.uses_eip_forces(run)]
    if with_forces:
        labels.forces, masked = eip_forces(run.table, labels, ctx.data.n_atoms, run.strategy.max_force)
        report[with_forces[0].forces_key] = masked
    return labels, meta.get("models", {}), report


def prepare(ctx, out, steps=(), table: bool = False, resume: bool = False, shared=None) -> Prepared:
    """Align the table's EIPs (when there are steps, or `table`) and run (or reuse) each step in order.

    shared: the folder where steps keep their results for other strategies on the same split and
    EIPs (mp and mp+la share one pretraining per pretraining force weight, la and mp+la one
    classifier); without it, the steps run in `out`.
    """
    if not (steps or table):
        return Prepared(report={})
    common, reuse = (Path(shared), True) if shared else (Path(out), resume)
    labels, kim_ids, report = aligned_labels(ctx, steps)
    prepared = Prepared(report=report, labels=labels, kim_ids=kim_ids)
    for step in steps:
        step.apply(ctx, labels, step.run(ctx, labels, common / step.folder(ctx.run), reuse), prepared)
    return prepared


def run_step(ctx, step: SharedStep, shared):
    """One step alone, into the shared folder (an experiment's task; its siblings then reuse it)."""
    labels, _, _ = aligned_labels(ctx, [step])
    step.run(ctx, labels, Path(shared) / step.folder(ctx.run), True)


def variant_dir(out, prepared: Prepared, alpha: float) -> Path:
    """OUT/alpha_A (with augmented labels), OUT/finetune (from a pretraining), else OUT itself."""
    if prepared.aux is not None:
        return Path(out) / f"alpha_{alpha:g}"
    return Path(out) / "finetune" if prepared.start is not None else Path(out)


def train_variant(ctx, out, prepared: Prepared, alpha: float, resume: bool = False):
    """One training from `prepared` with LA weight alpha; returns (model, best val metrics, its folder)."""
    sub = variant_dir(out, prepared, alpha)
    start = copy.deepcopy(prepared.start) if prepared.start is not None else None
    model, best = train_energy(ctx, sub, start, prepared.aux, alpha, resume)
    return model, best, sub
