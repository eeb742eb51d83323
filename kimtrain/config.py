"""Every kimtrain option in one typed place: YAML files fill it, CLI flags override it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kimlabel import ENERGY_LIMIT


@dataclass
class ModelConfig:
    name: str = "schnet"        # a registered model: schnet | soapnet | cgcnn | gemnet (kimtrain.models)
    hidden: int = 128
    n_layers: int = 5           # interaction blocks (SchNet, GemNet), convolutions (CGCNN), hidden layers (SOAPNet)
    n_rbf: int = 50             # Gaussian radial basis size (SchNet, CGCNN)
    cutoff: float = 5.0         # A (paper: 5 for Si, 7 for Al)
    soap_r_cut: float = 5.0     # A
    soap_n_max: int = 8
    soap_l_max: int = 6
    filter: str = "tabulated"   # SchNet filters, CGCNN edge terms: tabulated on a distance grid and interpolated, or direct
    filter_grid: int = 2048     # grid points on [0, cutoff] for the tabulated filter
    n_radial: int = 6           # GemNet radial Bessel basis size
    n_spherical: int = 7        # GemNet Legendre orders in the spherical basis
    triplet_size: int = 64      # GemNet triplet features
    triplet_chunk: int = 4_000_000  # GemNet triplets per chunk: bounds memory, not results


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3            # linear decay to lr_end over all steps
    lr_end: float = 1e-5
    grad_clip: float = 10.0
    seed: int = 0
    device: str = "auto"        # auto | cpu | cuda | cuda:N
    loss: str = "per_atom"      # per_atom: MSE of E/N (eV/atom); total: MSE of E (eV)
    progress: bool = True       # bar on a terminal; one plain line per epoch otherwise
    threads: int | None = None  # torch CPU threads for this run (None: torch's default)
    force_weight: float = 0.0   # w in loss = energy MSE + w * force-component MSE ((eV/Å)^2); 0: energies only (the paper)


@dataclass
class StrategyConfig:
    strategy: str = "baseline"  # a registered strategy: baseline | la | mp | mp+la (kimtrain.strategies)
    alpha: float | None = None  # LA weight; None: chosen on validation from alphas
    alphas: list = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0])
    cut: float = 0.1            # eV/atom: an EIP is a class only if within this of DFT
    tukey: bool = True          # Tukey biweight on augmented labels (False: plain MSE)
    classifier_epochs: int = 50
    pretrain_epochs: int = 50
    warmup: float = 0.1         # fraction of steps of slanted-triangular warm-up
    max_energy_per_atom: float = ENERGY_LIMIT  # eV/atom: EIP labels above are masked in pretraining
    pretrain_force_weight: float = 0.0  # MP: weight of the EIP forces (kimlabel --forces table) in pretraining
    max_force: float = 50.0     # eV/Å: EIP atoms whose force is larger are masked (pretraining, augmented labels)
    augment_force_weight: float = 0.0  # LA: weight of the picked EIP's forces (Tukey per component) in the augmented term
    mf_weights: list = field(default_factory=lambda: [0.1, 1.0])  # mf: weights of the EIP fidelities' loss, chosen on validation
    mf_force_weight: float = 0.0  # mf: weight of the EIP forces (kimlabel --forces table) within the EIP fidelities' loss
    mf_embedding: bool = False  # mf: a learned fidelity embedding on the input instead of a head per fidelity (soapnet)
    auto_candidates: list = field(default_factory=lambda: ["baseline", "mp", "delta", "mf", "mp+delta"])  # auto: the strategies it tries
    eips: list | None = None    # EIP short names to use (None: every EIP in the table)
    eip: str | None = None      # delta: the EIP the network corrects (None: chosen on validation)
    confidence: str | None = None  # LA ablation: keep only the low / medium / high confidence third


@dataclass
class RunConfig:
    data: list = field(default_factory=list)   # data files, in kimlabel's config_id order
    split: str | None = None                   # split CSV (kimtrain split)
    table: str | None = None                   # kimlabel table, for la / mp
    out: str = "runs/fit"
    energy_key: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "strategy": StrategyConfig}

# options that must be > 0, by section; checked before any work starts
POSITIVE = {"model": ("hidden", "n_layers", "n_rbf", "cutoff", "soap_r_cut", "soap_n_max", "filter_grid",
                      "n_radial", "n_spherical", "triplet_size", "triplet_chunk"),
            "train": ("epochs", "batch_size", "lr", "lr_end", "grad_clip", "threads"),
            "strategy": ("cut", "classifier_epochs", "pretrain_epochs", "max_energy_per_atom", "max_force")}
NON_NEGATIVE = {"train": ("force_weight",), "strategy": ("pretrain_force_weight", "augment_force_weight",
                                                         "mf_force_weight")}
FLAGS = {"train.epochs": "--epochs", "strategy.cut": "--cut", "train.threads": "--threads"}
CHOICES = {("train", "loss"): ("per_atom", "total"), ("model", "filter"): ("tabulated", "direct"),
           ("strategy", "confidence"): (None, "low", "medium", "high")}


def check(run: "RunConfig", where: str = "config") -> "RunConfig":
    """Reject values no run can use (non-positive epochs, batch sizes, rates, cutoffs...), naming the option."""
    for section, names in POSITIVE.items():
        cfg = getattr(run, section)
        for name in names:
            value = getattr(cfg, name)
            if value is None and name == "threads":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                flag = FLAGS.get(f"{section}.{name}")
                raise ValueError(f"{where}: {section}.{name}{f' ({flag})' if flag else ''} must be a positive "
                                 f"number, got {value!r}")
    for section, names in NON_NEGATIVE.items():
        for name in names:
            value = getattr(getattr(run, section), name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{where}: {section}.{name} must be a number >= 0, got {value!r}")
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(run, section), name)
        if value not in allowed:
            raise ValueError(f"{where}: {section}.{name} must be one of {[a for a in allowed if a]}, got {value!r}")
    s = run.strategy
    if s.alpha is not None and not s.alpha >= 0:
        raise ValueError(f"{where}: strategy.alpha must be >= 0, got {s.alpha!r}")
    if not s.alphas or any(not (isinstance(a, (int, float)) and a >= 0) for a in s.alphas):
        raise ValueError(f"{where}: strategy.alphas must be a non-empty list of numbers >= 0, got {s.alphas!r}")
    if not s.mf_weights or any(isinstance(w, bool) or not (isinstance(w, (int, float)) and w >= 0) for w in s.mf_weights):
        raise ValueError(f"{where}: strategy.mf_weights must be a non-empty list of numbers >= 0, got {s.mf_weights!r}")
    for name in ("tukey", "mf_embedding"):
        if not isinstance(getattr(s, name), bool):
            raise ValueError(f"{where}: strategy.{name} must be true or false, got {getattr(s, name)!r}")
    if not 0 <= s.warmup < 1:
        raise ValueError(f"{where}: strategy.warmup must be in [0, 1), got {s.warmup!r}")
    if run.model.n_rbf < 2:
        raise ValueError(f"{where}: model.n_rbf must be at least 2, got {run.model.n_rbf}")
    return run


def from_dict(raw: dict, where: str = "config") -> RunConfig:
    """Build a RunConfig, rejecting unknown keys with the offending name."""
    raw = dict(raw or {})
    kwargs = {}
    for name, cls in SECTIONS.items():
        section = raw.pop(name, {}) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"{where}: unknown {name} option(s) {sorted(unknown)}; known: {sorted(known)}")
        kwargs[name] = cls(**section)
    known = {f.name for f in dataclasses.fields(RunConfig)} - set(SECTIONS)
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {sorted(unknown)}")
    if isinstance(raw.get("data"), str):
        raw["data"] = [raw["data"]]
    return check(RunConfig(**raw, **kwargs), where)


def load(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """RunConfig from a YAML file (optional) with dotted overrides {'train.epochs': 5, 'out': ...}."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    raw = raw or {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(raw, str(path or "options"))
