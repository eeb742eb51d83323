"""mf: joint multi-fidelity training. One network with a readout head per fidelity (DFT, then
each EIP) on a shared representation, trained at once on the DFT labels of the train marks and on
every EIP's aligned labels of the train and pool configurations; predictions use the DFT head.

A training step takes a batch of DFT-labelled configurations and a batch drawn from the
EIP-labelled ones; each configuration goes through the network once, and that one forward pass
gives all its fidelities (labels x k, not compute x k). loss = DFT per-atom MSE (+ force_weight x
DFT force MSE) + w x (EIP per-atom MSE over every head and both batches), with w chosen on
validation among strategy.mf_weights; with strategy.mf_force_weight > 0 the EIP heads fit their
EIPs' forces on the EIP batch too (a kimlabel --forces table). EIP entries whose status is not ok or whose energy exceeds
the limit are masked; the per-species alignment is fitted on the train marks only, as everywhere.
After training, OUT/best.pt holds the DFT head only, so evaluation, the Calculator and every other
reader see a single-fidelity model; each weight's folder keeps the model with every head.

With strategy.mf_embedding (SOAPNet), the fidelity is a learned vector added to the model's input
instead of a head: the whole network depends on it, one head serves all, and each configuration
then costs one pass per fidelity (the measured alternative; docs/strategies.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kimlabel import replacing

from ..data.reference import set_reference
from ..data.graphs import collate
from ..models.factory import model_meta, new_model
from ..models.registry import get as get_model
from ..models.registry import having as models_having
from ..data.alignment import eip_forces
from ..training.context import check_forces, check_forces_model
from ..training.forces import energy_and_projected_force_mse
from ..training.inference import energy_validator
from ..training.losses import masked_mse
from ..training.trainer import Trainer, as_targets
from .base import Strategy, register


class DFTHead(torch.nn.Module):
    """The DFT fidelity of a multi-fidelity model, as a one-output model (for validation)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(batch)[:, :1]


def mf_objective(eip_set, weight: float, per_atom: bool, batch_size: int, seed: int, force_weight: float,
                 eip_force_weight: float = 0.0):
    """The joint loss for a DFT batch (targets: DFT, then the EIPs' labels of the same
    configurations) and an EIP batch drawn from eip_set, seeded by the step (resumes see the same).
    With eip_force_weight > 0 (eip_set then carries forces (n_i, 1 + k, 3), NaN on the DFT head),
    the EIP heads also fit their EIPs' forces on the EIP batch: one extra backward pass for every head."""
    def objective(model, batch, targets, step):
        if force_weight > 0 and batch.forces is not None:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step + 29)
            energy, f_loss = energy_and_projected_force_mse(model, batch, g)  # DFT head only: others have no forces
            loss = force_weight * f_loss
        else:
            energy, loss = model(batch), 0.0
        loss = loss + masked_mse(energy[:, :1], targets[:, :1], batch.n_atoms, per_atom)
        eip = [masked_mse(energy[:, 1:], targets[:, 1:], batch.n_atoms, per_atom)]
        if weight > 0 and len(eip_set):
            g = torch.Generator().manual_seed(seed * 1_000_003 + step)
            pick = torch.randint(len(eip_set), (min(batch_size, len(eip_set)),), generator=g).numpy()
            device = batch.positions.device
            eb = collate([eip_set.graphs[i] for i in pick])
            if eip_force_weight > 0:
                eb.forces = eip_set.batch_forces(pick)
                eb = eb.to(device)
                energy_eip, f_eip = energy_and_projected_force_mse(model, eb, g)
                eip.append(masked_mse(energy_eip[:, 1:], as_targets(eip_set.targets[pick]).to(device), eb.n_atoms,
                                      per_atom) + eip_force_weight * f_eip)
            else:
                eb = eb.to(device)
                eip.append(masked_mse(model(eb)[:, 1:], as_targets(eip_set.targets[pick]).to(device), eb.n_atoms,
                                      per_atom))
        return loss + weight * sum(eip) / len(eip)
    return objective


@dataclass(frozen=True)
class MF(Strategy):
    def check(self, run):
        super().check(run)
        check_forces_model(run.model.name, run.strategy.mf_force_weight, "strategy.mf_force_weight")
        if run.strategy.mf_embedding and not get_model(run.model.name).fidelity_embedding:
            raise ValueError(f"strategy.mf_embedding true: model {run.model.name} has no fidelity embedding "
                             f"({', '.join(models_having('fidelity_embedding'))} has); leave it false for a "
                             "readout head per fidelity")

    def record(self, run) -> dict:
        s = run.strategy
        return ({"mf_force_weight": s.mf_force_weight} if s.mf_force_weight > 0 else {}) | (
            {"mf_embedding": True} if s.mf_embedding else {})

    def prepare(self, ctx, out, resume: bool = False, shared=None):
        """The aligned EIP labels and, with strategy.mf_force_weight > 0, the EIP forces (atoms over
        strategy.max_force and entries that are not ok masked)."""
        prepared = super().prepare(ctx, out, resume, shared)
        if ctx.run.strategy.mf_force_weight > 0:
            prepared.labels.forces, masked = eip_forces(ctx.run.table, prepared.labels, ctx.data.n_atoms,
                                                        ctx.run.strategy.max_force)
            prepared.report["mf_force_masked_atoms"] = masked
        return prepared

    def variants(self, run) -> list[float]:
        return list(run.strategy.mf_weights)

    def variant_name(self, variant) -> str:
        return f"eip_weight={variant:g}"

    def variant_report(self, variant) -> dict:
        return {"mf_weight": float(variant)}

    def adopt_choice(self, run, metrics: dict):
        if metrics.get("mf_weight") is not None:
            run.strategy.mf_weights = [float(metrics["mf_weight"])]

    def train(self, ctx, out, prepared, weight, resume=False):
        run, labels = ctx.run, prepared.labels
        sub = Path(out) / f"eip_weight_{weight:g}"
        force_weight = run.train.force_weight
        check_forces(ctx, force_weight)
        train_ids, val_ids, pool = ctx.idx["train"], ctx.idx["val"], ctx.idx["pool"]
        k = len(labels.names)
        # the DFT batches: DFT then each EIP's aligned label (eV), forces on the DFT head only
        targets = np.concatenate([ctx.dft[train_ids, None], labels.aligned[train_ids]], axis=1)
        forces = None
        if force_weight > 0:
            forces = [np.concatenate([f, np.full((len(f), k, 3), np.nan)], axis=1)
                      for f in ctx.data.forces_of(train_ids)]
        train = ctx.subset(train_ids, targets, forces)
        eip_ids = pool[np.isfinite(labels.aligned[pool]).any(axis=1)]
        eip_force_weight = run.strategy.mf_force_weight
        eip_forces = None
        if eip_force_weight > 0:  # the EIP heads' forces; none on the DFT head of a pool configuration
            eip_forces = [np.concatenate([np.full((len(labels.forces[i]), 1, 3), np.nan), labels.forces[i]], axis=1)
                          for i in eip_ids]
        eip_set = ctx.subset(eip_ids, labels.aligned[eip_ids], eip_forces)
        model = new_model(run.model, 1 + k, ctx.graphs, train.graphs + eip_set.graphs, run.train.seed)
        meta = model_meta(run.model, 1 + k, ctx.graphs, ctx.species)
        if run.strategy.mf_embedding:  # the fidelity as an input instead of a head per fidelity
            model.embed_fidelities()
            meta["fidelity_embedding"] = True
        ref_ids = np.concatenate([train_ids, eip_ids])
        ref_targets = np.concatenate([targets, np.concatenate([np.full((len(eip_ids), 1), np.nan),
                                                               labels.aligned[eip_ids]], axis=1)])
        set_reference(model, [ctx.data.atoms[i] for i in ref_ids], ref_targets, ctx.species)
        objective = mf_objective(eip_set, weight, run.train.loss == "per_atom", run.train.batch_size,
                                 run.train.seed, force_weight, eip_force_weight)
        val = ctx.subset(val_ids, ctx.dft[val_ids], ctx.data.forces_of(val_ids) if force_weight > 0 else None)
        validate_dft = energy_validator(val, run.train.batch_size, force_weight)
        select = "val_loss" if force_weight > 0 else "val_mae_per_atom"
        best = Trainer(model, run.train, sub, objective, lambda m: validate_dft(DFTHead(m)), select,
                       meta=meta).fit(train, resume)
        # the DFT fidelity alone, in dft/best.pt: what every reader of the run's best.pt predicts with
        # (sub/best.pt keeps every head, for the fidelities' own predictions and for --resume)
        state = torch.load(sub / "best.pt", weights_only=False, map_location="cpu")
        model.keep_outputs([0])  # a fidelity embedding's DFT row is folded in: a plain single-output model
        state.pop("fidelity_embedding", None)
        state.update(model=model.state_dict(), **model_meta(run.model, 1, ctx.graphs, ctx.species),
                     fidelities=["DFT", *labels.names])
        (sub / "dft").mkdir(exist_ok=True)
        with replacing(sub / "dft" / "best.pt") as tmp:
            torch.save(state, tmp)
        return model, best, sub / "dft"


MF_STRATEGY = register(MF("mf", "joint multi-fidelity training: a DFT head and one head per EIP on one network",
                          uses_table=True, own_options=("mf_force_weight", "mf_embedding")))
