"""`kimtrain fit`: train one model with one registered strategy (baseline, la, mp, mp+la...) and score it on test."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import yaml

from kimlabel import write_atomic

from ..training import ddp
from .. import strategies
from ..config import RunConfig
from ..training.context import Context, check_forces_model, device_name, load_context, test_metrics


def run_fit(run: RunConfig, resume: bool = False, ctx: Context | None = None, shared=None) -> dict:
    """Train with run.strategy.strategy; writes OUT/metrics.json and OUT/config.yaml; returns the metrics.
    Under torchrun every rank trains its share (kimtrain.training.ddp); rank 0 scores and writes."""
    strategy = strategies.get(run.strategy.strategy)
    if strategy.needs_table and not run.table:
        raise ValueError(f"strategy {strategy.name} needs a kimlabel table (--table)")
    check_forces_model(run.model.name, run.train.force_weight, "train.force_weight")
    strategy.check(run)
    out = Path(run.out)
    if ddp.is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(run.to_dict(), sort_keys=False))
    ctx = dataclasses.replace(ctx, run=run) if ctx is not None else load_context(run)
    model, best, extra = strategy.fit(ctx, out, resume, shared)
    if not ddp.is_main():
        return ddp.share(None)
    metrics = {"model": run.model.name, "strategy": strategy.name, "seed": run.train.seed,
               "n_train": int(len(ctx.idx["train"])), "n_val": int(len(ctx.idx["val"])),
               "n_test": int(len(ctx.idx["test"])), "best_epoch": best.get("epoch"),
               "val_mae": best.get("val_mae"), "val_mae_per_atom": best.get("val_mae_per_atom"),
               **{k: best[k] for k in ("val_force_mae", "val_force_rmse", "val_loss") if k in best},
               **({"force_weight": run.train.force_weight} if run.train.force_weight else {}),
               **strategy.record(run),
               **test_metrics(strategy.scoring_context(ctx, extra), model), **extra, "device": device_name(model),
               "finished": time.strftime("%Y-%m-%d")}
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    return ddp.share(metrics)
