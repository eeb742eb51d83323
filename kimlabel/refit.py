"""`kimlabel refit`: fit a portable KIM model's parameters to DFT with KLIFF, for a labeller that
keeps the EIP's physics and comes closer to DFT. Writes a parameter file for `NAME@refit.yaml`.

The fit uses the split's train marks only. EIP energies are relative to isolated atoms, so the DFT
energies are first aligned per species on train (E_DFT - sum_s n_s mu_s, mu fitted against the
unfitted model); forces need no alignment. Cutoff parameters are never fitted (KLIFF would leave
its neighbour lists stale): a parameter whose change moves the model's influence distance is one.
KLIFF 1.0.1 pins ase<3.23 and numpy<2 but runs its KIM-model fitting path with this project's
(tested): `make install` installs it without its pins (`pip install --no-deps kliff`, plus loguru,
monty and requests, its other runtime needs).
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .files import write_atomic
from .inputs import iter_configs
from .parameters import parameter_index
from .runner import scratch_cwd
from .neighbours import Frame
from .session import KIMModel, ModelInitError


def _energies(model: KIMModel, configs) -> np.ndarray:
    frame = Frame(model.influence)
    return np.array([model.compute(frame.load(c.symbols, c.positions, c.cell, c.pbc))[0] for c in configs])


def fittable(kim_id: str, names=None) -> list[str]:
    """Float parameters of the model that are not cutoffs (or `names`, checked)."""
    model = KIMModel(kim_id)
    m, base = model.model, model.influence
    meta = parameter_index(m)
    out = []
    for name in names or list(meta):
        if name not in meta:
            raise ValueError(f"--params: {kim_id} has no parameter {name!r} (it has {', '.join(meta)})")
        i, dtype, extent = meta[name]
        if not dtype.endswith("Double"):
            if names:
                raise ValueError(f"--params: {name} is an integer parameter of {kim_id}; only real ones are fitted")
            continue
        old = m.get_parameter_double(i, 0)
        m.set_parameter(i, 0, old * 1.01 + 0.01)
        m.clear_then_refresh()
        moved = abs(m.get_influence_distance() - base) > 1e-12
        m.set_parameter(i, 0, old)
        m.clear_then_refresh()
        if moved:
            if names:
                raise ValueError(f"--params: {name} sets {kim_id}'s cutoff; cutoffs are never fitted")
            continue
        out.append(name)
    return out


def _composition(configs, species) -> np.ndarray:
    return np.array([[c.symbols.count(s) for s in species] for c in configs], dtype=float)


def refit(kim_id: str, data, split, out, params=None, forces_weight: float = 0.0, maxiter: int = 100,
          keep_signs: bool = False, name: str | None = None) -> dict:
    """Fit, write OUT (a parameter YAML, never over an existing file) and return a report: the
    fitted parameters and per-atom energy MAE (eV/atom) on train and test before and after.

    keep_signs: every fitted value keeps the sign of the model's own (L-BFGS-B bounds at 0), so a
    repulsive prefactor stays repulsive; a fit that would take Tersoff's B below 0, where the model
    refuses to compute, stops at 0 instead. A fit whose bounds never bind is unchanged by them.
    name: the potential's short name, for messages. Simulator models are refused: KLIFF sets the
    parameters of portable models only."""
    from .simulator import is_simulator_model
    if is_simulator_model(kim_id):
        raise ValueError(f"refit: {f'{name} ({kim_id})' if name else kim_id} is a KIM simulator model, run through "
                         "LAMMPS; refit fits portable models only (KLIFF sets their parameters through the KIM API)")
    out = Path(out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} exists: choose another --out, or delete it first")
    if not forces_weight >= 0:
        raise ValueError(f"--forces-weight must be >= 0, got {forces_weight}")
    data, split = [str(Path(p).resolve()) for p in data], Path(split).resolve()
    with scratch_cwd():  # the KIM API writes kim.log to the working directory
        return _refit(kim_id, data, split, out, params, forces_weight, maxiter, keep_signs)


def _refit(kim_id, data, split, out, params, forces_weight, maxiter, keep_signs) -> dict:
    configs = list(iter_configs(data))
    marks = pd.read_csv(split).set_index("config_id")["mark"]
    extra = marks.iloc[len(configs):]  # a split made with --pool-file lists the pool file's configurations after
    if len(marks) < len(configs) or not (extra == "pool").all():
        raise ValueError(f"{split}: {len(marks)} rows for {len(configs)} configurations in the data "
                         "(and rows after them may only be the pool file's)")
    marks = marks.iloc[: len(configs)]
    train = [c for c in configs if marks[c.config_id] == "train"]
    test = [c for c in configs if marks[c.config_id] == "test"]
    lacking = [c.config_id for c in train if not math.isfinite(c.energy_ref)
               or (forces_weight > 0 and c.forces_ref is None)]
    if not train or lacking:
        raise ValueError(f"{split}: train configurations {lacking[:10] or '(none)'} lack DFT energies"
                         + (" or forces" if forces_weight > 0 else ""))
    names = fittable(kim_id, params)
    if not names:
        raise ValueError(f"{kim_id}: no real, non-cutoff parameter to fit")
    species = sorted({s for c in configs for s in c.symbols})
    comp = _composition(train, species)
    dft = np.array([c.energy_ref for c in train])

    def scored(label, model):
        """Per-species offsets (eV/atom) of `model` aligned on train; its MAE into the report."""
        e_train = _energies(model, train)
        mu = np.linalg.lstsq(comp, dft - e_train, rcond=None)[0]
        for mark, group, energies in (("train", train, e_train), ("test", test, None)):
            if group:
                pred = (_energies(model, group) if energies is None else energies) + _composition(group, species) @ mu
                ref = np.array([c.energy_ref for c in group])
                ok = np.isfinite(ref)
                n = np.array([len(c.symbols) for c in group])
                report[f"{mark}_mae_per_atom_{label}"] = float(np.mean(np.abs(pred - ref)[ok] / n[ok]))
        return mu

    report = {"model": kim_id, "n_train": len(train), "n_test": len(test), "keep_signs": keep_signs}
    mu = scored("before", KIMModel(kim_id))  # the DFT energies are aligned with the unfitted model
    report["parameters"] = _fit_with_kliff(kim_id, train, dft - comp @ mu, names, forces_weight, maxiter,
                                           keep_signs)
    write_atomic(out, yaml.safe_dump(report["parameters"], sort_keys=False))
    scored("after", KIMModel(f"{kim_id}@{out}"))
    return report


def _kliff():
    """KLIFF's classes. Importing KLIFF opens a kliff.log in the working directory; it is imported
    from a scratch directory and its log sent to stderr, warnings only."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="kimlabel-refit-") as tmp:
        os.chdir(tmp)
        try:
            from kliff.dataset import Dataset
            from kliff.dataset.weight import Weight
            from kliff.legacy.calculators import Calculator
            from kliff.legacy.loss import Loss
            from kliff.models import KIMModel as KliffModel
            from loguru import logger
            logger.remove()
            logger.add(sys.stderr, level="WARNING")
        except ImportError as err:
            raise ModelInitError(f"kimlabel refit needs KLIFF: run `make install` ({err})") from err
        finally:
            os.chdir(old)
    return Dataset, Weight, Calculator, Loss, KliffModel


def _sign_bound(value: float) -> list:
    """KLIFF's setting of one value: free ("default"), or bounded by 0 on the side of its sign."""
    return ["default", 0.0, np.inf] if value > 0 else ["default", -np.inf, 0.0] if value < 0 else \
        ["default", -np.inf, np.inf]


def _fit_with_kliff(kim_id, train, targets, names, forces_weight, maxiter, keep_signs) -> dict:
    Dataset, Weight, Calculator, Loss, KliffModel = _kliff()
    frames = []
    for c, energy in zip(train, targets):
        at = c.to_atoms()
        at.info["refit_energy"] = float(energy)
        if forces_weight > 0:
            at.arrays["refit_forces"] = np.asarray(c.forces_ref, dtype=float)
        frames.append(at)
    model = KliffModel(kim_id)
    params = model.get_model_params()
    model.set_opt_params(**{name: [_sign_bound(v) if keep_signs else ["default"] for v in np.atleast_1d(params[name])]
                            for name in names})
    weight = Weight(energy_weight=1.0, forces_weight=forces_weight)
    dataset = Dataset.from_ase(ase_atoms_list=frames, weight=weight, energy_key="refit_energy",
                               forces_key="refit_forces" if forces_weight > 0 else "forces")
    calc = Calculator(model)
    calc.create(dataset.get_configs(), use_energy=True, use_forces=forces_weight > 0)
    loss = Loss(calc, nprocs=1, residual_data={"normalize_by_natoms": True})
    try:
        loss.minimize(method="L-BFGS-B", options={"maxiter": maxiter})
    except Exception as err:  # kimpy raises KimPyError when a trial parameter set breaks the model
        raise RuntimeError(f"refit of {kim_id}: the fit reached parameters {', '.join(names)} where the model "
                           f"fails ({str(err).strip() or type(err).__name__}); fit fewer parameters with --params"
                           + ("" if keep_signs else ", or keep their signs with --keep-signs")) from err
    fitted = model.get_model_params()
    return {name: np.asarray(fitted[name], dtype=float).ravel().tolist() for name in names}
