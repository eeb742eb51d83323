"""Strategies that use EIP labels: la (label augmentation), mp (multi-task pretraining), mp+la.

A strategy run is made of independent trainings, so that `kimtrain experiment --jobs N` can run
them in parallel: the shared trainings (pretraining, classifier), then one fine-tuning per
variant (per alpha for la and mp+la), then the selection of the best variant on validation.
"""
from __future__ import annotations

import copy
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .alignment import align, load_eip_table
from .augment import augmented_labels, label_quality, train_classifier
from .task import train_energy
from .pretrain import for_finetuning, pretrain, pretrain_losses


@dataclass
class Prepared:
    """What a strategy's fine-tunings start from."""
    start: object       # pretrained model with a fresh energy head (mp, mp+la), else None
    aux: object         # LabelledSet of augmented labels (la, mp+la), else None
    alphas: list        # LA weights to try ([0.0] without LA)
    report: dict        # pretraining / classifier figures for metrics.json


def uses(strategy: str) -> tuple[bool, bool]:
    """(needs a pretraining, needs a classifier) for a strategy name."""
    return strategy in ("mp", "mp+la"), strategy in ("la", "mp+la")


def prepare(ctx, out, strategy: str, resume: bool = False, shared=None) -> Prepared:
    """Run (or reuse) the shared trainings of `strategy` on ctx.

    shared: a folder where the pretrained model and the classifier are kept and reused by other
    strategies on the same split (mp and mp+la share one pretraining, la and mp+la one classifier).
    """
    run, out = ctx.run, Path(out)
    common, reuse = (Path(shared), True) if shared else (out, resume)
    table = load_eip_table(run.table, len(ctx.data))
    labels = align(table, ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species,
                   run.strategy.max_energy_per_atom, run.strategy.eips)
    needs_pretraining, needs_classifier = uses(strategy)
    report, start = {"eips": ",".join(labels.names)}, None
    if needs_pretraining:
        start, pre_best = pretrain(ctx, labels, common / "pretrain", reuse)
        first, last = pretrain_losses(common / "pretrain")
        report.update(pretrain_loss_first=first, pretrain_loss_last=last,
                      pretrain_val_eip_mae_per_atom=pre_best["val_eip_mae_per_atom"])
        torch.manual_seed(run.train.seed)  # the fresh head's weights depend on the seed alone
        start = for_finetuning(start)
    aux, alphas = None, [0.0]
    if needs_classifier:
        result = train_classifier(ctx, labels, common / "classifier", reuse)
        ids, values = augmented_labels(ctx, labels, result, run.strategy.confidence)
        aux = ctx.subset(ids, values)
        alphas = [run.strategy.alpha] if run.strategy.alpha is not None else list(run.strategy.alphas)
        report.update(classifier_val_accuracy=result.val_accuracy, classifier_val_chance=result.val_chance,
                      **label_quality(ctx, ids, values, run.strategy.cut))
    return Prepared(start, aux, alphas, report)


def variant_dir(out, prepared: Prepared, alpha: float) -> Path:
    return Path(out) / (f"alpha_{alpha:g}" if prepared.aux is not None else "finetune")


def train_variant(ctx, out, prepared: Prepared, alpha: float, resume: bool = False):
    """One fine-tuning of a strategy (one alpha); returns (model, best val metrics, its folder)."""
    sub = variant_dir(out, prepared, alpha)
    start = copy.deepcopy(prepared.start) if prepared.start is not None else None
    model, best = train_energy(ctx, sub, start, prepared.aux, alpha, resume)
    return model, best, sub


def fit_with_eips(ctx, out, strategy: str, resume: bool = False, shared=None):
    """Run `strategy` on ctx; returns (model, best val metrics, report dict). OUT/best.pt is the
    variant (alpha) with the lowest validation per-atom MAE."""
    prepared = prepare(ctx, out, strategy, resume, shared)
    chosen = (math.inf, None, None, None)
    for alpha in prepared.alphas:
        model, best, sub = train_variant(ctx, out, prepared, alpha, resume)
        if best["val_mae_per_atom"] < chosen[0]:
            chosen = (best["val_mae_per_atom"], model, best, sub)
    _, model, best, sub = chosen
    shutil.copyfile(sub / "best.pt", Path(out) / "best.pt")
    report = dict(prepared.report)
    if prepared.aux is not None:
        report["alpha"] = float(sub.name.split("_", 1)[1])
    return model, best, report
