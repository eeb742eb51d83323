"""`kimtrain evaluate`: predictions CSV, config and per-atom MAE, and a parity plot."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .calculator import load_model
from .config import ModelConfig
from .data import load_dataset
from .eip_baseline import EIPBaseline
from .inference import energy_metrics, predict
from .models.factory import prepare_graphs
from .splits import read_split


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
    pred = predict(model, [graphs[i] for i in ids])[:, 0]
    eip = EIPBaseline.from_meta(state.get("eip_baseline"))
    if eip is not None:  # a delta model: the network predicts DFT minus this EIP
        pred = pred + eip.evaluate([data.atoms[i] for i in ids])[0]
    n_atoms, dft = data.n_atoms[ids], data.energy[ids]
    df = pd.DataFrame({"config_id": ids, "mark": marks[ids], "n_atoms": n_atoms,
                       "config_type": [data.config_type[i] for i in ids], "energy_dft": dft, "energy_pred": pred})
    df["error_per_atom"] = (df.energy_pred - df.energy_dft) / df.n_atoms
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "predictions.csv", index=False)
    metrics = {mark: energy_metrics(g.energy_pred.values, g.energy_dft.values, g.n_atoms.values)
               for mark, g in df.groupby("mark") if np.isfinite(g.energy_dft).any()}
    (out / "evaluation.json").write_text(json.dumps(metrics, indent=1))
    parity_plot(df, out / "parity.png", title=f"{state['model_config']['name']} ({run_dir.name})")
    return metrics


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
