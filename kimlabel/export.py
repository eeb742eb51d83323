"""`kimlabel export`: a table's configurations with every EIP's labels, as files other trainers read.

extxyz: each frame carries `energy__<name>` (eV) and `status__<name>` in info, `forces__<name>`
(eV/Å) in arrays when the table has forces, `config_type` and `config_id`; only ok entries carry
values. The reference (DFT) energy and forces are the frame's calculator results (`energy=`,
`forces` in extxyz: what nequip's ASE dataset and ase.io read), or REF_energy / REF_forces
(MACE's default keys) with ref_keys="REF". asedb: the same as key-value pairs and data.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .files import replacing
from .inputs import file_sha256, iter_configs
from .schema import eip_names, energy_col, force_cols, forces_path, read_table, status_col

FORMATS = ("extxyz", "asedb")


def _forces_by_config(table_path) -> dict | None:
    path = forces_path(table_path)
    if not path.exists():
        return None
    frame = pd.read_parquet(path).sort_values(["config_id", "atom"])
    return {int(cid): g for cid, g in frame.groupby("config_id", sort=False)}


def frames(table_path, energy_template: str = "energy__{name}", ref_keys: str | None = None):
    """Yield ase.Atoms for every row of the table, read again from the table's input files
    (which must be unchanged: their SHA-256 is in the table's metadata)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    df, meta = read_table(table_path)
    for entry in meta.get("inputs", []):
        if not Path(entry["path"]).exists():
            raise FileNotFoundError(f"{table_path}: input {entry['path']} is gone; export needs the labelled files")
        if file_sha256(entry["path"]) != entry["sha256"]:
            raise ValueError(f"{table_path}: input {entry['path']} changed since it was labelled")
    names = eip_names(df.columns)
    rows = df.set_index("config_id")
    forces = _forces_by_config(table_path)
    for cfg in iter_configs([e["path"] for e in meta["inputs"]], meta.get("energy_key")):
        if cfg.config_id not in rows.index:  # a shard holds every N-th configuration
            continue
        row, atoms = rows.loc[cfg.config_id], cfg.to_atoms()
        atoms.info["config_id"] = int(cfg.config_id)
        if cfg.config_type:
            atoms.info["config_type"] = cfg.config_type
        f = forces.get(cfg.config_id) if forces is not None else None
        for name in names:
            ok = row[status_col(name)] == "ok"
            atoms.info[status_col(name)] = row[status_col(name)]
            if ok:
                atoms.info[energy_template.format(name=name)] = float(row[energy_col(name)])
                if f is not None:
                    atoms.arrays[f"forces__{name}"] = f[force_cols(name)].to_numpy(dtype=float)
        energy, ref_f = cfg.energy_ref, cfg.forces_ref
        if ref_keys == "REF":
            if math.isfinite(energy):
                atoms.info["REF_energy"] = energy
            if ref_f is not None:
                atoms.arrays["REF_forces"] = np.asarray(ref_f)
        elif math.isfinite(energy) or ref_f is not None:
            results = {"energy": energy} if math.isfinite(energy) else {}
            atoms.calc = SinglePointCalculator(atoms, **results, **({"forces": ref_f} if ref_f is not None else {}))
        yield atoms


def export(table_path, fmt: str, out, energy_template: str = "energy__{name}", ref_keys: str | None = None) -> int:
    """Write the table's frames to `out` (never over an existing file); returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if "{name}" not in energy_template:
        raise ValueError(f"--energy-key-template must contain {{name}}, got {energy_template!r}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists: choose another --out, or delete it first")
    if not Path(table_path).exists():
        raise FileNotFoundError(f"{table_path}: no such table")
    n = 0
    with replacing(out) as tmp:
        if fmt == "extxyz":
            from ase.io import write
            with open(tmp, "w") as fh:
                for atoms in frames(table_path, energy_template, ref_keys):
                    write(fh, atoms, format="extxyz")
                    n += 1
        else:
            from ase.db import connect
            with connect(str(tmp), type="db", append=False) as db:
                for atoms in frames(table_path, energy_template, ref_keys):
                    kv = {k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str))}
                    data = {k: v for k, v in atoms.arrays.items() if k.startswith(("forces__", "REF_forces"))}
                    db.write(atoms, key_value_pairs=kv, data=data)
                    n += 1
    return n
