"""mp: multi-task pretraining (one regression head per EIP on the pool's aligned EIP energies,
optionally their forces), then fine-tuning on DFT. The pretraining is a shared step: mp and mp+la on
the same split and EIPs pretrain once per pretraining force weight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.alignment import EIPLabels
from ..data.reference import set_reference
from ..models.factory import model_meta, new_model
from ..training.context import check_forces_model, energy_objective
from ..training.inference import predict
from ..training.trainer import Trainer
from .base import Strategy, register
from .steps import SharedStep


def pretrain(ctx, labels: EIPLabels, out, resume=False):
    """Pretrain a model with len(labels.names) outputs on pool configurations (entries whose status
    is not ok or |E|/atom exceeds the limit are masked), selected on the val configurations' EIP labels.
    With labels.forces (strategy.pretrain_force_weight > 0) each head also fits its EIP's forces.
    Returns (model, best validation metrics)."""
    run = ctx.run
    pool, val = ctx.idx["pool"], ctx.idx["val"]
    usable = pool[np.isfinite(labels.aligned[pool]).any(axis=1)]
    if not len(usable):
        raise ValueError("no pool configuration has a usable EIP energy to pretrain on")
    weight = run.strategy.pretrain_force_weight if labels.forces is not None else 0.0
    check_forces_model(run.model.name, weight, "strategy.pretrain_force_weight")
    train = ctx.subset(usable, labels.aligned[usable], [labels.forces[i] for i in usable] if weight > 0 else None)
    model = new_model(run.model, len(labels.names), ctx.graphs, train.graphs, run.train.seed)
    set_reference(model, [ctx.data.atoms[i] for i in usable], labels.aligned[usable], ctx.species)
    val_graphs, val_targets = [ctx.graphs[i] for i in val], labels.aligned[val]
    n_val = ctx.data.n_atoms[val]

    def validate(m):
        err = np.abs(predict(m, val_graphs, run.train.batch_size) - val_targets) / n_val[:, None]
        return {"val_eip_mae_per_atom": float(np.nanmean(err))}

    objective = energy_objective(run.train.loss == "per_atom", seed=run.train.seed, force_weight=weight)
    trainer = Trainer(model, run.train, out, objective, validate, "val_eip_mae_per_atom",
                      epochs=run.strategy.pretrain_epochs, warmup=run.strategy.warmup,
                      meta=model_meta(run.model, len(labels.names), ctx.graphs, ctx.species))
    best = trainer.fit(train, resume)
    return model, best


def for_finetuning(model):
    """Keep the pretrained representation, replace the EIP heads by one fresh energy head."""
    model.replace_head(1)
    return model


def pretrain_losses(out) -> tuple[float, float]:
    """First and last epoch train loss of a pretraining run (from its history.csv)."""
    import pandas as pd
    h = pd.read_csv(out / "history.csv")
    return float(h.train_loss.iloc[0]), float(h.train_loss.iloc[-1])


class Pretraining(SharedStep):
    """The shared multi-task pretraining; its fine-tunings start from its representation with a
    fresh energy head."""
    name = "pretrain"
    force_option, acts_on = "pretrain_force_weight", "multi-task pretraining"
    forces_key = "pretrain_force_masked_atoms"

    def folder(self, run) -> str:
        """`pretrain`, or `pretrain_F<w>` with EIP forces of weight w (the classifier serves both)."""
        w = run.strategy.pretrain_force_weight
        return "pretrain" + (f"_F{w:g}" if w else "")

    def run(self, ctx, labels, folder, reuse):
        return pretrain(ctx, labels, folder, reuse), folder

    def apply(self, ctx, labels, result, prepared):
        (model, best), folder = result
        first, last = pretrain_losses(folder)
        prepared.report.update(pretrain_loss_first=first, pretrain_loss_last=last,
                               pretrain_val_eip_mae_per_atom=best["val_eip_mae_per_atom"])
        torch.manual_seed(ctx.run.train.seed)  # the fresh head's weights depend on the seed alone
        prepared.start = for_finetuning(model)


PRETRAINING = Pretraining()


@dataclass(frozen=True)
class MP(Strategy):
    def variant_name(self, variant) -> str:
        return "fine-tuning"


MP_STRATEGY = register(MP("mp", "multi-task pretraining", steps=(PRETRAINING,)))
