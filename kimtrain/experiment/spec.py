"""The experiment file (`kimtrain experiment CONFIG.yaml`), typed and checked before any work.

Every level (the file, each dataset, its split, the variants, the ablations, the quick settings)
is a dataclass; an unknown or misspelt key, a missing data file, an unknown model or strategy, a
bad split or a bad run option stops the experiment at load time, naming the key, where it is
and the file. Omitted lists take the paper's protocol: `strategies` [baseline, la, mp, mp+la],
`models` every registered model, `seeds` [0, 1, 2].
"""
from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import from_dict

DEFAULT_STRATEGIES = ["baseline", "la", "mp", "mp+la"]  # the paper's Table 3
MARKS = ("pool", "train", "val", "test")
INTERNAL = {"internal": True}  # metadata of fields that are not keys of the file
DEFAULT_SEEDS = [0, 1, 2]


@dataclass
class SplitSpec:
    """Fractions of the main data files' configurations (a pool file is all pool)."""
    pool: float = 0.8
    train: float = 0.12
    val: float = 0.04
    test: float = 0.04
    stratify: str | None = None  # config_type: the fractions hold within each configuration type
    order: list = field(default_factory=list, repr=False, metadata=INTERNAL)  # the file's keys, in its order

    def fractions(self) -> dict[str, float]:
        """{mark: fraction} in the order the file gives them: the order breaks ties when a group's
        counts are rounded (kimtrain.data.splits), so a file's split is the same as it always was."""
        given = [k for k in self.order if k in MARKS]
        return {k: getattr(self, k) for k in given + [m for m in MARKS if m not in given]}


@dataclass
class DatasetSpec:
    name: str
    data: list                      # files or glob patterns, in kimlabel's config_id order
    pool_file: str | None = None    # unlabelled configurations, all pool
    potentials: str | list | None = None  # the EIPs to label with (a set, names, KIM IDs), unless `table`
    table: str | None = None        # an existing kimlabel table of data + pool_file
    forces: bool = False            # label EIP forces too (kimlabel --forces)
    energy_key: str | None = None   # info key of the DFT energy (eV)
    split: SplitSpec = field(default_factory=SplitSpec)
    model: dict = field(default_factory=dict)  # model options for this dataset (cutoff...), over the file's

    def paths(self) -> list[str]:
        """The data files (patterns expanded) followed by the pool file."""
        return expand(self.data, self.name) + ([self.pool_file] if self.pool_file else [])


@dataclass
class Ablations:
    """The paper's ablations, on the first split seed: Tukey (Table 4), confidence (5), EIP subsets (7), t-SNE."""
    tukey: bool = False
    confidence: bool = False
    eip_subsets: bool = False
    tsne: bool = False


@dataclass
class QuickSpec:
    """--quick: a few epochs on a small pool, for tests and a first look."""
    epochs: int = 3
    classifier_epochs: int = 3
    pretrain_epochs: int = 3
    pool_max: int = 150
    seeds: list = field(default_factory=lambda: [0])
    alphas: list = field(default_factory=lambda: [0.1, 1.0])
    models: list | None = None


@dataclass
class ExperimentSpec:
    datasets: list                  # DatasetSpec
    models: list | None = None      # None: every registered model
    strategies: list = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    seeds: list = field(default_factory=lambda: list(DEFAULT_SEEDS))
    model: dict = field(default_factory=dict)     # ModelConfig options for every run
    train: dict = field(default_factory=dict)     # TrainConfig options
    strategy: dict = field(default_factory=dict)  # StrategyConfig options
    variants: dict = field(default_factory=dict)  # label -> run options (strategy fields or section.field)
    ablations: Ablations = field(default_factory=Ablations)
    train_sizes: list | None = None  # learning-curve points: counts or fractions of the train marks
    quick: QuickSpec = field(default_factory=QuickSpec)
    path: str = field(default="experiment", metadata=INTERNAL)  # the file, for messages

    def model_names(self) -> list[str]:
        from ..models import names
        return list(self.models or names())

    def run_models(self, quick: bool = False) -> list[str]:
        """The models an experiment trains: the quick settings' models in a --quick run, when they
        name any, else the file's (or every registered model)."""
        return list(self.quick.models) if quick and self.quick.models else self.model_names()


def _typed(cls, raw, where: str, place: str):
    """cls(**raw) with unknown keys refused by name and place; nested dataclass fields built too."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: {place} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} in {place}; known keys there: {', '.join(fields)}")
    kwargs = dict(raw)
    for name, f in fields.items():
        sub = {"split": SplitSpec, "ablations": Ablations, "quick": QuickSpec}.get(name)
        if sub is not None and name in kwargs:
            kwargs[name] = _typed(sub, kwargs[name], where, f"{place}.{name}" if place != "the file" else name)
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in kwargs]
    if missing:
        raise ValueError(f"{where}: {place} needs the key {missing[0]!r}")
    if any(f.name == "order" for f in dataclasses.fields(cls)):
        kwargs["order"] = list(raw)
    return cls(**kwargs)


def _names(value, where: str, key: str) -> list:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty list, got {value!r}")
    return value


def expand(patterns, name: str) -> list[str]:
    """Data entries may be glob patterns (data/al/*.extxyz.gz); each must match something."""
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ValueError(f"dataset {name}: no file matches {pattern!r} (download it first, see README)")
        paths += found
    return paths


def check_spec(spec: ExperimentSpec, quick: bool = False) -> ExperimentSpec:
    """Everything that can be checked before any work: files, names, split fractions, run options,
    and each strategy's own refusals for every model that will run (`quick`: the quick settings' models)."""
    from ..models import get as get_model
    from .plan import with_options
    from ..strategies import get as get_strategy
    where = spec.path
    if not isinstance(spec.datasets, list) or not spec.datasets:
        raise ValueError(f"{where}: datasets must be a non-empty list")
    if not isinstance(spec.strategies, list) or not (spec.strategies or spec.variants):
        raise ValueError(f"{where}: strategies must be a list of strategy names (or empty, with variants), "
                         f"got {spec.strategies!r}")
    if spec.models is not None:
        spec.models = _names(spec.models, where, "models")
    for name in spec.model_names():
        try:
            get_model(name)
        except ValueError as err:
            raise ValueError(f"{where}: models: {err}") from None
    for name in spec.strategies:
        try:
            get_strategy(name)
        except ValueError as err:
            raise ValueError(f"{where}: strategies: {err}") from None
    spec.seeds = _names(spec.seeds, where, "seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in spec.seeds):
        raise ValueError(f"{where}: seeds must be integers, got {spec.seeds!r}")
    if not isinstance(spec.variants, dict):
        raise ValueError(f"{where}: variants must map labels to run options, got {spec.variants!r}")
    names = set()
    for k, ds in enumerate(spec.datasets):
        place = f"datasets[{k}]" + (f" ({ds.name})" if ds.name else "")
        if ds.name in names:
            raise ValueError(f"{where}: {place}: another dataset is named {ds.name!r}")
        names.add(ds.name)
        ds.data = _names(ds.data, where, f"{place}.data")
        try:
            paths = ds.paths()
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        for p in paths + ([ds.table] if ds.table else []):
            if not Path(p).is_file():
                raise ValueError(f"{where}: {place}: no such file {p!r}")
        if not ds.table and not ds.potentials:
            raise ValueError(f"{where}: {place} needs `potentials` (the EIPs to label with) or `table`")
        fr = ds.split.fractions()
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in fr.values()) \
                or sum(fr.values()) > 1 + 1e-9:
            raise ValueError(f"{where}: {place}.split: fractions must be numbers >= 0 summing to at most 1, got {fr}")
        if ds.split.stratify not in (None, "config_type"):
            raise ValueError(f"{where}: {place}.split.stratify must be config_type, got {ds.split.stratify!r}")
        run = from_dict({"model": dict(spec.model, **ds.model), "train": spec.train, "strategy": spec.strategy},
                        f"{where}: {place}")
        runs = {name: with_options(run, {"strategy": name}, name, where) for name in spec.strategies}
        for label, opts in spec.variants.items():
            if not isinstance(opts, dict):
                raise ValueError(f"{where}: variants.{label} must map options to values, got {opts!r}")
            opts = dict(opts)
            adopt = opts.pop(ADOPT, None)
            if adopt is not None and adopt not in set(spec.strategies) | set(spec.variants) - {label}:
                raise ValueError(f"{where}: variants.{label}.{ADOPT}: {adopt!r} is not a strategy or another variant "
                                 f"of this file ({', '.join([*spec.strategies, *spec.variants])})")
            runs[label] = with_options(run, opts, label, where)
            get_strategy(runs[label].strategy.strategy)
        for label, r in runs.items():  # a strategy's own refusals (options it cannot use), for every model
            for model in spec.run_models(quick):
                r.model.name = model
                try:
                    get_strategy(r.strategy.strategy).check(r)
                except ValueError as err:
                    raise ValueError(f"{where}: {label!r} with model {model}: {err}") from None
    return spec


ADOPT = "adopt_choice_of"  # a variant key: take the choice (EIP, alpha, weight) that run made on the same split


def load_spec(path, models=None, seeds=None, strategies=None, alphas=None, train_sizes=None,
              quick: bool = False, variants=None) -> ExperimentSpec:
    """The experiment in the YAML file `path`, checked (for a --quick run with `quick`), with the
    command line's overrides applied. `variants` keeps the file's variants of those labels
    (["none"]: none of them); an unknown label is refused with the file's labels."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such experiment file") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    where = str(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an experiment file is a mapping with at least `datasets:`")
    raw = dict(raw)
    datasets = raw.pop("datasets", None)
    if not isinstance(datasets, list) or not datasets:
        raise ValueError(f"{where}: needs `datasets:`, a list of datasets (name, data, potentials or table)")
    spec = _typed(ExperimentSpec, dict(raw, datasets=[]), where, "the file")
    spec.datasets = [_typed(DatasetSpec, ds, where, f"datasets[{k}]") for k, ds in enumerate(datasets)]
    spec.path = where
    for key in ("model", "train", "strategy"):
        if not isinstance(getattr(spec, key), dict):
            raise ValueError(f"{where}: {key} must be a mapping of options, got {getattr(spec, key)!r}")
    if models:
        spec.models = list(models)
    if seeds:
        spec.seeds = list(seeds)
    if strategies:
        spec.strategies = list(strategies)
    if alphas:
        spec.strategy = dict(spec.strategy, alphas=list(alphas))
    if train_sizes:
        spec.train_sizes = list(train_sizes)
    if variants and isinstance(spec.variants, dict):
        wanted = [] if list(variants) == ["none"] else list(variants)
        unknown = [v for v in wanted if v not in spec.variants]
        if unknown:
            raise ValueError(f"{where}: --variants {', '.join(unknown)}: not a variant of this file "
                             f"(its variants: {', '.join(spec.variants) or 'none'})")
        spec.variants = {label: spec.variants[label] for label in wanted}
    return check_spec(spec, quick)
