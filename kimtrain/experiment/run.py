"""`kimtrain experiment CONFIG.yaml`: the paper's protocol (Table 3) and its ablations.

For each dataset, split seed, model and strategy: train, select on validation, score on test;
ablations run on the first split seed.
Finished runs (metrics.json present) are skipped and unfinished ones resume from their last
epoch, so an interrupted experiment continues where it stopped. Writes OUT/results.csv (one row
per run) and OUT/results.md (mean (std) over seeds).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kimlabel import write_atomic

from ..config import from_dict
from ..data.alignment import align, best_eip, load_eip_table
from ..data.dataset import load_dataset
from ..data.splits import indices, make_split, nested_subset, train_counts, write_split
from ..reporting.eip import eip_force_errors
from ..reporting.curves import BEST_EIP, EIP_MODEL
from ..reporting.results import run_row
from ..reporting.tables import for_csv, results_markdown
from ..strategies import get as get_strategy
from ..strategies.mp import PRETRAINING
from ..training.context import load_context
from .parallel import run_tasks
from .plan import (PlannedRun, choice_from, context_key, expand_auto, folder_name, labelled_runs, plan_tasks,
                   remember_contexts, restore, shared_folder, with_options)
from .spec import ADOPT, DatasetSpec, ExperimentSpec, QuickSpec, load_spec


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


@dataclass
class Execution:
    """How an experiment runs, which never changes what it computes: --quick aside, the same
    results whatever the jobs, threads or cluster."""
    quick: bool = False              # the spec's `quick` settings: few epochs, small pool, one seed
    jobs: int = 1                    # independent trainings in that many worker processes
    threads: int | None = None       # CPU threads per training (default: the cores divided among jobs)
    scheduler: str | None = None     # a Dask cluster (local:N, tcp://HOST:PORT, scheduler JSON) instead of jobs
    results: str | None = None       # a folder keeping each finished run's metrics.json (skipped when found)

    def check(self):
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        if self.scheduler is not None:
            from kimlabel import check_scheduler
            check_scheduler(self.scheduler)


@dataclass
class Plan:
    """What an experiment will run, gathered dataset by dataset before any training."""
    runs: list = field(default_factory=list)      # PlannedRun, one per results row
    contexts: dict = field(default_factory=dict)  # loaded training contexts by context_key
    tsne: list = field(default_factory=list)      # (context, pretraining folder, png)
    eip_rows: list = field(default_factory=list)  # the best single EIP's rows


def run_experiment(spec, out, how: Execution | None = None) -> pd.DataFrame:
    """Run the experiment `spec` (an ExperimentSpec, or the path of its YAML) into folder `out`.

    Every dataset, split seed and learning-curve point (nested seeded subsets of the train marks;
    the full train set is always a point, whose LA alpha and Δ EIP the smaller points adopt) gets
    its runs planned first; then the shared steps and trainings run as one task graph, in `how.jobs`
    processes or on a Dask cluster. Runs whose metrics.json is in OUT, or kept in `how.results`,
    are not trained again, so an experiment can be finished over several runs on different
    machines. Rows of OUT/results.csv from earlier runs that this one does not repeat (another
    model, seed or strategy) are kept, so experiments run piece by piece into one OUT add up to one
    table. Returns the results table.
    """
    how = how or Execution()
    spec = spec if isinstance(spec, ExperimentSpec) else load_spec(spec, quick=how.quick)  # checked: before any work
    how.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan()
    for ds in spec.datasets:
        _plan_dataset(plan, spec, ds, out, how)
    kept = Path(how.results) if how.results else None
    for p in plan.runs:
        restore(p, out, kept)
    if how.jobs > 1 or how.scheduler:  # per-epoch lines of parallel trainings would interleave
        for p in plan.runs:
            p.run.train.progress = False
    remember_contexts(plan.contexts)
    run_tasks(plan_tasks(plan.runs, out, kept), how.jobs, how.threads, scheduler=how.scheduler)
    for ctx, pretrain_dir, png in plan.tsne:
        from ..reporting.tsne import tsne_before_after
        tsne_before_after(ctx, pretrain_dir, png)
    return _write_results(plan, out, how.quick)


def _plan_dataset(plan: Plan, spec: ExperimentSpec, ds: DatasetSpec, out: Path, how: Execution):
    """Label the dataset if needed, then plan every split point of every seed."""
    q = spec.quick if how.quick else None
    ds_out, paths = out / ds.name, ds.paths()
    data = load_dataset(paths, ds.energy_key)
    main_files = set(paths[:-1] if ds.pool_file else paths)
    n_main = sum(src in main_files for src in data.sources)  # the pool file comes last
    table = _table(ds, paths, ds_out)
    eip_frame = load_eip_table(table, len(data))[0]  # read once: the best-EIP rows of every split use it
    seeds = q.seeds if q else spec.seeds
    for seed in seeds:
        full = _split(ds, data, n_main, seed, q)
        n_marks = int((full.mark == "train").sum())
        sizes = spec.train_sizes
        for n in sorted(set(train_counts(sizes, n_marks)) | {n_marks}) if sizes else [n_marks]:
            split = full if n == n_marks else nested_subset(full, n, seed)
            tag = f"seed{seed}" + ("" if n == n_marks else f"/n{n}")
            split_path = ds_out / "splits" / (tag.replace("/", "_") + ".csv")
            write_split(split, split_path)
            point = (data, paths, table, split, str(split_path), seed, tag)
            models = spec.run_models(how.quick)
            options = _run_config(spec, ds, paths, str(split_path), table, models[0], seed, q).strategy
            plan.eip_rows.append(_best_eip_row(data, table, eip_frame, split, options, ds.name, seed, tag, out,
                                               how.results))
            first = seed == seeds[0] and n == n_marks  # ablations: the first split seed, the full train set
            for model in models:
                _plan_model(plan, spec, ds, model, point, ds_out, q, first)


def _plan_model(plan: Plan, spec: ExperimentSpec, ds: DatasetSpec, model: str, point, ds_out: Path, q, first: bool):
    """The runs of one model on one split point: strategies, variants and (on the first) ablations."""
    data, paths, table, split, split_path, seed, tag = point
    run = _run_config(spec, ds, paths, split_path, table, model, seed, q)
    ctx = load_context(run, split)
    plan.contexts[context_key(run)] = ctx
    seed_dir, full_dir = ds_out / model / tag, ds_out / model / f"seed{seed}"
    abl = spec.ablations if first else None
    here = []
    for label, opts in list(labelled_runs(spec, abl)) + _eip_subset_runs(ctx, abl, table):
        opts = dict(opts)
        adopt = opts.pop(ADOPT, None)  # a variant that takes another run's choice on this split
        r = with_options(run, opts, label, spec.path)
        folder = folder_name(label)
        r.out = str(seed_dir / folder)
        chosen = (str(seed_dir / folder_name(adopt) / "metrics.json") if adopt
                  else None if r.strategy.strategy == "auto" else choice_from(r, label, spec, seed_dir, full_dir, folder))
        here.append(PlannedRun(ds.name, model, seed, label, r, shared_folder(seed_dir, r), chosen))
    plan.runs += expand_auto(here, seed_dir)
    if first and spec.ablations.tsne and any(PRETRAINING in get_strategy(s).steps_for(run) for s in spec.strategies):
        plan.tsne.append((ctx, seed_dir / "shared" / "pretrain", ds_out / f"tsne_{model}.png"))


def _write_results(plan: Plan, out: Path, quick: bool) -> pd.DataFrame:
    """OUT/results.csv and OUT/results.md: this experiment's rows, and earlier rows it did not repeat."""
    rows = [{**run_row(json.loads(p.metrics_path.read_text()), p.label), "dataset": p.dataset, "model": p.model,
             "seed": p.seed} for p in plan.runs] + [r for r in plan.eip_rows if r]
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
        _write_if_changed(path / "metrics.json", metrics)
    return {**metrics, "strategy": BEST_EIP}


def _write_if_changed(path: Path, metrics: dict):
    """Write metrics.json unless it holds the same figures to 1e-9 relative (a recomputation on
    another machine differs in the last digits only: a kept results folder stays unchanged)."""
    if path.exists():
        old = json.loads(path.read_text())
        same = old.keys() == metrics.keys() and all(
            np.isclose(old[k], v, rtol=1e-9, atol=0) if isinstance(v, float) and isinstance(old[k], float)
            else old[k] == v for k, v in metrics.items())
        if same:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(metrics, indent=1))


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
