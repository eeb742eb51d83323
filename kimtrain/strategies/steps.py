"""The trainings strategies share and the fine-tunings that start from them.

prepare() runs (or reuses) the multi-task pretraining and the LA classifier a strategy needs;
train_variant() trains one model from what prepare() returned, with one LA weight alpha.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.alignment import align, eip_forces, load_eip_table
from .classifier import augmented_labels, label_quality, train_classifier
from .pretraining import for_finetuning, pretrain, pretrain_losses
from ..training.context import train_energy


@dataclass
class Prepared:
    """What a strategy's trainings start from."""
    start: object       # pretrained model with a fresh energy head (mp, mp+la), else None
    aux: object         # LabelledSet of augmented labels (la, mp+la), else None
    report: dict        # pretraining / classifier figures for metrics.json
    labels: object = None   # EIPLabels aligned on the train marks, when the strategy uses the table
    kim_ids: dict = None    # EIP short name -> full KIM ID (the table's metadata)


def prepare(ctx, out, pretraining: bool, classifier: bool, resume: bool = False, shared=None,
            table: bool = False) -> Prepared:
    """Align the table's EIPs on the train marks (when any of the three is asked for) and run (or
    reuse) the pretraining and / or the classifier on ctx.

    shared: a folder where the pretrained model and the classifier are kept and reused by other
    strategies on the same split and EIPs (mp and mp+la share one pretraining per pretraining force
    weight, la and mp+la one classifier).
    """
    if not (pretraining or classifier or table):
        return Prepared(None, None, {})
    run, out = ctx.run, Path(out)
    if not run.table:
        raise ValueError(f"strategy {run.strategy.strategy} needs a kimlabel table (--table)")
    common, reuse = (Path(shared), True) if shared else (out, resume)
    frame, meta = load_eip_table(run.table, len(ctx.data))
    labels = align(frame, ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species,
                   run.strategy.max_energy_per_atom, run.strategy.eips)
    report, start, aux = {"eips": ",".join(labels.names)}, None, None
    pretrain_forces = pretraining and run.strategy.pretrain_force_weight > 0
    augment_forces = classifier and run.strategy.augment_force_weight > 0
    if pretrain_forces or augment_forces:
        labels.forces, masked = eip_forces(run.table, labels, ctx.data.n_atoms, run.strategy.max_force)
        report["pretrain_force_masked_atoms" if pretrain_forces else "eip_force_masked_atoms"] = masked
    if pretraining:
        folder = common / pretrain_folder(run)
        start, pre_best = pretrain(ctx, labels, folder, reuse)
        first, last = pretrain_losses(folder)
        report.update(pretrain_loss_first=first, pretrain_loss_last=last,
                      pretrain_val_eip_mae_per_atom=pre_best["val_eip_mae_per_atom"])
        torch.manual_seed(run.train.seed)  # the fresh head's weights depend on the seed alone
        start = for_finetuning(start)
    if classifier:
        result = train_classifier(ctx, labels, common / "classifier", reuse)
        ids, values, picked = augmented_labels(ctx, labels, result, run.strategy.confidence)
        forces = [labels.forces[i][:, k:k + 1] for i, k in zip(ids, picked)] if augment_forces else None
        aux = ctx.subset(ids, values, forces)
        report.update(classifier_val_accuracy=result.val_accuracy, classifier_val_chance=result.val_chance,
                      **label_quality(ctx, ids, values, run.strategy.cut))
    return Prepared(start, aux, report, labels, meta.get("models", {}))


def pretrain_folder(run) -> str:
    """The pretraining's folder name inside the shared folder: one per pretraining force weight
    (`pretrain`, `pretrain_F1`), while the classifier (`classifier`) serves them all."""
    w = run.strategy.pretrain_force_weight
    return "pretrain" + (f"_F{w:g}" if w else "")


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
