"""`kimtrain experiment CONFIG.yaml`: the paper's protocol (Table 3) and its ablations.

For each dataset, split seed, model and strategy: train, select on validation, score on test;
ablations run on the first split seed.
Finished runs (metrics.json present) are skipped and unfinished ones resume from their last
epoch, so an interrupted experiment continues where it stopped. Writes OUT/results.csv (one row
per run) and OUT/results.md (mean (std) over seeds).
"""
from __future__ import annotations

import copy
import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .config import from_dict
from .data import load_dataset
from .fit import load_context, run_fit
from .report import results_markdown
from .splits import make_split, write_split

QUICK = {"epochs": 3, "classifier_epochs": 3, "pretrain_epochs": 3, "pool_max": 150, "seeds": [0],
         "alphas": [0.1, 1.0], "models": None}


def _table(ds: dict, paths, out: Path) -> str:
    """The dataset's kimlabel table: given, or labelled now (resumable) into OUT/table.parquet."""
    if ds.get("table"):
        return ds["table"]
    path = out / "table.parquet"
    if not path.exists():
        from kimlabel.job import LabelJob
        from kimlabel.registry import resolve
        resume = path.with_name(path.name + ".parts").exists()
        LabelJob(paths, resolve(ds["potentials"]), path, jobs=2, resume=resume,
                 energy_key=ds.get("energy_key")).run()
    return str(path)


def _split(ds: dict, data, n_main: int, seed: int, quick: dict | None) -> pd.DataFrame:
    fr = {k: float(v) for k, v in ds.get("split", {}).items() if k in ("pool", "train", "val", "test")}
    fr = fr or {"pool": 0.8, "train": 0.12, "val": 0.04, "test": 0.04}
    strat = ds.get("split", {}).get("stratify")
    groups = [data.config_type[i] or "" for i in range(n_main)] if strat else None
    split = make_split(n_main, seed, fr, groups, len(data) - n_main)
    if quick:
        pool = split.index[split.mark == "pool"].to_numpy()
        rng = np.random.default_rng(seed)
        drop = rng.permutation(pool)[quick["pool_max"]:]
        split.loc[drop, "mark"] = "unused"
    return split


def _runs(spec: dict, ablations: dict):
    """(label, strategy options) for the main strategies and the requested ablations."""
    for s in spec["strategies"]:
        yield s, {"strategy": s}
    if ablations.get("tukey"):
        yield "la (MSE, no Tukey)", {"strategy": "la", "tukey": False}
    for third in ("low", "medium", "high") if ablations.get("confidence") else ():
        yield f"la ({third} confidence)", {"strategy": "la", "confidence": third}


KEY = ["dataset", "model", "strategy", "seed"]


def run_experiment(config_path, out, quick: bool = False, models=None, seeds=None, strategies=None,
                   alphas=None) -> pd.DataFrame:
    """Run the experiment in CONFIG; `models` / `seeds` / `strategies` / `alphas` override the file's lists.

    Rows of OUT/results.csv from earlier runs that this one does not repeat (another model, seed or
    strategy) are kept, so experiments run piece by piece into one OUT add up to one table.
    """
    spec = yaml.safe_load(Path(config_path).read_text())
    spec.update({k: v for k, v in (("models", models), ("seeds", seeds), ("strategies", strategies)) if v})
    if alphas:
        spec["strategy"] = dict(spec.get("strategy") or {}, alphas=alphas)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    q = dict(QUICK, **(spec.get("quick") or {})) if quick else None
    seeds = q["seeds"] if q else spec.get("seeds", [0, 1, 2])
    models = (q.get("models") if q else None) or spec.get("models", ["schnet", "soapnet"])
    ablations = spec.get("ablations") or {}
    earlier = pd.read_csv(out / "results.csv") if (out / "results.csv").exists() else None
    rows = []

    def save():
        df = pd.DataFrame(rows)
        if earlier is not None and len(earlier):
            keep = ~earlier.set_index(KEY).index.isin(df.set_index(KEY).index) if len(df) else slice(None)
            df = pd.concat([earlier[keep], df], ignore_index=True)
        df.to_csv(out / "results.csv", index=False)
        return df

    for ds in spec["datasets"]:
        ds_out = out / ds["name"]
        main = _expand(ds["data"], ds["name"])
        paths = main + ([ds["pool_file"]] if ds.get("pool_file") else [])
        data = load_dataset(paths, ds.get("energy_key"))
        main_files = set(main)
        n_main = sum(src in main_files for src in data.sources)  # the pool file comes last
        table = _table(ds, paths, ds_out)
        for seed in seeds:
            split = _split(ds, data, n_main, seed, q)
            split_path = ds_out / "splits" / f"seed{seed}.csv"
            write_split(split, split_path)
            for model in models:
                run = _run_config(spec, ds, paths, str(split_path), table, model, seed, q)
                ctx = load_context(run, split)
                seed_dir = ds_out / model / f"seed{seed}"
                abl = ablations if seed == seeds[0] else {}  # ablations on the first split seed only
                labels = list(_runs(spec, abl)) + _eip_subset_runs(ctx, abl, table)
                for label, opts in labels:
                    r = copy.deepcopy(run)
                    for k, v in opts.items():
                        setattr(r.strategy, k, v)
                    if label not in spec["strategies"] and r.strategy.alpha is None:
                        r.strategy.alpha = _chosen_alpha(rows, ds["name"], model, seed)
                    r.out = str(seed_dir / label.replace(" ", "_").replace("(", "").replace(")", "").replace(",", ""))
                    done = Path(r.out) / "metrics.json"
                    shared = seed_dir / ("shared" if not r.strategy.eips else "shared_" + "+".join(r.strategy.eips))
                    m = (json.loads(done.read_text()) if done.exists()
                         else run_fit(r, resume=True, ctx=ctx, shared=shared))
                    rows.append({**m, "dataset": ds["name"], "model": model, "strategy": label, "seed": seed})
                    save()
                if ablations.get("tsne") and "mp" in spec["strategies"] and seed == seeds[0]:
                    from .tsne import tsne_before_after
                    tsne_before_after(ctx, seed_dir / "shared" / "pretrain", ds_out / f"tsne_{model}.png")
    df = save()
    (out / "results.md").write_text(results_markdown(df, spec, quick))
    return df


def _chosen_alpha(rows, dataset, model, seed):
    """Ablations reuse the alpha that the main LA run chose on validation (None: sweep again)."""
    for row in rows:
        if (row["dataset"], row["model"], row["seed"], row["strategy"]) == (dataset, model, seed, "la"):
            return row.get("alpha")
    return None


def _expand(patterns, name) -> list[str]:
    """Data entries may be glob patterns (data/al/*.extxyz.gz); each must match something."""
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ValueError(f"dataset {name}: no file matches {pattern!r} (download it first, see README)")
        paths += found
    return paths


def _run_config(spec, ds, paths, split, table, model, seed, q):
    raw = {"data": paths, "split": split, "table": table, "energy_key": ds.get("energy_key"),
           "model": dict(spec.get("model") or {}, **(ds.get("model") or {}), name=model),
           "train": dict(spec.get("train") or {}, seed=seed),
           "strategy": dict(spec.get("strategy") or {})}
    if q:
        raw["train"]["epochs"] = q["epochs"]
        raw["strategy"].update(classifier_epochs=q["classifier_epochs"], pretrain_epochs=q["pretrain_epochs"],
                               alphas=q["alphas"])
    return from_dict(raw, f"experiment {ds['name']}")


def _eip_subset_runs(ctx, ablations, table):
    """Table 7 ablation: LA with the best-1, worst-1 and best+worst EIP by validation error."""
    if not ablations.get("eip_subsets"):
        return []
    from .alignment import align, eip_errors, load_eip_table
    labels = align(load_eip_table(table, len(ctx.data)), ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species)
    err = eip_errors(labels, ctx.dft, ctx.data.n_atoms, ctx.idx["val"]).dropna().sort_values("mae_per_atom")
    best, worst = err.eip.iloc[0], err.eip.iloc[-1]
    return [(f"la (best-1 {best})", {"strategy": "la", "eips": [best]}),
            (f"la (worst-1 {worst})", {"strategy": "la", "eips": [worst]}),
            ("la (best+worst)", {"strategy": "la", "eips": [best, worst]})]
