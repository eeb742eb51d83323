"""The task layer every strategy uses: data, split and model inputs (Context), the energy objective
(MSE on DFT, optionally plus forces, plus an optional Tukey term on augmented labels),
train-and-select on validation, and test metrics. It imports no strategy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import RunConfig
from ..data.dataset import Dataset, load_dataset
from .metrics import errors_by_config_type, force_errors, prediction_frames
from .forces import energy_and_forces, energy_and_projected_force_mse, force_mse, predict_forces
from ..data.graphs import collate
from .losses import finite_mse, masked_mse, residuals, tukey_biweight
from .inference import energy_metrics, energy_validator, predict
from ..models.factory import model_meta, new_model, prepare_graphs
from ..models.registry import get as get_model
from ..models.registry import having as models_having
from ..data.reference import set_reference
from ..data.splits import MARKS, indices, read_split
from .trainer import LabelledSet, Trainer, as_targets


@dataclass
class Context:
    """Everything a strategy needs about one data set and split."""
    run: RunConfig
    data: Dataset
    graphs: list
    species: list
    idx: dict  # mark -> config ids

    @property
    def dft(self):
        return self.data.energy

    def subset(self, ids, targets, forces: list | None = None) -> LabelledSet:
        """Graphs of `ids` with targets shaped (len(ids), k) (an empty selection gives k = 1) and
        optional forces (n_i, k, 3) per configuration."""
        targets = np.asarray(targets)
        return LabelledSet([self.graphs[i] for i in ids], targets.reshape(len(ids), -1 if len(ids) else 1), forces)


def check_forces_model(name: str, weight: float, option: str):
    """A nonzero force weight needs a model registered with forces."""
    spec = get_model(name)
    if weight > 0 and not spec.forces:
        raise ValueError(f"{option} {weight}: model {spec.name} gives no forces ({spec.summary}); "
                         f"set it to 0 or choose a model with forces ({', '.join(models_having('forces'))})")


def check_forces(ctx: Context, weight: float, option: str = "train.force_weight"):
    """A nonzero force weight needs a model with forces and DFT forces on every train configuration."""
    if not weight > 0:
        return
    check_forces_model(ctx.run.model.name, weight, option)
    train = ctx.idx["train"]
    lacking = [int(i) for i in train if not ctx.data.forces or ctx.data.forces[i] is None]
    if lacking:
        raise ValueError(f"{option} {weight}: train configurations {lacking[:10]} (file "
                         f"{ctx.data.sources[lacking[0]]}) have no DFT forces")


def load_context(run: RunConfig, split=None) -> Context:
    data = load_dataset(run.data, run.energy_key)
    split = read_split(run.split, len(data)) if split is None else split
    idx = {m: indices(split, m) for m in MARKS}
    for mark in ("train", "val", "test"):
        missing = idx[mark][~np.isfinite(data.energy[idx[mark]])]
        if len(missing):
            raise ValueError(f"{run.split}: {mark} configurations {missing[:10].tolist()} have no DFT energy")
    if not len(idx["train"]) or not len(idx["val"]):
        raise ValueError(f"{run.split}: the split needs train and val configurations")
    species = data.species
    return Context(run, data, prepare_graphs(data.atoms, run.model, species, data.key), species, idx)


def energy_objective(per_atom: bool, aux: LabelledSet | None = None, alpha: float = 0.0, tukey: bool = True,
                     batch_size: int = 32, seed: int = 0, force_weight: float = 0.0, aux_force_weight: float = 0.0):
    """MSE on DFT batches (plus force_weight * force-component MSE when the batch carries forces),
    plus alpha * Tukey biweight (or MSE) on a batch of augmented labels: of their energies, plus
    aux_force_weight times that of their force components when `aux` carries the picked EIP's
    forces (eV/Å; NaN components, masked like pretraining's, count as absent).

    The augmented batch at each step is drawn from a generator seeded by the step, so resumed
    runs see the same batches. Mean losses per batch carry the paper's n_train / n_aug factor.
    """
    def objective(model, batch, targets, step):
        if force_weight > 0 and batch.forces is not None and batch.forces.shape[1] > 1:  # several heads
            g = torch.Generator().manual_seed(seed * 1_000_003 + step + 17)
            energy, f_loss = energy_and_projected_force_mse(model, batch, g)
            loss = masked_mse(energy, targets, batch.n_atoms, per_atom) + force_weight * f_loss
        elif force_weight > 0 and batch.forces is not None:
            energy, forces = energy_and_forces(model, batch, training=True)
            loss = masked_mse(energy, targets, batch.n_atoms, per_atom) + force_weight * force_mse(forces, batch.forces)
        else:
            loss = masked_mse(model(batch), targets, batch.n_atoms, per_atom)
        if aux is not None and len(aux) and alpha > 0:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step)
            pick = torch.randint(len(aux), (min(batch_size, len(aux)),), generator=g).numpy()
            device = batch.positions.device
            ab = collate([aux.graphs[i] for i in pick]).to(device)
            robust = tukey_biweight if tukey else finite_mse
            with_forces = aux_force_weight > 0 and aux.forces is not None
            energy, forces = energy_and_forces(model, ab, training=True) if with_forces else (model(ab), None)
            term = robust(residuals(energy, as_targets(aux.targets[pick]).to(device), ab.n_atoms, per_atom))
            if with_forces:
                term = term + aux_force_weight * robust((forces - aux.batch_forces(pick).to(device)).reshape(-1))
            loss = loss + alpha * term
        return loss
    return objective


def train_energy(ctx: Context, out, model=None, aux: LabelledSet | None = None, alpha: float = 0.0,
                 resume: bool = False, meta_extra: dict | None = None):
    """Train an energy model on the train marks (plus augmented labels), select on val.
    meta_extra joins the checkpoint's metadata (delta: the EIP that predictions add back)."""
    run = ctx.run
    train_ids, val_ids = ctx.idx["train"], ctx.idx["val"]
    weight = run.train.force_weight
    check_forces(ctx, weight)
    train = ctx.subset(train_ids, ctx.dft[train_ids], ctx.data.forces_of(train_ids) if weight > 0 else None)
    model = model if model is not None else new_model(run.model, 1, ctx.graphs, train.graphs, run.train.seed)
    set_reference(model, [ctx.data.atoms[i] for i in train_ids], ctx.dft[train_ids], ctx.species)
    objective = energy_objective(run.train.loss == "per_atom", aux, alpha, run.strategy.tukey,
                                 run.train.batch_size, run.train.seed, weight, run.strategy.augment_force_weight)
    meta = {**model_meta(run.model, 1, ctx.graphs, ctx.species), **(meta_extra or {})}
    val = ctx.subset(val_ids, ctx.dft[val_ids], ctx.data.forces_of(val_ids) if weight > 0 else None)
    validate = energy_validator(val, run.train.batch_size, weight)
    select = "val_loss" if weight > 0 else "val_mae_per_atom"
    best = Trainer(model, run.train, out, objective, validate, select, meta=meta).fit(train, resume)
    return model, best


def device_name(model) -> str:
    """Where a model trained: 'cpu (N threads)' or the GPU's name."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def test_metrics(ctx: Context, model, forces: bool = True) -> dict:
    """Test energy MAE (eV, eV/atom); with `forces`, for a model with forces on data with DFT
    forces, force MAE and RMSE (eV/Å) as well. by_config_type: per mark (train, val, test) and
    config_type, the per-atom energy MAE (eV/atom) and force MAE (eV/Å)."""
    ids = np.concatenate([ctx.idx[m] for m in ("train", "val", "test")])
    if not len(ctx.idx["test"]):
        return {}
    marks = np.concatenate([[m] * len(ctx.idx[m]) for m in ("train", "val", "test")])
    graphs = [ctx.graphs[i] for i in ids]
    with_forces = bool(forces and get_model(ctx.run.model.name).forces and ctx.data.forces)
    energies, pred_forces = predict_forces(model, graphs) if with_forces else (predict(model, graphs), None)
    df, table = prediction_frames(ctx.data, ids, marks, energies, pred_forces)
    test = df["mark"].to_numpy() == "test"
    m = energy_metrics(energies[test], ctx.dft[ids][test], ctx.data.n_atoms[ids][test])
    f = {f"test_{k}": v for k, v in force_errors(table[table["mark"] == "test"]).items()} if with_forces else {}
    by_type = {}
    for row in errors_by_config_type(df, table).to_dict("records"):
        by_type.setdefault(row.pop("mark"), {})[row.pop("config_type")] = row
    return {"test_mae": m["mae"], "test_mae_per_atom": m["mae_per_atom"], **f, "by_config_type": by_type}
