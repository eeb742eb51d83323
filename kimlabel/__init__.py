"""kimlabel: evaluate many OpenKIM empirical interatomic potentials on atomic configurations.

The public API is what this module exports (`__all__`); other modules are internal. kimtrain, and
any other project, uses kimlabel through these names only:

- labelling: `label` (in memory), `LabelJob` (files to a table: shards, resume, Dask), `EIP` (one
  model in this process), `supported_species` (of a KIM model), `resolve` (potential sets of
  potentials.yaml), `iter_configs`, `file_sha256`;
- tables: `read_table`, `read_metadata`, `forces_path`, `energy_col`, `status_col`, `error_col`,
  `force_cols`, `eip_names`, `STATUSES`, `ENERGY_LIMIT`;
- the helpers kimlabel keeps its own promises with, shared with kimtrain: `write_atomic` and
  `replacing` (files whole or absent), `connect`, `check_scheduler` and `local_workers` (Dask
  clusters), `run_command` (a command's errors as one line naming the culprit).
"""
__version__ = "0.1.0"

_EXPORTS = {
    "label": "runner", "LabelJob": "job", "EIP": "eip", "supported_species": "evaluator", "resolve": "potentials",
    "iter_configs": "inputs", "file_sha256": "inputs",
    "read_table": "schema", "read_metadata": "schema", "forces_path": "schema", "energy_col": "schema",
    "status_col": "schema", "error_col": "schema", "force_cols": "schema", "eip_names": "schema",
    "STATUSES": "schema", "ENERGY_LIMIT": "schema",
    "write_atomic": "files", "replacing": "files",
    "connect": "cluster", "check_scheduler": "cluster", "local_workers": "cluster",
    "run_command": "cli",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    """Exports load their module on first use, so `from kimlabel import ENERGY_LIMIT` stays light."""
    if name in _EXPORTS:
        import importlib
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kimlabel' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
