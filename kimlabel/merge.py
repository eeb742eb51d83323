"""Combine shard tables into one, failing loudly on missing or duplicated configurations."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import forces_path, read_metadata, with_metadata


def merge(shards, out) -> pd.DataFrame:
    """Merge kimlabel tables `shards` into `out`; returns the merged DataFrame."""
    if not shards:
        raise ValueError("merge: no shard tables given")
    metas = [read_metadata(p) for p in shards]
    first = metas[0]
    for p, m in zip(shards, metas):
        for key in ("models", "inputs", "forces", "energy_key", "n_configs_total"):
            if m.get(key) != first.get(key):
                raise ValueError(f"{p}: {key} differs from {shards[0]}; these shards are not from one run")
    df = pd.concat([pq.read_table(p).to_pandas() for p in shards], ignore_index=True)
    dup = df.config_id[df.config_id.duplicated()]
    if len(dup):
        raise ValueError(f"merge: config_id {sorted(set(dup))[:10]} appear in more than one shard")
    expected = set(range(first["n_configs_total"]))
    missing = sorted(expected - set(df.config_id))
    if missing:
        raise ValueError(f"merge: {len(missing)} configurations missing (config_id {missing[:10]}...): "
                         "a shard is absent or unfinished")
    df = df.sort_values("config_id", ignore_index=True)
    meta = dict(first, shard="merged", shards=[m["shard"] for m in metas])
    schema = with_metadata(pq.read_schema(shards[0]).remove_metadata(), meta)
    pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), out)
    if first.get("forces"):
        fdf = pd.concat([pq.read_table(forces_path(p)).to_pandas() for p in shards], ignore_index=True)
        fdf = fdf.sort_values(["config_id", "atom"], ignore_index=True)
        fschema = with_metadata(pq.read_schema(forces_path(shards[0])).remove_metadata(), meta)
        pq.write_table(pa.Table.from_pandas(fdf, schema=fschema, preserve_index=False), forces_path(Path(out)))
    return df
