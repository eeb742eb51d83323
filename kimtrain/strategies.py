"""Strategies that use EIP labels: la (label augmentation), mp (multi-task pretraining), mp+la."""
from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

from .alignment import align, load_eip_table
from .augment import augmented_labels, label_quality, train_classifier
from .fit import train_energy
from .pretrain import for_finetuning, pretrain, pretrain_losses


def fit_with_eips(ctx, out, strategy: str, resume: bool = False, shared=None):
    """Run `strategy` on ctx; returns (model, best val metrics, report dict). OUT/best.pt is the chosen model.

    shared: a folder where the pretrained model and the classifier are kept and reused by other
    strategies on the same split (mp and mp+la share one pretraining, la and mp+la one classifier).
    """
    run, out = ctx.run, Path(out)
    common, reuse = (Path(shared), True) if shared else (out, resume)
    table = load_eip_table(run.table, len(ctx.data))
    labels = align(table, ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species,
                   run.strategy.max_energy_per_atom, run.strategy.eips)
    report, start = {"eips": ",".join(labels.names)}, None
    if "mp" in strategy:
        start, pre_best = pretrain(ctx, labels, common / "pretrain", reuse)
        first, last = pretrain_losses(common / "pretrain")
        report.update(pretrain_loss_first=first, pretrain_loss_last=last,
                      pretrain_val_eip_mae_per_atom=pre_best["val_eip_mae_per_atom"])
        start = for_finetuning(start)
    aux, alphas = None, [0.0]
    if "la" in strategy:
        result = train_classifier(ctx, labels, common / "classifier", reuse)
        ids, values = augmented_labels(ctx, labels, result, run.strategy.confidence)
        aux = ctx.subset(ids, values)
        alphas = [run.strategy.alpha] if run.strategy.alpha is not None else list(run.strategy.alphas)
        report.update(classifier_val_accuracy=result.val_accuracy, classifier_val_chance=result.val_chance,
                      **label_quality(ctx, ids, values, run.strategy.cut))
    chosen = (math.inf, None, None, None)
    for alpha in alphas:
        sub = out / (f"alpha_{alpha:g}" if aux is not None else "finetune")
        model = copy.deepcopy(start) if start is not None else None
        model, best = train_energy(ctx, sub, model, aux, alpha, resume)
        if best["val_mae_per_atom"] < chosen[0]:
            chosen = (best["val_mae_per_atom"], model, best, sub)
    _, model, best, sub = chosen
    shutil.copyfile(sub / "best.pt", out / "best.pt")
    if aux is not None:
        report["alpha"] = float(sub.name.split("_", 1)[1])
    return model, best, report
