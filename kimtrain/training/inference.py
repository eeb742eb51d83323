"""Batched inference and energy metrics, written once for every strategy, evaluation and plot."""
from __future__ import annotations

import numpy as np
import torch

from .forces import force_metrics, predict_forces
from ..data.graphs import in_batches
from .trainer import LabelledSet


@torch.no_grad()
def predict(model, graphs, batch_size: int = 64, device=None, output=None) -> np.ndarray:
    """(n, k) outputs on graphs, in batches, in eval mode: model(batch) (total energies in eV for
    energy heads, logits for a classifier), or output(model, batch)."""
    device = device or next(model.parameters()).device
    model.eval()
    output = output or (lambda m, batch: m(batch))
    out = [output(model, batch).double().cpu().numpy() for _, batch in in_batches(graphs, batch_size, device)]
    return np.concatenate(out) if out else np.zeros((0, getattr(model, "n_out", 1)))


def energy_metrics(pred: np.ndarray, target: np.ndarray, n_atoms: np.ndarray) -> dict:
    """Config MAE (eV), per-atom MAE and RMSE (eV/atom) of the first output over finite targets."""
    p, t = np.asarray(pred).reshape(len(target), -1)[:, 0], np.asarray(target).reshape(len(target), -1)[:, 0]
    ok = np.isfinite(t)
    err = np.abs(p[ok] - t[ok])
    per_atom = err / n_atoms[ok]
    return {"mae": float(err.mean()), "mae_per_atom": float(per_atom.mean()),
            "rmse_per_atom": float(np.sqrt((per_atom ** 2).mean()))}


def energy_validator(val: LabelledSet, batch_size: int, force_weight: float = 0.0):
    """Validation energy MAE (eV, eV/atom). When `val` carries forces: force MAE and RMSE (eV/Å)
    too, and val_loss, the training loss on the validation set (per-atom energy MSE + force_weight
    * force-component MSE), on which training with forces selects its best epoch."""
    def validate(model):
        if val.forces is None:
            m = energy_metrics(predict(model, val.graphs, batch_size), val.targets, val.n_atoms)
            return {"val_mae": m["mae"], "val_mae_per_atom": m["mae_per_atom"]}
        energies, forces = predict_forces(model, val.graphs, batch_size)
        m, f = energy_metrics(energies, val.targets, val.n_atoms), force_metrics(forces, val.forces)
        return {"val_mae": m["mae"], "val_mae_per_atom": m["mae_per_atom"], "val_force_mae": f["force_mae"],
                "val_force_rmse": f["force_rmse"],
                "val_loss": m["rmse_per_atom"] ** 2 + force_weight * f["force_rmse"] ** 2}
    return validate
