"""delta: Δ-learning. The network learns DFT minus an aligned EIP, and the EIP stays part of the model.

The EIP is chosen on validation among the table's EIPs (or fixed by strategy.eip / --eip); EIPs
that cannot evaluate every validation and test configuration are skipped. Alignment offsets are
fitted on the train marks, as for every strategy. The checkpoint records the EIP (KIM ID and
offsets), so `kimtrain.Calculator` and `kimtrain evaluate` add it back. When the table has EIP
forces (`kimlabel label --forces`), the residual forces are DFT minus EIP forces: force metrics
are those of network + EIP, and train.force_weight trains on them.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kimlabel import forces_path

from ..data.alignment import eip_forces
from ..models.eip import EIPBaseline
from ..training.context import train_energy
from .base import Strategy, register


def residual_context(ctx, labels, eip: str):
    """ctx with DFT minus the aligned EIP as its energies (eV) and, when the table has EIP forces,
    DFT minus EIP forces as its forces (eV/Å; else none), or None when the EIP misses a validation
    or test configuration."""
    k = labels.names.index(eip)
    base = labels.aligned[:, k]
    needed = np.concatenate([ctx.idx["val"], ctx.idx["test"]])
    if not np.isfinite(base[needed]).all():
        return None
    forces = None
    if labels.forces is not None and ctx.data.forces:
        forces = [None if f is None else f - labels.forces[i][:, k] for i, f in enumerate(ctx.data.forces)]
    return dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, energy=ctx.dft - base, forces=forces))


@dataclass(frozen=True)
class Delta(Strategy):
    def variants(self, run) -> list:
        if run.strategy.eip:
            return [run.strategy.eip]
        if run.strategy.eips:
            return list(run.strategy.eips)
        from kimlabel import read_metadata
        return list(read_metadata(run.table)["models"]) if run.table else []

    def variant_name(self, variant) -> str:
        return f"eip={variant}"

    def variant_report(self, variant) -> dict:
        return {"eip": variant}

    def adopt_choice(self, run, metrics: dict):
        if metrics.get("eip"):
            run.strategy.eip = metrics["eip"]

    def prepare(self, ctx, out, resume: bool = False, shared=None):
        """The aligned EIP energies and, when the table has them, the EIP forces: unmasked, since a Δ
        model adds its EIP's forces back whatever their size."""
        prepared = super().prepare(ctx, out, resume, shared)
        if forces_path(ctx.run.table).exists():
            prepared.labels.forces, _ = eip_forces(ctx.run.table, prepared.labels, ctx.data.n_atoms, math.inf)
        elif ctx.run.train.force_weight > 0:
            raise ValueError(f"strategy delta with train.force_weight {ctx.run.train.force_weight}: the residual "
                             f"forces need the EIP forces, and {ctx.run.table} has none (label it with "
                             "`kimlabel label ... --forces`)")
        return prepared

    def train(self, ctx, out, prepared, eip, resume=False):
        if eip not in prepared.labels.names:
            raise ValueError(f"strategy delta: EIP {eip!r} is not in the table ({', '.join(prepared.labels.names)})")
        rctx = residual_context(ctx, prepared.labels, eip)
        sub = Path(out) / f"eip_{eip}"
        if rctx is None:
            return None, {"val_mae_per_atom": math.inf}, sub
        baseline = EIPBaseline(eip, prepared.kim_ids[eip], prepared.labels.offsets[eip])
        start = copy.deepcopy(prepared.start) if prepared.start is not None else None  # mp+delta: pretrained
        model, best = train_energy(rctx, sub, start, None, 0.0, resume, {"eip_baseline": baseline.to_meta()})
        return model, best, sub

    def scoring_context(self, ctx, report: dict):
        return residual_context(ctx, self.prepare(ctx, ctx.run.out).labels, report["eip"])


DELTA = register(Delta("delta", "Δ-learning: the network learns DFT minus an aligned EIP", uses_table=True))
