"""Potential sets: potentials.yaml (system -> {short name: KIM ID}) and the specs that name them."""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

KIM_ID = re.compile(r"^.+__(MO|SM)_\d{12}_\d{3}$")


def potentials_file() -> Path:
    """The potential-sets file in use: $KIMLABEL_POTENTIALS, else potentials.yaml at the project root."""
    env = os.environ.get("KIMLABEL_POTENTIALS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "potentials.yaml"


def load_potential_sets(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Read potentials.yaml into {system: {name: kim_id}}, checking that every entry is a KIM ID.

    An entry may also be {model: KIM ID, parameters: params.yaml} (a path relative to the file):
    the model with parameter overrides, kept as 'KIM_ID@/abs/params.yaml'."""
    path = Path(path) if path else potentials_file()
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    for system, models in data.items():
        if not isinstance(models, dict):
            raise ValueError(f"{path}: system {system!r} must map short names to KIM IDs")
        for name, entry in models.items():
            kim_id, params = (entry.get("model"), entry.get("parameters")) if isinstance(entry, dict) else (entry, None)
            if not KIM_ID.match(str(kim_id)):
                raise ValueError(f"{path}: {system}.{name}: {kim_id!r} is not a KIM ID")
            if isinstance(entry, dict):
                models[name] = with_overrides(kim_id, (path.parent / str(params)) if params else None,
                                              f"{path}: {system}.{name}")
    return data


def with_overrides(kim_id: str, params, where: str) -> str:
    """'KIM_ID@/abs/params.yaml' (or kim_id when params is None); the file must exist."""
    if params is None:
        return kim_id
    params = Path(params)
    if not params.is_file():
        raise FileNotFoundError(f"{where}: parameter file {params} does not exist")
    return f"{kim_id}@{params.resolve()}"


def short_name(kim_id: str) -> str:
    """A column-safe name for a bare KIM ID: the part before '__MO_...'."""
    return kim_id.split("__")[0]


def resolve(spec, sets: dict | None = None) -> dict[str, str]:
    """Turn a potential-set spec into an ordered {name: kim_id}.

    spec is a system name ('si'), a comma list of systems, short names and/or KIM IDs, a list of those,
    or already a mapping. Unknown entries raise ValueError naming them.
    """
    if isinstance(spec, dict):
        return dict(spec)
    sets = load_potential_sets() if sets is None else sets
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    by_name = {n: k for models in sets.values() for n, k in models.items()}
    by_id = {k: n for n, k in by_name.items()}
    out: dict[str, str] = {}
    for item in filter(None, items):
        if "@" in item:  # NAME@params.yaml: a model with parameter overrides, named NAME_<file stem>
            base, params = item.split("@", 1)
            one = resolve(base, sets)
            if len(one) != 1:
                raise ValueError(f"{item!r}: parameter overrides apply to one model, not the set {base!r}")
            (name, kim_id), = one.items()
            out[f"{name}_{Path(params).stem}"] = with_overrides(kim_id, params, f"potential {item!r}")
        elif item in sets:
            out.update(sets[item])
        elif item in by_name:
            out[item] = by_name[item]
        elif KIM_ID.match(item):
            out[by_id.get(item, short_name(item))] = item
        else:
            known = ", ".join(sorted(sets))
            raise ValueError(f"unknown potential {item!r}: give a system ({known}), a short name "
                             "from potentials.yaml, or a full KIM ID")
    if not out:
        raise ValueError("empty potential set")
    return out
