"""la: label augmentation. A classifier (a shared step) picks, per pool configuration, the EIP
likely to be within `cut` eV/atom of DFT (or none); the picked EIP's aligned energy becomes an
extra training label, in a Tukey biweight term of weight alpha, chosen on validation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kimlabel import replacing

from ..data.alignment import EIPLabels
from ..models.base import Classifier
from ..models.factory import new_model
from ..training import ddp
from ..training.inference import predict
from ..training.trainer import LabelledSet, Trainer
from .base import Strategy, register
from .steps import SharedStep


def la_classes(labels: EIPLabels, dft: np.ndarray, n_atoms: np.ndarray, ids, cut: float) -> np.ndarray:
    """Class per configuration: index of the EIP closest to DFT if within cut eV/atom, else len(names) ('none')."""
    err = np.abs(labels.aligned[ids] - dft[ids, None]) / n_atoms[ids, None]
    err = np.where(np.isfinite(err), err, np.inf)
    best = err.argmin(axis=1)
    return np.where(err[np.arange(len(ids)), best] <= cut, best, len(labels.names))


@dataclass
class ClassifierResult:
    pool_class: np.ndarray       # predicted class per pool configuration
    pool_confidence: np.ndarray  # softmax probability of that class
    val_accuracy: float
    val_chance: float            # accuracy of always predicting the commonest training class


def classify(model, graphs, batch_size=64):
    """Predicted class and its softmax probability per configuration."""
    p = predict(model, graphs, batch_size, output=lambda m, batch: torch.softmax(m(batch), -1))
    return p.argmax(1), p.max(1) if len(p) else np.zeros(0)


def train_classifier(ctx, labels: EIPLabels, out, resume=False) -> ClassifierResult:
    """Classifier of the same architecture with a classification head, slanted-triangular schedule."""
    run, n_atoms = ctx.run, ctx.data.n_atoms
    tr, va = ctx.idx["train"], ctx.idx["val"]
    y_tr = la_classes(labels, ctx.dft, n_atoms, tr, run.strategy.cut)
    y_va = la_classes(labels, ctx.dft, n_atoms, va, run.strategy.cut)
    train = LabelledSet([ctx.graphs[i] for i in tr], y_tr[:, None])
    val_graphs = [ctx.graphs[i] for i in va]
    model = Classifier(new_model(run.model, 1, ctx.graphs, train.graphs, run.train.seed), len(labels.names) + 1)

    def objective(m, batch, targets, step):
        return torch.nn.functional.cross_entropy(m(batch), targets[:, 0])

    def validate(m):
        pred, _ = classify(m, val_graphs, run.train.batch_size)
        acc = float((pred == y_va).mean())
        return {"val_error_rate": 1.0 - acc, "val_accuracy": acc}

    Trainer(model, run.train, out, objective, validate, "val_error_rate", epochs=run.strategy.classifier_epochs,
            warmup=run.strategy.warmup).fit(train, resume)
    pool = ctx.idx["pool"]
    cls, conf, pred_va = _predictions(model, ctx, pool, va, Path(out))
    chance = float((y_va == np.bincount(y_tr).argmax()).mean())
    return ClassifierResult(cls, conf, float((pred_va == y_va).mean()), chance)


def _predictions(model, ctx, pool, val, out: Path):
    """(pool classes, their confidences, validation classes) of the trained classifier in out,
    kept in out/predictions.npz: every LA weight alpha (a task of its own) reuses them instead of
    classifying the pool again. Kept predictions count only for the same best.pt and the same
    pool and validation configurations. Under torchrun, rank 0 alone keeps them."""
    kept = out / "predictions.npz"
    stamp = (out / "best.pt").stat().st_mtime_ns if ddp.is_main() else None
    if stamp is not None and kept.exists():
        with np.load(kept) as f:
            if int(f["best_mtime_ns"]) == stamp and np.array_equal(f["pool"], pool) and np.array_equal(f["val"], val):
                return f["pool_class"], f["pool_confidence"], f["val_class"]
    batch_size = ctx.run.train.batch_size
    cls, conf = classify(model, [ctx.graphs[i] for i in pool], batch_size)
    pred_va, _ = classify(model, [ctx.graphs[i] for i in val], batch_size)
    if stamp is not None:
        with replacing(kept) as tmp, open(tmp, "wb") as f:
            np.savez(f, best_mtime_ns=stamp, pool=pool, val=val, pool_class=cls, pool_confidence=conf, val_class=pred_va)
    return cls, conf, pred_va


def augmented_labels(ctx, labels: EIPLabels, result: ClassifierResult, confidence: str | None = None):
    """(pool ids, labels eV, picked EIP index) of pool configurations predicted to an EIP with a
    usable energy.

    confidence: keep only the 'low', 'medium' or 'high' third by classifier confidence (Table 5 ablation).
    """
    pool = ctx.idx["pool"]
    k = result.pool_class
    chosen = k < len(labels.names)
    ids, cls, conf = pool[chosen], k[chosen], result.pool_confidence[chosen]
    values = labels.aligned[ids, cls]
    usable = np.isfinite(values)
    ids, values, conf, cls = ids[usable], values[usable], conf[usable], cls[usable]
    if confidence:
        thirds = np.array_split(np.argsort(conf, kind="stable"), 3)
        keep = thirds[("low", "medium", "high").index(confidence)]
        ids, values, cls = ids[keep], values[keep], cls[keep]
    return ids, values, cls


def label_quality(ctx, ids, values, cut: float) -> dict:
    """Errors of augmented labels against the hidden DFT (where the pool has it), in eV/atom:
    share within cut, and normal / mild / severe outliers by Tukey's fences (1.5 and 3 IQR)."""
    dft = ctx.dft[ids]
    known = np.isfinite(dft)
    if not known.any():
        return {"n_selected": int(len(ids))}
    err = (values[known] - dft[known]) / ctx.data.n_atoms[ids][known]
    q1, q3 = np.percentile(err, [25, 75])
    iqr = q3 - q1
    dist = np.maximum(q1 - err, err - q3)
    return {"n_selected": int(len(ids)), "label_mae_per_atom": float(np.abs(err).mean()),
            "label_within_cut": float((np.abs(err) <= cut).mean()),
            "label_normal": int((dist <= 1.5 * iqr).sum()),
            "label_mild_outliers": int(((dist > 1.5 * iqr) & (dist <= 3 * iqr)).sum()),
            "label_severe_outliers": int((dist > 3 * iqr).sum())}


class LabelClassifier(SharedStep):
    """The shared LA classifier; its result is the set of augmented labels (with the picked EIP's
    forces when strategy.augment_force_weight > 0)."""
    name = "classifier"
    force_option, acts_on = "augment_force_weight", "augmented labels"

    def run(self, ctx, labels, folder, reuse):
        return train_classifier(ctx, labels, folder, reuse)

    def apply(self, ctx, labels, result, prepared):
        run = ctx.run
        ids, values, picked = augmented_labels(ctx, labels, result, run.strategy.confidence)
        forces = ([labels.forces[i][:, k:k + 1] for i, k in zip(ids, picked)] if self.uses_eip_forces(run)
                  else None)
        prepared.aux = ctx.subset(ids, values, forces)
        prepared.report.update(classifier_val_accuracy=result.val_accuracy, classifier_val_chance=result.val_chance,
                               **label_quality(ctx, ids, values, run.strategy.cut))


CLASSIFIER = LabelClassifier()


@dataclass(frozen=True)
class LA(Strategy):
    """Strategies with augmented labels: one training per weight alpha, the best on validation."""

    def variants(self, run) -> list[float]:
        return [run.strategy.alpha] if run.strategy.alpha is not None else list(run.strategy.alphas)

    def variant_name(self, variant) -> str:
        return f"alpha={variant:g}"

    def variant_report(self, variant) -> dict:
        return {"alpha": float(variant)}

    def adopt_choice(self, run, metrics: dict):
        if metrics.get("alpha") is not None:
            run.strategy.alpha = float(metrics["alpha"])


LA_STRATEGY = register(LA("la", "label augmentation", steps=(CLASSIFIER,)))
