"""Multi-task pretraining (MP): one regression head per EIP on the pool's aligned EIP energies."""
from __future__ import annotations

import numpy as np

from ..data.alignment import EIPLabels
from ..training.context import check_forces_model, energy_objective
from ..training.inference import predict
from ..models.factory import model_meta, new_model
from ..data.reference import set_reference
from ..training.trainer import Trainer


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
