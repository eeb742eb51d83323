"""`kimtrain evaluate`: predictions CSV, config and per-atom MAE, and a parity plot; for models with
forces, the per-atom forces, force MAE and RMSE (eV/Å) and a force parity plot; errors per
config_type and mark."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..calculator import load_model
from ..config import ModelConfig
from ..data.dataset import load_dataset
from ..models.eip import EIPBaseline
from ..training.metrics import DFT, PRED, errors_by_config_type, force_errors, prediction_frames
from ..training.forces import predict_forces
from ..training.inference import energy_metrics, predict
from ..models.factory import prepare_graphs
from ..models.registry import get as get_model
from ..data.splits import read_split


def evaluate(run_dir, data_paths, split_path=None, energy_key=None, out=None) -> dict:
    """Score RUN_DIR/best.pt on data (on marks other than pool when a split is given)."""
    run_dir = Path(run_dir)
    out = Path(out or run_dir)
    model, state = load_model(run_dir)
    data = load_dataset(data_paths, energy_key)
    ids = np.arange(len(data))
    marks = np.full(len(data), "all", dtype=object)
    if split_path:
        split = read_split(split_path, len(data))
        marks = split.mark.values
        ids = ids[np.isin(marks, ["train", "val", "test"])]
    graphs = prepare_graphs(data.atoms, ModelConfig(**state["model_config"]), state["species"], key=data.key)
    with_forces = get_model(state["model_config"]["name"]).forces
    chosen = [graphs[i] for i in ids]
    pred, pred_f = predict_forces(model, chosen) if with_forces else (predict(model, chosen), None)
    pred = pred[:, 0]
    eip = EIPBaseline.from_meta(state.get("eip_baseline"))
    if eip is not None:  # a delta model: the network predicts DFT minus this EIP
        e_eip, f_eip = eip.evaluate([data.atoms[i] for i in ids], forces=with_forces)
        pred = pred + e_eip
        pred_f = [p[:, 0] + f for p, f in zip(pred_f, f_eip)] if with_forces else None
    df, forces = prediction_frames(data, ids, marks[ids], pred, pred_f)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "predictions.csv", index=False)
    metrics = {mark: energy_metrics(g.energy_pred.values, g.energy_dft.values, g.n_atoms.values)
               for mark, g in df.groupby("mark") if np.isfinite(g.energy_dft).any()}
    title = f"{state['model_config']['name']} ({run_dir.name})"
    if forces is not None:
        forces.to_parquet(out / "forces.parquet", index=False)
        for mark, g in forces.groupby("mark"):
            if mark in metrics:
                metrics[mark].update(force_errors(g))
        if forces.fx_dft.notna().any():
            force_parity_plot(forces, out / "parity_forces.png", title)
    by_type = errors_by_config_type(df, forces)
    by_type.to_csv(out / "errors_by_config_type.csv", index=False)
    (out / "evaluation.json").write_text(json.dumps(metrics, indent=1))
    parity_plot(df, out / "parity.png", title=title)
    return metrics


def force_parity_plot(forces: pd.DataFrame, path, title: str = ""):
    """Predicted vs DFT force components (eV/Å), one colour per split mark."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for mark, g in forces.groupby("mark"):
        x, y = g[DFT].to_numpy().ravel(), g[PRED].to_numpy().ravel()
        ok = np.isfinite(x)
        ax.scatter(x[ok], y[ok], s=3, alpha=0.4, label=f"{mark} (MAE {1000 * np.abs(y[ok] - x[ok]).mean():.0f} meV/Å)")
    lim = np.nanmax(np.abs(forces[DFT].to_numpy()))
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set_xlabel("DFT force component (eV/Å)")
    ax.set_ylabel("predicted force component (eV/Å)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parity_plot(df: pd.DataFrame, path, title: str = ""):
    """Predicted vs DFT energy per atom (eV/atom), one colour per split mark."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for mark, g in df.groupby("mark"):
        x, y = g.energy_dft / g.n_atoms, g.energy_pred / g.n_atoms
        mae = np.nanmean(np.abs(y - x))
        ax.scatter(x, y, s=10, alpha=0.7, label=f"{mark} (MAE {1000 * mae:.1f} meV/atom)")
    lo, hi = np.nanmin(df.energy_dft / df.n_atoms), np.nanmax(df.energy_dft / df.n_atoms)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("DFT energy (eV/atom)")
    ax.set_ylabel("predicted energy (eV/atom)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
