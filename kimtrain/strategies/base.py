"""A strategy: how a model uses (or doesn't use) EIP knowledge, declared once and registered by name.

Every strategy runs the same way, so that `kimtrain experiment --jobs N` can run its parts in
parallel: the shared trainings it declares (the multi-task pretraining, the LA classifier; kept
in a `shared` folder and reused by sibling strategies on the same split), then one training per
variant (per alpha for LA), then the variant with the lowest validation per-atom MAE is chosen.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..plugins import Registry
from .steps import Prepared, prepare, train_variant

REGISTRY = Registry("strategy")  # name -> Strategy


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    pretraining: bool = False  # needs the EIP multi-task pretraining (shared by every strategy that declares it)
    classifier: bool = False   # needs the LA classifier and its augmented labels (shared likewise)
    uses_table: bool = False   # reads the aligned EIP energies without either of those (delta)

    @property
    def needs_table(self) -> bool:
        """A kimlabel table is needed by any strategy that uses EIP labels."""
        return self.pretraining or self.classifier or self.uses_table

    def variants(self, run) -> list[float]:
        """The trainings to choose among on validation: LA weights alpha, or one training."""
        if not self.classifier:
            return [0.0]
        return [run.strategy.alpha] if run.strategy.alpha is not None else list(run.strategy.alphas)

    def variant_name(self, variant) -> str:
        return f"alpha={variant:g}" if self.classifier else "fine-tuning" if self.pretraining else "training"

    def variant_report(self, variant) -> dict:
        """What metrics.json records of the chosen variant."""
        return {"alpha": float(variant)} if self.classifier else {}

    def adopt_choice(self, run, metrics: dict):
        """Fix run's variant to the one another run chose (its metrics.json): learning-curve points
        and ablations reuse a choice made on the same validation marks instead of repeating it."""
        if self.classifier and metrics.get("alpha") is not None:
            run.strategy.alpha = float(metrics["alpha"])

    def prepare(self, ctx, out, resume: bool = False, shared=None) -> Prepared:
        if ctx.run.strategy.augment_force_weight > 0 and not self.classifier:
            raise ValueError(f"strategy.augment_force_weight {ctx.run.strategy.augment_force_weight}: strategy "
                             f"{self.name} has no augmented labels (la and mp+la have)")
        return prepare(ctx, out, self.pretraining, self.classifier, resume, shared, self.uses_table)

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
