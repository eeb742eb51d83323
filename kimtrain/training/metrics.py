"""Prediction tables and errors per configuration type, shared by `kimtrain evaluate` and the
test metrics of every run: energies per configuration, forces per atom (eV/Å)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .forces import force_metrics


def prediction_frames(data, ids, marks, energies, forces=None):
    """(per-configuration frame, per-atom force frame or None) for configurations ids of a Dataset:
    predicted and DFT energies (eV), per-atom error (eV/atom); forces (n_i, k, 3) or (n_i, 3) of
    the first head against the DFT forces (NaN where the file has none)."""
    df = pd.DataFrame({"config_id": ids, "mark": marks, "n_atoms": data.n_atoms[ids],
                       "config_type": [data.config_type[i] for i in ids], "energy_dft": data.energy[ids],
                       "energy_pred": np.asarray(energies).reshape(len(ids), -1)[:, 0]})
    df["error_per_atom"] = (df.energy_pred - df.energy_dft) / df.n_atoms
    if forces is None:
        return df, None
    pred = [np.asarray(p).reshape(len(p), -1, 3)[:, 0] for p in forces]
    return df, force_table(df, pred, [f[:, 0] for f in data.forces_of(ids)])


PRED, DFT = ["fx_pred", "fy_pred", "fz_pred"], ["fx_dft", "fy_dft", "fz_dft"]


def force_table(df: pd.DataFrame, pred: list, dft: list) -> pd.DataFrame:
    """One row per atom: config_id, mark, config_type, atom, predicted and DFT forces (eV/Å)."""
    counts = df.n_atoms.to_numpy()
    p, t = np.concatenate(pred), np.concatenate(dft)
    table = pd.DataFrame({"config_id": np.repeat(df.config_id.to_numpy(), counts),
                          "mark": np.repeat(df["mark"].to_numpy(), counts),
                          "config_type": np.repeat(df.config_type.to_numpy(), counts),
                          "atom": np.concatenate([np.arange(n) for n in counts])})
    table[PRED], table[DFT] = p, t
    return table


def force_errors(g: pd.DataFrame) -> dict:
    """Force MAE and RMSE (eV/Å) of a force table's rows."""
    return force_metrics([g[PRED].to_numpy()], [g[DFT].to_numpy()])


def errors_by_config_type(df: pd.DataFrame, forces: pd.DataFrame | None) -> pd.DataFrame:
    """Per mark and config_type: configurations, per-atom energy MAE (eV/atom) and, with forces,
    force MAE (eV/Å)."""
    rows = []
    for (mark, ctype), g in df.groupby(["mark", df.config_type.fillna("(none)")]):
        ok = np.isfinite(g.energy_dft)
        row = {"mark": mark, "config_type": ctype, "n_configs": len(g),
               "mae_per_atom": float(np.abs(g.error_per_atom[ok]).mean()) if ok.any() else np.nan}
        if forces is not None:
            f = forces[(forces["mark"] == mark) & (forces.config_type.fillna("(none)") == ctype)]
            row["force_mae"] = force_errors(f).get("force_mae", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)
