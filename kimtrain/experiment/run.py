"""`kimtrain experiment CONFIG.yaml`: the paper's protocol (Table 3) and its ablations.

For each dataset, split seed, model and strategy: train, select on validation, score on test;
ablations run on the first split seed.
Finished runs (metrics.json present) are skipped and unfinished ones resume from their last
epoch, so an interrupted experiment continues where it stopped. Writes OUT/results.csv (one row
per run) and OUT/results.md (mean (std) over seeds).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from kimlabel import write_atomic

from ..config import from_dict
from ..data.dataset import load_dataset
from ..training.context import load_context
from .parallel import run_tasks
from .plan import (PlannedRun, choice_from, context_key, labelled_runs, plan_tasks, remember_contexts,
                   restore, shared_folder, with_options)
from ..data.alignment import align, best_eip, load_eip_table
from ..reporting.eip import eip_force_errors
from ..reporting.tables import BEST_EIP, EIP_MODEL, for_csv, results_markdown
from ..data.splits import indices, make_split, nested_subset, train_counts, write_split
from .spec import DatasetSpec, ExperimentSpec, QuickSpec, load_spec
from ..strategies import get as get_strategy
from ..strategies.mp import PRETRAINING


def _table(ds: DatasetSpec, paths, out: Path) -> str:
    """The dataset's kimlabel table: given, or labelled now (resumable) into OUT/table.parquet,
    with EIP forces when the dataset says `forces: true` (pretraining on EIP forces needs them)."""
    if ds.table:
        return ds.table
    path = out / "table.parquet"
    if not path.exists():
        from kimlabel import LabelJob, resolve
        resume = path.with_name(path.name + ".parts").exists()
        LabelJob(paths, resolve(ds.potentials), path, jobs=2, resume=resume, forces=ds.forces,
                 energy_key=ds.energy_key).run()
    return str(path)


def _split(ds: DatasetSpec, data, n_main: int, seed: int, quick: QuickSpec | None) -> pd.DataFrame:
    fr = {k: float(v) for k, v in ds.split.fractions().items()}
    groups = [data.config_type[i] or "" for i in range(n_main)] if ds.split.stratify else None
    split = make_split(n_main, seed, fr, groups, len(data) - n_main)
    if quick:
        pool = split.index[split.mark == "pool"].to_numpy()
        rng = np.random.default_rng(seed)
        drop = rng.permutation(pool)[quick.pool_max:]
        split.loc[drop, "mark"] = "unused"
    return split


KEY = ["dataset", "model", "strategy", "seed", "n_train"]


def run_experiment(config_path, out, quick: bool = False, models=None, seeds=None, strategies=None,
                   alphas=None, jobs: int = 1, threads: int | None = None, results=None,
                   train_sizes=None, scheduler: str | None = None) -> pd.DataFrame:
    """Run the experiment in CONFIG; `models` / `seeds` / `strategies` / `alphas` override the file's lists.

    jobs: independent trainings (split seeds, alphas, strategies whose shared pretraining or
    classifier exists) run in that many worker processes, `threads` CPU threads each (default:
    the cores divided among them); or, with a Dask `scheduler` (local:N, tcp://HOST:PORT, scheduler
    JSON file), as tasks on its workers, from the same plan. train_sizes (or the config's `train_sizes`): learning-curve
    points, counts or fractions of the train marks, each a nested seeded subset (val, test and
    pool unchanged); every strategy runs at every size, and the full train set is always a point (the
    experiment's own run, whose LA alpha and Δ EIP the smaller points adopt). results: a folder
    (committed, say) that keeps each finished run's metrics.json; runs found there are skipped, so an experiment can be finished over
    several sittings on different machines.
    Rows of OUT/results.csv from earlier runs that this one does not repeat (another model, seed or
    strategy) are kept, so experiments run piece by piece into one OUT add up to one table.
    """
    spec = load_spec(config_path, models, seeds, strategies, alphas, train_sizes)  # checked: stops before any work
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if scheduler is not None:
        from kimlabel import check_scheduler
        check_scheduler(scheduler)
    out = Path(out)
    q = spec.quick if quick else None
    seeds = q.seeds if q else spec.seeds
    models = (q.models if q else None) or spec.model_names()
    ablations = spec.ablations
    sizes = spec.train_sizes
    pretrained = any(PRETRAINING in get_strategy(name).steps for name in spec.strategies)
    out.mkdir(parents=True, exist_ok=True)
    planned, contexts, tsne, eip_rows = [], {}, [], []
    for ds in spec.datasets:
        ds_out = out / ds.name
        paths = ds.paths()
        main = paths[:-1] if ds.pool_file else paths
        data = load_dataset(paths, ds.energy_key)
        main_files = set(main)
        n_main = sum(src in main_files for src in data.sources)  # the pool file comes last
        table = _table(ds, paths, ds_out)
        eip_frame = load_eip_table(table, len(data))[0]  # read once: the best-EIP rows of every split use it
        for seed in seeds:
            full = _split(ds, data, n_main, seed, q)
            n_marks = int((full.mark == "train").sum())
            # learning-curve points: nested seeded subsets of the train marks; the full train set is
            # always a point, and is the experiment's own run (its folder, its results)
            points = sorted(set(train_counts(sizes, n_marks)) | {n_marks}) if sizes else [n_marks]
            for n in points:
                split = full if n == n_marks else nested_subset(full, n, seed)
                tag = f"seed{seed}" + ("" if n == n_marks else f"/n{n}")
                split_path = ds_out / "splits" / (tag.replace("/", "_") + ".csv")
                write_split(split, split_path)
                options = _run_config(spec, ds, paths, str(split_path), table, models[0], seed, q).strategy
                eip_rows.append(_best_eip_row(data, table, eip_frame, split, options, ds.name, seed, tag, out,
                                              results))
                for model in models:
                    run = _run_config(spec, ds, paths, str(split_path), table, model, seed, q)
                    ctx = load_context(run, split)
                    contexts[context_key(run)] = ctx
                    seed_dir, full_dir = ds_out / model / tag, ds_out / model / f"seed{seed}"
                    # ablations on the first split seed only, and not on learning-curve points
                    abl = ablations if seed == seeds[0] and n == n_marks else None
                    for label, opts in list(labelled_runs(spec, abl)) + _eip_subset_runs(ctx, abl, table):
                        r = with_options(run, opts, label, spec.path)
                        folder = label.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
                        r.out = str(seed_dir / folder)
                        planned.append(PlannedRun(ds.name, model, seed, label, r, shared_folder(seed_dir, r),
                                                  choice_from(r, label, spec, seed_dir, full_dir, folder)))
                    if ablations.tsne and pretrained and seed == seeds[0] and n == n_marks:
                        tsne.append((ctx, seed_dir / "shared" / "pretrain", ds_out / f"tsne_{model}.png"))
    kept = Path(results) if results else None
    for p in planned:
        restore(p, out, kept)
    if jobs > 1 or scheduler:  # per-epoch lines of parallel trainings would interleave: one line per finished training
        for p in planned:
            p.run.train.progress = False
    tasks = plan_tasks(planned, out, kept)
    remember_contexts(contexts)
    run_tasks(tasks, jobs, threads, scheduler=scheduler)
    for ctx, pretrain_dir, png in tsne:
        from ..reporting.tsne import tsne_before_after
        tsne_before_after(ctx, pretrain_dir, png)
    rows = [{**json.loads(p.metrics_path.read_text()), "dataset": p.dataset, "model": p.model,
             "strategy": p.label, "seed": p.seed} for p in planned] + [r for r in eip_rows if r]
    df = pd.DataFrame(rows)
    earlier = pd.read_csv(out / "results.csv") if (out / "results.csv").exists() else None
    if earlier is not None and len(earlier):
        keep = ~earlier.set_index(KEY).index.isin(df.set_index(KEY).index) if len(df) else slice(None)
        df = pd.concat([earlier[keep], df], ignore_index=True)
    for_csv(df).to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(results_markdown(df, quick, out))
    return df


def _best_eip_row(data, table: str, frame: pd.DataFrame, split: pd.DataFrame, options, dataset: str, seed: int,
                  tag: str, out: Path, results) -> dict | None:
    """The best single EIP's own errors on this split (no network, so no training, and the same for
    every model): a reference line in the tables and learning curves, written like a run's
    metrics.json under OUT/DATASET/best_EIP/TAG (and kept in results). table: the kimlabel table's
    path, frame: its contents; options: the strategy options (energy limit, EIP subset). With EIP
    and DFT forces, the EIP's test force errors too."""
    idx = {mark: indices(split, mark) for mark in ("train", "val", "test")}
    labels = align(frame, data.atoms, data.energy, idx["train"], data.species,
                   options.max_energy_per_atom, options.eips)
    best = best_eip(labels, data.energy, data.n_atoms, idx["val"], idx["test"])
    if best is None:
        return None
    best.update(eip_force_errors(table, labels, best["eip"], data.forces, data.n_atoms, idx["test"]))
    metrics = {"model": EIP_MODEL, "seed": seed, "n_train": len(idx["train"]),
               "n_val": len(idx["val"]), "n_test": len(idx["test"]), **best, "dataset": dataset, "label": BEST_EIP}
    folder = out / dataset / "best_EIP" / tag
    for path in [folder] + ([Path(results) / folder.relative_to(out)] if results else []):
        path.mkdir(parents=True, exist_ok=True)
        write_atomic(path / "metrics.json", json.dumps(metrics, indent=1))
    return {**metrics, "strategy": BEST_EIP}


def _run_config(spec: ExperimentSpec, ds: DatasetSpec, paths, split, table, model, seed, q: QuickSpec | None):
    raw = {"data": paths, "split": split, "table": table, "energy_key": ds.energy_key,
           "model": dict(spec.model, **ds.model, name=model),
           "train": dict(spec.train, seed=seed),
           "strategy": dict(spec.strategy)}
    if q:
        raw["train"]["epochs"] = q.epochs
        raw["strategy"].update(classifier_epochs=q.classifier_epochs, pretrain_epochs=q.pretrain_epochs,
                               alphas=q.alphas)
    return from_dict(raw, f"{spec.path}: dataset {ds.name}")


def _eip_subset_runs(ctx, ablations, table):
    """Table 7 ablation: LA with the best-1, worst-1 and best+worst EIP by validation error."""
    if not (ablations and ablations.eip_subsets):
        return []
    from ..data.alignment import align, eip_errors, load_eip_table
    labels = align(load_eip_table(table, len(ctx.data))[0], ctx.data.atoms, ctx.dft, ctx.idx["train"], ctx.species)
    err = eip_errors(labels, ctx.dft, ctx.data.n_atoms, ctx.idx["val"]).dropna().sort_values("mae_per_atom")
    best, worst = err.eip.iloc[0], err.eip.iloc[-1]
    return [(f"la (best-1 {best})", {"strategy": "la", "eips": [best]}),
            (f"la (worst-1 {worst})", {"strategy": "la", "eips": [worst]}),
            ("la (best+worst)", {"strategy": "la", "eips": [best, worst]})]
