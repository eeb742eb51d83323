"""A labelling job on files: shards, chunked parts on disk, --resume, and the final table.

While running, finished chunks live in TABLE.parquet.parts/ (each written atomically), so a job
killed at any moment loses at most the chunks in flight; `resume=True` skips what is there.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from ase.formula import Formula
from tqdm import tqdm

from .files import replacing, write_atomic
from .inputs import file_sha256, iter_configs
from .runner import evaluate_stream
from .schema import (error_col, forces_path, forces_schema, read_metadata, status_col, table_schema,
                     with_metadata)


def versions() -> dict:
    import kimpy
    from . import __version__
    try:
        kim_api = kimpy.sem_ver.get_sem_ver()
    except AttributeError:  # pragma: no cover - older kimpy
        kim_api = "unknown"
    return {"kimlabel": __version__, "kimpy": kimpy.__version__, "kim_api": kim_api}


def differences(before: dict, now: dict) -> str:
    """The manifest entries that differ, named for people: 'inputs (a.extxyz -> b.extxyz), models'."""
    out = []
    for key in now:
        if before.get(key) == now[key]:
            continue
        if key == "inputs":
            old = ", ".join(Path(i["path"]).name for i in before.get(key) or [])
            new = ", ".join(Path(i["path"]).name for i in now[key])
            out.append(f"inputs ({old} -> {new})" if old != new else "inputs (same names, other contents)")
        elif key == "models":
            out.append(f"models ({', '.join(before.get(key) or {})} -> {', '.join(now[key])})")
        else:
            out.append(f"{key} ({before.get(key)} -> {now[key]})")
    return ", ".join(out)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A part file cast to the table's schema; columns it lacks (error__ columns, which parts written
    by earlier kimlabel versions have not) are added as nulls."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


@dataclass
class LabelJob:
    inputs: list
    potentials: dict  # {name: kim_id}
    out: Path
    forces: bool = False
    jobs: int = 1
    resume: bool = False
    shard: tuple = (0, 1)
    energy_key: str | None = None
    csv: bool = False
    chunk_size: int = 256  # most configurations per chunk (and part file); at most 2,048 atoms past the first
    progress: bool = True
    scheduler: str | None = None  # Dask cluster (local:N, tcp://HOST:PORT, scheduler JSON) instead of `jobs`
    inputs_meta: list = field(default_factory=list)

    def __post_init__(self):
        self.out = Path(self.out).resolve()
        self.parts = self.out.with_name(self.out.name + ".parts")
        i, n = self.shard
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"shard {i}/{n}: need 0 <= I < N")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        if self.scheduler is not None:
            from .cluster import check_scheduler
            check_scheduler(self.scheduler)

    def manifest(self) -> dict:
        if not self.inputs_meta:
            self.inputs_meta = [{"path": str(p), "sha256": file_sha256(p)} for p in self.inputs]
        manifest = {"models": self.potentials, "inputs": self.inputs_meta, "forces": self.forces,
                    "shard": f"{self.shard[0]}/{self.shard[1]}", "energy_key": self.energy_key}
        overrides = {name: {"file": kim_id.partition("@")[2], "sha256": file_sha256(kim_id.partition("@")[2])}
                     for name, kim_id in self.potentials.items() if "@" in kim_id}
        if overrides:  # parameter files, with their contents' hash: a changed file is another run
            manifest["overrides"] = overrides
        return manifest

    def _done_ids(self) -> set:
        manifest = self.parts / "manifest.json"
        if not self.resume:
            raise FileExistsError(f"{self.parts} holds an interrupted run: pass --resume to continue "
                                  "it, or delete that folder to start again")
        if not manifest.exists():
            raise FileExistsError(f"{self.parts} has no manifest.json, so nothing says which command made it: "
                                  "delete that folder to start again")
        differ = differences(json.loads(manifest.read_text()), self.manifest())
        if differ:
            raise ValueError(f"{self.parts}: cannot resume, this command's {differ} differ from the interrupted "
                             "run's; use the same command, or delete that folder to start again")
        done = set()
        for part in self.parts.glob("part-*.parquet"):
            done.update(pq.read_table(part, columns=["config_id"]).column(0).to_pylist())
        return done

    def _write_atomic(self, table, path: Path):
        with replacing(path) as tmp:
            pq.write_table(table, tmp)

    def run(self) -> dict:
        """Label all inputs of this shard; returns a summary {n_configs, status counts}."""
        i_shard, n_shard = self.shard
        if self.resume and self.out.exists() and not self.parts.exists():
            meta = read_metadata(self.out)
            differ = differences({k: meta.get(k) for k in self.manifest()}, self.manifest())
            if differ:  # never replace a finished table with one from other inputs
                raise ValueError(f"{self.out} is a finished table whose {differ} differ from this command's; "
                                 "--resume would replace it: choose another --out, or delete it first")
            return {"n_configs": pq.read_metadata(self.out).num_rows, "n_configs_total": meta["n_configs_total"],
                    "status": {}}
        if not self.resume and self.out.exists() and not self.parts.exists():
            raise FileExistsError(f"{self.out} exists: choose another --out, delete it first, or pass --resume "
                                  "(which keeps a finished table built by the same command)")
        configs = iter_configs(self.inputs, self.energy_key)
        manifest = json.dumps(self.manifest())  # here: the inputs' paths are relative to this directory
        done = self._done_ids() if self.parts.exists() else set()
        n_total = 0

        def todo():
            nonlocal n_total
            for cfg in configs:
                n_total += 1
                if cfg.config_id % n_shard == i_shard and cfg.config_id not in done:
                    yield cfg

        schema, fschema = table_schema(self.potentials), forces_schema(self.potentials)
        bar = tqdm(desc=f"labelling ({len(self.potentials)} EIPs)", unit="config", disable=None if self.progress else True,
                   initial=len(done), file=sys.stderr)
        try:
            for rows, frc in evaluate_stream(todo(), self.potentials, self.forces, self.jobs, self.chunk_size,
                                              self.scheduler):
                first = rows[0]["config_id"]
                self._start_parts(manifest)  # at the first result: a model that cannot run leaves no parts
                if self.forces:
                    ftab = pa.Table.from_batches([pa.RecordBatch.from_pydict(f, schema=fschema) for f in frc])
                    self._write_atomic(ftab, self.parts / f"forces-{first:012d}.parquet")
                self._write_atomic(pa.Table.from_pylist(rows, schema=schema), self.parts / f"part-{first:012d}.parquet")
                bar.update(len(rows))
        except KeyboardInterrupt:
            bar.close()
            raise KeyboardInterrupt(f"interrupted: finished chunks are kept in {self.parts}; "
                                    "rerun the same command with --resume to continue") from None
        bar.close()
        self._start_parts(manifest)
        return self._finalize(n_total)

    def _start_parts(self, manifest: str):
        if not self.parts.exists():
            self.parts.mkdir(parents=True)
            write_atomic(self.parts / "manifest.json", manifest)

    def _finalize(self, n_total: int) -> dict:
        meta = dict(self.manifest(), n_configs_total=n_total, **versions())
        parts = sorted(self.parts.glob("part-*.parquet"))
        schema = with_metadata(table_schema(self.potentials), meta)
        counts, lacking, errors, n_rows = {}, {}, {}, 0
        tmp = self.out.with_name(self.out.name + ".tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                t = conform(pq.read_table(part), schema)
                writer.write_table(t)
                n_rows += t.num_rows
                formulas, ids = t.column("formula").to_pylist(), t.column("config_id").to_pylist()
                for name in self.potentials:
                    whys = t.column(error_col(name)).to_pylist()
                    for s, formula, why, config_id in zip(t.column(status_col(name)).to_pylist(), formulas, whys, ids):
                        counts.setdefault(name, {}).setdefault(s, 0)
                        counts[name][s] += 1
                        if s == "unsupported_species":
                            lacking.setdefault(name, set()).update(Formula(formula).count())
                        elif s == "model_error":
                            errors.setdefault(name, {}).setdefault(why or "no reason recorded", []).append(config_id)
        if self.forces:
            fparts = sorted(self.parts.glob("forces-*.parquet"))
            fschema = with_metadata(forces_schema(self.potentials), meta)
            ftmp = self.out.with_name(self.out.name + ".forces.tmp")
            with pq.ParquetWriter(ftmp, fschema) as writer:
                for part in fparts:
                    writer.write_table(pq.read_table(part).cast(fschema))
            os.replace(ftmp, forces_path(self.out))
        os.replace(tmp, self.out)
        if self.csv:
            pq.read_table(self.out).to_pandas().to_csv(self.out.with_suffix(".csv"), index=False)
        shutil.rmtree(self.parts)
        return {"n_configs": n_rows, "n_configs_total": n_total, "status": counts,
                "unsupported": {n: self._unsupported(n, sp) for n, sp in lacking.items()},
                "errors": errors}

    def _unsupported(self, name, seen) -> list:
        from .evaluator import supported_species
        return sorted(set(seen) - set(supported_species(self.potentials[name])))
