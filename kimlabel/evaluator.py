"""Evaluate every EIP of a potential set on a configuration, turning failures into statuses."""
from __future__ import annotations

import faulthandler
import math
import os
import tempfile

import numpy as np

from .schema import energy_col, error_col, force_cols, status_col
from .errors import ModelInitError
from .kimlog import KIMLog
from .neighbours import Frame, NeighbourLists
from .session import KIMModel, UnsupportedSpecies, silence_stdout, status_of


def make_model(kim_id: str):
    """A portable model through kimpy, or a simulator model (__SM_) through LAMMPS."""
    from .simulator import SimulatorModel, is_simulator_model
    return SimulatorModel(kim_id) if is_simulator_model(kim_id) else KIMModel(kim_id)


def supported_species(kim_id: str) -> list[str]:
    """Species a portable or simulator model supports, as the KIM API reports them."""
    from .simulator import is_simulator_model, simulator_commands
    if is_simulator_model(kim_id):
        return sorted(simulator_commands(kim_id)[1])
    return KIMModel.supported_species_of(kim_id.partition("@")[0])


class ConfigurationError(ValueError):
    """A configuration no model can be evaluated on (its periodic images cannot be built)."""


def reason(err: Exception, log=None) -> str:
    """Why an evaluation failed, in one line: the exception, plus the KIM API's own last error
    (read from its log) when the exception is kimpy's bare 'compute failed'."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, ConfigurationError):
        return text
    detail = log.last_error() if log is not None else None
    return f"{text}: {detail}" if detail else text


class Evaluator:
    """Holds one model per EIP; evaluates configurations into table rows. The periodic images
    and the neighbour lists of a configuration are built once for all portable models."""

    def __init__(self, potentials: dict[str, str], forces: bool = False):
        self.potentials = dict(potentials)
        self.forces = forces
        self.models = {name: make_model(kim_id) for name, kim_id in self.potentials.items()}
        self.log = KIMLog()  # why a model failed, in the KIM API's words
        self.influence = max(m.influence for m in self.models.values())
        self.frame = Frame(self.influence)
        lists = NeighbourLists()
        for model in self.models.values():
            if isinstance(model, KIMModel):
                model.share(lists)

    @staticmethod
    def base_row(cfg, forces: bool):
        """Row fields that do not depend on the EIPs, and the reference-force columns."""
        n = len(cfg.symbols)
        row = {"config_id": cfg.config_id, "source": cfg.source, "index": cfg.index, "n_atoms": n,
               "formula": cfg.formula, "config_type": cfg.config_type, "energy_ref": cfg.energy_ref}
        fcols = None
        if forces:
            ref = cfg.forces_ref if cfg.forces_ref is not None else np.full((n, 3), math.nan)
            fcols = {"config_id": np.full(n, cfg.config_id), "atom": np.arange(n),
                     "symbol": list(cfg.symbols), "fx_ref": ref[:, 0], "fy_ref": ref[:, 1], "fz_ref": ref[:, 2]}
        return row, fcols

    def evaluate(self, cfg):
        """(row dict, per-atom force columns dict or None) for one Config."""
        n = len(cfg.symbols)
        row, fcols = self.base_row(cfg, self.forces)
        try:
            frame, why_not = self.frame.load(cfg.symbols, cfg.positions, cfg.cell, cfg.pbc), None
        except Exception as err:  # degenerate cell or coordinates: every model fails on it
            frame, why_not = None, f"periodic images: {reason(err)}"
        for name, model in self.models.items():
            energy, forces, status, error = math.nan, None, "ok", None
            try:
                if frame is None:
                    raise ConfigurationError(why_not)
                energy, forces = model.compute(frame, self.forces)
                status = status_of(energy, n, forces)
            except UnsupportedSpecies:
                status = "unsupported_species"
            except Exception as err:  # kimpy raises RuntimeError; degenerate input may raise others
                status, error = "model_error", reason(err, self.log if isinstance(model, KIMModel) else None)
            if status in ("model_error", "unsupported_species", "nonfinite"):
                energy, forces = math.nan, None
            row[energy_col(name)] = energy
            row[status_col(name)] = status
            row[error_col(name)] = error
            if fcols is not None:
                f = forces if forces is not None else np.full((n, 3), math.nan)
                for k, col in enumerate(force_cols(name)):
                    fcols[col] = f[:, k]
        return row, fcols

    def evaluate_chunk(self, chunk):
        """(rows, force column dicts) for a list of Configs."""
        for model in self.models.values():
            if hasattr(model, "reset"):  # simulator models: each chunk computed the same way in any worker
                model.reset()
        rows, forces = [], []
        for cfg in chunk:
            row, f = self.evaluate(cfg)
            rows.append(row)
            if f is not None:
                forces.append(f)
        return rows, forces


def crashed_result(cfg, name, forces):
    """Chunk-shaped result for a model whose native code crashed the process on cfg."""
    n = len(cfg.symbols)
    row = {energy_col(name): math.nan, status_col(name): "model_error",
           error_col(name): "the model's native code crashed the process"}
    f = {c: np.full(n, math.nan) for c in force_cols(name)} if forces else None
    return [row], [f] if forces else []


def merge_model_results(cfg, potentials, forces, parts):
    """Join per-model results {name: (rows, forces)} for one configuration into one row."""
    row, fcols = Evaluator.base_row(cfg, forces)
    for name in potentials:
        rows, frc = parts[name]
        row[energy_col(name)] = rows[0][energy_col(name)]
        row[status_col(name)] = rows[0][status_col(name)]
        row[error_col(name)] = rows[0][error_col(name)]
        if forces:
            fcols.update({c: frc[0][c] for c in force_cols(name)})
    return [row], [fcols] if forces else []


# Worker-process state for multiprocessing pools: one Evaluator per process, or why it could not be made.
_WORKER: Evaluator | None = None
_WORKER_FAILED: dict[str, str] = {}


def creation_failures(potentials) -> dict[str, str]:
    """{name: why} for every EIP whose model cannot be created here (not installed, a simulator
    model whose LAMMPS pair style is missing...)."""
    failed = {}
    for name, kim_id in potentials.items():
        try:
            make_model(kim_id)
        except ModelInitError as err:
            failed[name] = str(err)
    return failed


def worker_evaluator(potentials, forces, scratch=None) -> Evaluator:
    """An Evaluator for a worker process (pool or Dask worker): run from a scratch directory (KIM
    writes kim.log to the cwd), no traceback dump on a crash (the parent handles it), banners muted."""
    faulthandler.disable()
    folder = os.path.join(scratch or tempfile.mkdtemp(prefix="kimlabel-"), f"worker-{os.getpid()}")
    os.makedirs(folder, exist_ok=True)
    os.chdir(folder)  # a kim.log of its own: a model's error is read from its process's log
    silence_stdout()  # some drivers print banners when created
    return Evaluator(potentials, forces)


def init_worker(potentials, forces, scratch=None):
    """Process-pool initializer: one Evaluator per worker process (worker_failures says if not)."""
    global _WORKER, _WORKER_FAILED
    try:
        _WORKER = worker_evaluator(potentials, forces, scratch)
    except ModelInitError:
        _WORKER_FAILED = creation_failures(potentials)


def worker_failures() -> dict[str, str]:
    """{name: why} for the models this pool worker could not create."""
    return _WORKER_FAILED


def evaluate_chunk(chunk):
    """Evaluate a list of Configs in a pool worker; returns (rows, force column dicts)."""
    return _WORKER.evaluate_chunk(chunk)


def evaluate_chunks(batches):
    """evaluate_chunk for each of several chunks (ConfigBatch): one task, one result per chunk."""
    return [_WORKER.evaluate_chunk(batch.unpack()) for batch in batches]
