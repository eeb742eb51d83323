"""Reference values for validation (references.yaml, shipped with kimtrain): DFT of the shared
data's functional (PBE) and experiment, each value with its source."""
from __future__ import annotations

from pathlib import Path

import yaml

PATH = Path(__file__).with_name("references.yaml")
PROPERTIES = {  # column -> (what, unit)
    "a0": ("lattice constant", "Å"), "B": ("bulk modulus", "GPa"), "C11": ("C11", "GPa"),
    "C12": ("C12", "GPa"), "C44": ("C44, relaxed-ion", "GPa"), "nu_gamma_max": ("highest Γ frequency", "THz"),
    "nu_max": ("highest frequency on Γ-X-U|K-Γ-L", "THz"),
    "E_vac": ("vacancy formation energy, relaxed", "eV"),
}


def references(system: str) -> dict:
    """{"dft": {property: {value, source}}, "experiment": {...}} for a system (si, al)."""
    data = yaml.safe_load(PATH.read_text())
    if system not in data:
        raise ValueError(f"{PATH}: no references for system {system!r}")
    return data[system]


def value(system: str, kind: str, prop: str):
    entry = references(system).get(kind, {}).get(prop)
    return None if entry is None else entry["value"]
