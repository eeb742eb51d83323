"""validate(): every property for every target (a trained run or an EIP), written as it finishes.

OUT/<target>.json holds one target's figures (a rerun skips finished targets), OUT/validation.csv
and OUT/validation.md the table of every target validated into OUT so far (one row per target, one column per property, the relative error
against the DFT reference), OUT/phonons_<system>.png the overlaid dispersions and DOS,
OUT/md_runs.csv every MD run."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from kimlabel import write_atomic

from .calculators import EIPCalculator, run_calculator
from .crystal import elastic_constants, equation_of_state
from .md import md_stability
from .phonons import phonons
from .report import slug, write_report
from .systems import system_for
from .vacancy import vacancy_energy


@dataclass
class Target:
    name: str          # row label: the run folder, or "EIP <name>"
    kind: str          # run | eip
    where: str         # run folder, or KIM ID
    species: list

    def calculator(self):
        return run_calculator(self.where) if self.kind == "run" else EIPCalculator(self.where)

    @property
    def group(self) -> str:
        """The row's group over split seeds: the run's path without its seedN part."""
        return re.sub(r"/?seed\d+", "", self.name) if self.kind == "run" else self.name


def run_target(path) -> Target:
    import torch
    path = Path(path)
    if not (path / "best.pt").exists():
        raise FileNotFoundError(f"{path}: no best.pt (validate needs a trained run)")
    state = torch.load(path / "best.pt", weights_only=False, map_location="cpu")
    from ..models.registry import get as get_model
    spec = get_model(state["model_config"]["name"])
    if not spec.forces:
        raise ValueError(f"{path}: model {spec.name} gives no forces; validation relaxes structures and runs MD")
    return Target(str(path), "run", str(path), list(state["species"]))


def eip_targets(names) -> list[Target]:
    """EIPs by set name (si, al) or short names/KIM IDs, comma-separated."""
    from kimlabel import resolve, supported_species
    return [Target(f"EIP {short}", "eip", kim_id, supported_species(kim_id)) for short, kim_id in resolve(names).items()]


def validate_one(target: Target, out: Path, system_name: str | None, quick: bool, log=print) -> dict:
    """Every property of one target; OUT/<slug>.json written after each, so a rerun resumes."""
    system = system_for(target.species, system_name, target.name)
    stem = slug(target.name)
    path = out / f"{stem}.json"
    row = json.loads(path.read_text()) if path.exists() else {}
    if row.get("quick") not in (None, quick):
        row = {}  # a quick row is not a full one
    row.update(target=target.name, group=target.group, kind=target.kind, system=system.name, quick=quick)
    calc = target.calculator()
    steps = [("eos", lambda: equation_of_state(calc, system, quick)),
             ("elastic", lambda: elastic_constants(calc, system, quick)),
             ("phonons", lambda: _phonons(calc, system, quick, out, stem)),
             ("vacancy", lambda: _vacancy(calc, system, _a0(row), quick)),
             ("md", lambda: _md(calc, system, _a0(row), quick, out, stem))]
    for name, step in steps:
        if name in row.get("done", []) and f"{name}_error" not in row:
            continue  # finished; a step that failed is tried again
        t = time.time()
        row.pop(f"{name}_error", None)
        try:
            row.update(step())
        except Exception as exc:  # one property failing (a relaxation that diverges) leaves the others
            row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
        row[f"{name}_seconds"] = round(time.time() - t, 1)
        row["done"] = [*[d for d in row.get("done", []) if d != name], name]
        write_atomic(path, json.dumps(row, indent=1, default=float))
        log(f"{target.name}: {name} in {row[f'{name}_seconds']:.0f} s")
    return row


def _a0(row) -> float:
    if row.get("a0") is None:
        raise ValueError("no lattice constant: the equation of state failed (eos_error)")
    return row["a0"]


def _phonons(calc, system, quick, out, stem):
    import numpy as np
    figures, curves = phonons(calc, system, quick)
    np.savez(out / f"{stem}.phonons.npz", distances=np.concatenate(curves["distances"]),
             frequencies=np.concatenate(curves["frequencies"]), dos_frequencies=curves["dos_frequencies"],
             dos=curves["dos"], breaks=np.cumsum([len(d) for d in curves["distances"]]))
    return figures


def _vacancy(calc, system, a0, quick):
    sizes = system.vacancy_repeat[:1] if quick else system.vacancy_repeat
    found = [vacancy_energy(calc, system, a0, r, fmax=1e-2 if quick else 1e-3, steps=300 if quick else 2000)
             for r in sizes]
    res = {"E_vac": found[-1]["E_vac"], "vacancy_atoms": found[-1]["n_atoms"],
           "vacancy_converged": all(f["converged"] for f in found)}
    if len(found) > 1:  # the size convergence: the smaller cell's value beside it
        res.update(E_vac_small=found[0]["E_vac"], vacancy_atoms_small=found[0]["n_atoms"])
    return res


def _md(calc, system, a0, quick, out, stem):
    summary, runs = md_stability(calc, system, a0, quick)
    write_atomic(out / f"{stem}.md_runs.json", json.dumps(runs, indent=1, default=float))
    return summary


def validate(targets: list[Target], out, system: str | None = None, quick: bool = False, log=print):
    """Validate every target into OUT; returns the table (pandas DataFrame)."""
    if not targets:
        raise ValueError("nothing to validate: give run folders and/or --eips")
    for target in targets:  # before any work: every target has its system
        system_for(target.species, system, target.name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, target in enumerate(targets, 1):
        log(f"[{k}/{len(targets)}] {target.name}")
        validate_one(target, out, system, quick, log)
    return write_report(kept_rows(out), out)


def kept_rows(out: Path) -> list[dict]:
    """Every target validated into OUT so far (this command's and earlier ones'): runs first, then
    EIPs, each by name, so one folder gathers one table."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json")) if not p.name.endswith(".md_runs.json")]
    return sorted((r for r in rows if "target" in r), key=lambda r: (r["kind"] == "eip", r["target"]))
