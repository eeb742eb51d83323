"""An experiment's plan: the labelled runs (strategies, variants, ablations), the folders their
shared trainings go to, the task graph `kimtrain experiment` runs (in worker processes or on Dask),
and the task functions themselves.

Every run of a split shares one folder (`shared`, or `shared_<EIPs>` for an EIP subset) holding
the shared steps its strategies declare, each in its own folder (`pretrain`, `pretrain_F<w>` with
EIP forces, `classifier`, or a step of your own): the planner knows them only through
`Strategy.steps`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from kimlabel import write_atomic

from ..config import check
from ..strategies.fit import run_fit
from .parallel import Task
from ..strategies.steps import run_step
from ..strategies import get as get_strategy
from ..training.context import load_context


def labelled_runs(spec, ablations):
    """(label, options) for the main strategies, the spec's variants and the requested ablations
    (an Ablations, or None). Options are strategy fields, or dotted `section.field` names (train.force_weight)."""
    for s in spec.strategies:
        yield s, {"strategy": s}
    for label, opts in spec.variants.items():
        yield label, dict(opts)
    if ablations and ablations.tukey:
        yield "la (MSE, no Tukey)", {"strategy": "la", "tukey": False}
    for third in ("low", "medium", "high") if ablations and ablations.confidence else ():
        yield f"la ({third} confidence)", {"strategy": "la", "confidence": third}


@dataclass
class PlannedRun:
    """One row of the results table: a strategy (or ablation) for one dataset, model and split seed."""
    dataset: str
    model: str
    seed: int
    label: str
    run: object            # RunConfig; run.out is the run's folder
    shared: Path           # folder of the pretraining and classifier shared with sibling runs
    choice_from: str | None = None  # adopt the alpha / EIP chosen by this run's metrics.json
    candidates: list | None = None  # auto: the runs (PlannedRun) it chooses among on validation

    @property
    def metrics_path(self) -> Path:
        return Path(self.run.out) / "metrics.json"


def with_options(run, opts: dict, label: str, where: str = "experiment"):
    """A copy of run with a run's options set: strategy fields, or `section.field` names; unknown
    names and bad values stop the experiment, naming the run (and `where`, its file)."""
    r = copy.deepcopy(run)
    for key, value in opts.items():
        section, name = key.split(".", 1) if "." in key else ("strategy", key)
        target = getattr(r, section, None)
        if section not in ("model", "train", "strategy") or not hasattr(target, name):
            raise ValueError(f"{where}: unknown option {key!r} in variant {label!r} (strategy fields, or "
                             "model./train./strategy. followed by a field)")
        setattr(target, name, value)
    return check(r, f"{where}: variant {label!r}")


def folder_name(label: str) -> str:
    """A run's folder from its label: `mp+la (EIP F) +F` -> `mp+la_EIP_F_+F`."""
    return label.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")


def _settings(run) -> dict:
    d = run.to_dict()
    d.pop("out")
    return d


def expand_auto(runs: list[PlannedRun], seed_dir: Path) -> list[PlannedRun]:
    """runs (one model on one split point) with every auto run's candidates as runs of their own,
    placed before it: a sibling run with the same settings is the candidate (trained once for both),
    others are added, labelled like the auto run with the candidate's name for `auto`. Auto's own
    task then only chooses (costing nothing beyond its candidates)."""
    out = []
    for p in runs:
        if p.run.strategy.strategy != "auto":
            out.append(p)
            continue
        p.candidates = []
        for name, crun in get_strategy("auto").candidate_runs(p.run).items():
            same = [q for q in runs + out if q.run.strategy.strategy != "auto" and _settings(q.run) == _settings(crun)]
            if same:
                p.candidates.append(same[0])
                continue
            label = p.label.replace("auto", name) if "auto" in p.label else f"{p.label} [{name}]"
            if any(q.label == label for q in runs + out):
                label = f"{label} [auto]"
            crun.out = str(seed_dir / folder_name(label))
            q = PlannedRun(p.dataset, p.model, p.seed, label, crun, shared_folder(seed_dir, crun))
            out.append(q)
            p.candidates.append(q)
        out.append(p)
    return out


def shared_folder(seed_dir: Path, run) -> Path:
    """The folder of the pretrainings and the classifier that runs on the same split and EIPs share."""
    return seed_dir / ("shared" if not run.strategy.eips else "shared_" + "+".join(run.strategy.eips))


def choice_from(run, label: str, spec, seed_dir: Path, full_dir: Path, folder: str) -> str | None:
    """The metrics.json whose choice (LA alpha, Δ EIP) this run adopts instead of choosing on
    validation itself: an ablation takes its seed's main LA alpha; a learning-curve point takes the
    choice of the same strategy on the full train set (same validation marks, one choice per seed)."""
    if label not in spec.strategies and label not in spec.variants:  # an ablation
        return str(seed_dir / "la" / "metrics.json") if run.strategy.alpha is None else None
    if seed_dir != full_dir and len(get_strategy(run.strategy.strategy).variants(run)) > 1:
        return str(full_dir / folder / "metrics.json")
    return None


def plan_tasks(planned: list[PlannedRun], out: Path, kept: Path | None) -> list[Task]:
    """The trainings of the unfinished runs: shared pretrainings and classifiers first, then one
    task per fine-tuning (per alpha), then each run's selection; ablations wait for the main LA run."""
    tasks, names = [], set()

    def add(name, fn, args, needs=()):
        if name not in names:
            names.add(name)
            tasks.append(Task(name, fn, args, list(needs)))
        return name

    fit_name = {p.run.out: str(Path(p.run.out).relative_to(out)) for p in planned}
    for p in planned:
        if p.metrics_path.exists():
            continue
        if p.candidates is not None:  # auto: waits for its candidates' runs, then chooses
            needs = [fit_name[c.run.out] for c in p.candidates if not c.metrics_path.exists()]
            add(fit_name[p.run.out], _task_auto, (p, kept / Path(p.run.out).relative_to(out) if kept else None),
                needs)
            continue
        strategy = get_strategy(p.run.strategy.strategy)
        shared_rel = Path(p.shared).relative_to(out)
        needs = [add(f"{shared_rel}/{step.folder(p.run)}", _task_step, (p.run, k, p.shared))
                 for k, step in enumerate(strategy.steps_for(p.run))]
        if p.choice_from:
            chooser = str(Path(p.choice_from).parent)
            if chooser in fit_name and not Path(p.choice_from).exists():
                needs.append(fit_name[chooser])
        elif len(strategy.variants(p.run)) > 1:  # one task per variant; the run's task then selects
            shared_needs = list(needs)
            for v in strategy.variants(p.run):
                needs.append(add(f"{fit_name[p.run.out]} {strategy.variant_name(v)}", _task_variant,
                                 (p.run, v, p.shared), shared_needs))
        rel = Path(p.run.out).relative_to(out)
        add(fit_name[p.run.out], _task_fit, (p, kept / rel if kept else None), needs)
    return tasks


def restore(p: PlannedRun, out: Path, kept: Path | None):
    """A run finished in an earlier sitting (its metrics.json kept under RESULTS) counts as done here."""
    if kept is None or p.metrics_path.exists():
        return
    saved = kept / Path(p.run.out).relative_to(out) / "metrics.json"
    if saved.exists():
        p.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics = {k: v for k, v in json.loads(saved.read_text()).items() if k not in ("dataset", "label")}
        write_atomic(p.metrics_path, json.dumps(metrics, indent=1))


_CONTEXTS = {}  # data, split and model inputs per (data, split, model config), loaded once per process


def remember_contexts(contexts: dict):
    """Contexts the experiment loaded while planning (keyed by context_key): tasks run in this
    process (--jobs 1) use them instead of loading the data again."""
    _CONTEXTS.update(contexts)


def context_key(run) -> tuple:
    return (tuple(run.data), run.split, json.dumps(dataclasses.asdict(run.model), sort_keys=True))


def cached_context(run):
    key = context_key(run)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = load_context(run)
    return dataclasses.replace(_CONTEXTS[key], run=run)


def _task_step(run, k: int, shared):
    """The run's strategy's k-th shared step (by position: steps need not be picklable)."""
    run_step(cached_context(run), get_strategy(run.strategy.strategy).steps_for(run)[k], shared)


def _task_variant(run, variant: float, shared):
    ctx, strategy = cached_context(run), get_strategy(run.strategy.strategy)
    strategy.train(ctx, run.out, strategy.prepare(ctx, run.out, True, shared), variant, True)


def _task_fit(p: PlannedRun, keep_dir: Path | None):
    """The run's selection and test metrics (its trainings are done by now); metrics.json is copied
    to keep_dir with the dataset and label, for tables regenerated from there."""
    run = copy.deepcopy(p.run)
    if p.choice_from:
        get_strategy(run.strategy.strategy).adopt_choice(run, json.loads(Path(p.choice_from).read_text()))
    metrics = run_fit(run, resume=True, ctx=cached_context(run), shared=p.shared)
    _keep(keep_dir, metrics, p)
    return metrics


def _keep(keep_dir: Path | None, metrics: dict, p: PlannedRun):
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(keep_dir / "metrics.json", json.dumps({**metrics, "dataset": p.dataset, "label": p.label},
                                                           indent=1))


def _task_auto(p: PlannedRun, keep_dir: Path | None):
    """auto in an experiment: the candidate run with the lowest validation error (val_loss when
    training on forces, else the per-atom energy MAE); its metrics (and best.pt, when this machine
    trained it) become auto's, with the choice, every candidate's figure and the cost recorded."""
    from ..strategies.auto import choose
    key = "val_loss" if p.run.train.force_weight > 0 else "val_mae_per_atom"
    found = {c.run.strategy.strategy: (c, json.loads(c.metrics_path.read_text())) for c in p.candidates}
    chosen = choose({n: m for n, (_, m) in found.items()}, key)
    run, source = found[chosen]
    metrics = {k: v for k, v in source.items() if k not in ("dataset", "label")}
    metrics.update(strategy="auto", auto_choice=chosen, auto_validation={n: m.get(key) for n, (_, m) in found.items()},
                   auto_trainings=get_strategy("auto").trainings(p.run), auto_from=Path(run.run.out).name)
    Path(p.run.out).mkdir(parents=True, exist_ok=True)
    if (Path(run.run.out) / "best.pt").exists():
        import shutil
        shutil.copyfile(Path(run.run.out) / "best.pt", Path(p.run.out) / "best.pt")
    write_atomic(p.metrics_path, json.dumps(metrics, indent=1))
    _keep(keep_dir, metrics, p)
    return metrics
