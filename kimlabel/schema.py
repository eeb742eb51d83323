"""The kimlabel table: column names, Arrow schema, and Parquet read/write with metadata.

One row per configuration. Energies are totals in eV; EIP energies are relative to isolated
atoms (KIM convention), energy_ref is whatever the input carries (usually absolute DFT).
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STATUSES = ("ok", "unsupported_species", "model_error", "nonfinite", "above_limit")
ENERGY_LIMIT = 200.0  # eV/atom: an EIP energy with larger |E|/atom is flagged above_limit
META_KEY = b"kimlabel"
BASE_FIELDS = [
    ("config_id", pa.int64()), ("source", pa.string()), ("index", pa.int64()),
    ("n_atoms", pa.int64()), ("formula", pa.string()), ("config_type", pa.string()),
    ("energy_ref", pa.float64()),
]
FORCE_BASE_FIELDS = [("config_id", pa.int64()), ("atom", pa.int64()), ("symbol", pa.string()),
                     ("fx_ref", pa.float64()), ("fy_ref", pa.float64()), ("fz_ref", pa.float64())]


def energy_col(name: str) -> str:
    return f"energy__{name}"


def status_col(name: str) -> str:
    return f"status__{name}"


def error_col(name: str) -> str:
    return f"error__{name}"


def force_cols(name: str) -> list[str]:
    return [f"f{c}__{name}" for c in "xyz"]


def table_schema(names) -> pa.Schema:
    """Arrow schema of the energy table for EIP short names `names` (in order)."""
    fields = list(BASE_FIELDS)
    for n in names:
        fields += [(energy_col(n), pa.float64()), (status_col(n), pa.string()), (error_col(n), pa.string())]
    return pa.schema(fields)


def forces_schema(names) -> pa.Schema:
    """Arrow schema of the forces sidecar (one row per atom, eV/A)."""
    fields = list(FORCE_BASE_FIELDS)
    for n in names:
        fields += [(c, pa.float64()) for c in force_cols(n)]
    return pa.schema(fields)


def eip_names(columns) -> list[str]:
    """EIP short names present in a table's columns, in column order."""
    return [c[len("energy__"):] for c in columns if c.startswith("energy__")]


def with_metadata(schema: pa.Schema, meta: dict) -> pa.Schema:
    return schema.with_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})


def read_metadata(path: str | Path) -> dict:
    """The kimlabel metadata (models, versions, input hashes, ...) of a table file."""
    raw = pq.read_schema(path).metadata or {}
    if META_KEY not in raw:
        raise ValueError(f"{path}: not a kimlabel table (no '{META_KEY.decode()}' metadata)")
    return json.loads(raw[META_KEY])


def read_table(path: str | Path):
    """(DataFrame, metadata) of a kimlabel table."""
    return pq.read_table(path).to_pandas(), read_metadata(path)


def forces_path(table_path: str | Path) -> Path:
    """Where the forces sidecar of a table lives: TABLE.forces.parquet."""
    p = Path(table_path)
    return p.with_name(p.name.removesuffix(".parquet") + ".forces.parquet")
