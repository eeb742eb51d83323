"""EIPs against DFT, without a network: each EIP's accuracy after alignment (paper Table 2), the
best EIP per configuration type, and an EIP's force errors (the best-EIP reference rows)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from kimlabel import forces_path

from ..data.alignment import EIPLabels, align, eip_errors, eip_forces, load_eip_table
from ..data.splits import indices
from ..training.forces import force_metrics


def eip_report(data, table_path, split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per EIP: test config MAE (eV) and per-atom MAE (eV/atom) after alignment on train; and the
    best EIP (lowest per-atom MAE) per config_type on the test marks."""
    train, test = indices(split, "train"), indices(split, "test")
    labels = align(load_eip_table(table_path, len(data))[0], data.atoms, data.energy, train, data.species)
    overall = eip_errors(labels, data.energy, data.n_atoms, test).sort_values("mae_per_atom", ignore_index=True)
    types = np.array([t or "(none)" for t in data.config_type])
    best = []
    for ct in sorted(set(types[test])):
        ids = test[types[test] == ct]
        e = eip_errors(labels, data.energy, data.n_atoms, ids).dropna().sort_values("mae_per_atom")
        if len(e):
            best.append({"config_type": ct, "n_test": len(ids), "best_eip": e.eip.iloc[0],
                         "mae_per_atom": e.mae_per_atom.iloc[0]})
    return overall, pd.DataFrame(best)


def eip_force_errors(table_path, labels: EIPLabels, name: str, dft_forces: list, n_atoms: np.ndarray, ids) -> dict:
    """Force MAE and RMSE (eV/Å) of EIP `name` against the DFT forces on configurations ids, as
    test_force_mae / test_force_rmse; {} when the table or the data has no forces."""
    if not dft_forces or not forces_path(table_path).exists():
        return {}
    k = labels.names.index(name)
    one = EIPLabels([name], labels.raw[:, [k]], labels.ok[:, [k]], labels.aligned[:, [k]], {})
    forces, _ = eip_forces(table_path, one, n_atoms, np.inf)
    ids = [i for i in ids if dft_forces[i] is not None]
    m = force_metrics([forces[i] for i in ids], [np.asarray(dft_forces[i])[:, None] for i in ids])
    return {f"test_{key}": value for key, value in m.items()}
