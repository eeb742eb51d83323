"""EIP-DFT alignment: E_DFT ~ E_EIP + sum_s n_s mu_s, offsets fitted on labelled training configurations only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kimlabel import ENERGY_LIMIT, eip_names, energy_col, force_cols, forces_path, read_table, status_col

from .reference import fit_species_reference, species_offset_energy


@dataclass
class EIPLabels:
    names: list            # EIP short names
    raw: np.ndarray        # (n, k) EIP energies (eV, relative to isolated atoms), NaN if unusable
    ok: np.ndarray         # (n, k) status ok and |E|/atom <= limit
    aligned: np.ndarray    # (n, k) raw + per-species offsets (eV, on the DFT scale); NaN where not ok
    offsets: dict          # name -> {species: mu (eV/atom)}
    forces: list | None = None  # per configuration (n_i, k, 3) eV/Å, NaN where masked (eip_forces)


def load_eip_table(path, n_configs: int) -> tuple[pd.DataFrame, dict]:
    """(table, kimlabel metadata) of a table whose config_ids are exactly 0..n_configs-1 (else an
    error naming the file)."""
    df, meta = read_table(path)
    if len(df) != n_configs or not (df.config_id.values == np.arange(n_configs)).all():
        raise ValueError(f"{path}: table has {len(df)} configurations but the data has {n_configs}; "
                         "label the same files in the same order (kimlabel label DATA [POOL] ...)")
    return df, meta


def align(table: pd.DataFrame, atoms_list, dft: np.ndarray, train_idx, species,
          limit: float = ENERGY_LIMIT, names=None) -> EIPLabels:
    """Aligned EIP energies for every configuration, offsets fitted on train_idx (DFT known there)."""
    names = list(names or eip_names(table.columns))
    n_atoms = np.array([len(a) for a in atoms_list])
    raw = np.stack([table[energy_col(n)].to_numpy(dtype=float) for n in names], axis=1)
    ok = np.stack([(table[status_col(n)] == "ok").to_numpy() for n in names], axis=1)
    ok &= np.isfinite(raw) & (np.abs(raw) / n_atoms[:, None] <= limit)
    aligned = np.full_like(raw, np.nan)
    offsets = {}
    train_idx = np.asarray(train_idx)
    train_atoms = [atoms_list[i] for i in train_idx]
    for k, name in enumerate(names):
        diff = np.where(ok[train_idx, k], dft[train_idx] - raw[train_idx, k], np.nan)
        if not np.isfinite(diff).any():
            offsets[name] = {}
            continue
        mu = fit_species_reference(train_atoms, diff, species)
        offsets[name] = mu
        aligned[:, k] = np.where(ok[:, k], raw[:, k] + species_offset_energy(atoms_list, mu), np.nan)
    return EIPLabels(names, np.where(ok, raw, np.nan), ok, aligned, offsets)


def eip_errors(labels: EIPLabels, dft: np.ndarray, n_atoms: np.ndarray, idx) -> pd.DataFrame:
    """Per EIP: config MAE (eV), per-atom MAE (eV/atom) and coverage on configurations idx."""
    idx = np.asarray(idx)
    rows = []
    for k, name in enumerate(labels.names):
        err = np.abs(labels.aligned[idx, k] - dft[idx])
        ok = np.isfinite(err)
        rows.append({"eip": name, "mae": err[ok].mean() if ok.any() else np.nan,
                     "mae_per_atom": (err[ok] / n_atoms[idx][ok]).mean() if ok.any() else np.nan,
                     "coverage": ok.mean()})
    return pd.DataFrame(rows)


def best_eip(labels: EIPLabels, dft: np.ndarray, n_atoms: np.ndarray, val, test) -> dict | None:
    """The one EIP a user without a network would pick: the aligned EIP with the lowest validation
    per-atom MAE among those that cover every validation and test configuration, with its val and
    test MAE (eV, eV/atom); None when no EIP covers them all."""
    v, t = eip_errors(labels, dft, n_atoms, val), eip_errors(labels, dft, n_atoms, test)
    usable = (v.coverage == 1) & (t.coverage == 1)
    if not usable.any():
        return None
    k = v.mae_per_atom[usable].idxmin()
    return {"eip": v.eip[k], "val_mae": float(v.mae[k]), "val_mae_per_atom": float(v.mae_per_atom[k]),
            "test_mae": float(t.mae[k]), "test_mae_per_atom": float(t.mae_per_atom[k])}


def eip_forces(table_path, labels: EIPLabels, n_atoms: np.ndarray, max_force: float) -> tuple[list, int]:
    """Per-configuration EIP forces (n_i, k, 3) in eV/Å from the table's forces file, for
    labels.names, and the number of atoms masked for exceeding max_force.

    NaN where the configuration's entry is not ok (labels.ok) or the atom's |F| > max_force eV/Å
    (an EIP far outside its domain). Alignment does not change forces (its offsets are per atom).
    """
    path = forces_path(table_path)
    if not path.exists():
        raise ValueError(f"{path} does not exist: EIP forces (strategy.pretrain_force_weight, "
                         "strategy.augment_force_weight) need a table labelled with `kimlabel label ... --forces`")
    import pyarrow.parquet as pq
    cols = [c for name in labels.names for c in force_cols(name)]
    frame = pq.read_table(path, columns=["config_id", "atom", *cols]).to_pandas().sort_values(["config_id", "atom"])
    counts = frame.config_id.value_counts().reindex(range(len(n_atoms)), fill_value=0).to_numpy()
    if not (counts == n_atoms).all():
        bad = int(np.flatnonzero(counts != n_atoms)[0])
        raise ValueError(f"{path}: configuration {bad} has {counts[bad]} force rows for {n_atoms[bad]} atoms; "
                         "label the same files in the same order with --forces")
    f = np.array(frame[cols].to_numpy(dtype=float)).reshape(len(frame), len(labels.names), 3)
    big = np.linalg.norm(f, axis=2) > max_force
    f[big] = np.nan
    per_config = np.split(f, np.cumsum(n_atoms)[:-1])
    for i, fi in enumerate(per_config):
        fi[:, ~labels.ok[i]] = np.nan
    return per_config, int(big.any(axis=1).sum())
