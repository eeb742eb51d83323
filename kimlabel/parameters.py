"""Parameter overrides for KIM portable models: a YAML of KIM parameter names and values, applied
through kimpy's parameter interface before computing (no model is written to disk).

An overridden potential is written `KIM_ID@/path/params.yaml` wherever kimlabel passes a model
around (workers, manifests, table metadata), so every process applies the same file.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ModelInitError
from .kimlog import KIMLog


def split_overrides(kim_id: str) -> tuple[str, str | None]:
    """(KIM ID, parameter file or None) of 'KIM_ID@file.yaml' or a bare KIM ID."""
    base, _, path = kim_id.partition("@")
    return base, (path or None)


def load_overrides(path) -> dict:
    """{parameter name: list of values} from a YAML mapping; scalars become one-element lists."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ModelInitError(f"parameter file {path}: {err.strerror}") from err
    if not isinstance(raw, dict) or not raw:
        raise ModelInitError(f"parameter file {path}: expected a mapping of KIM parameter names to values")
    return {str(k): (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in raw.items()}


def parameter_index(model) -> dict:
    """{name: (index, dtype name, extent)} of a kimpy model's parameters."""
    index = {}
    for i in range(model.get_number_of_parameters()):
        dtype, extent, name, _ = model.get_parameter_metadata(i)
        index[name] = (i, str(dtype), extent)
    return index


def apply_overrides(model, kim_id: str, path):
    """Set the parameters of a kimpy model from `path`, then refresh it once. A name the model
    lacks or a value count other than the parameter's extent is an error naming it."""
    overrides = load_overrides(path)
    known = parameter_index(model)
    log = KIMLog()
    for name, values in overrides.items():
        if name not in known:
            raise ModelInitError(f"parameter file {path}: {kim_id} has no parameter {name!r} "
                                 f"(it has {', '.join(known)})")
        i, dtype, extent = known[name]
        if len(values) != extent:
            raise ModelInitError(f"parameter file {path}: {kim_id} parameter {name!r} takes {extent} value(s), "
                                 f"got {len(values)}")
        cast = int if dtype.endswith("Integer") else float
        for j, value in enumerate(values):
            model.set_parameter(i, j, cast(value))
    refused = model.clear_then_refresh()  # kimpy returns None even when the model refuses: its log says
    why = log.last_error()
    if refused or why:
        raise ModelInitError(f"parameter file {path}: {kim_id} rejected the new parameters"
                             + (f" ({why})" if why else ""))
