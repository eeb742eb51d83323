"""Per-species reference energies: E ~ sum_s n_s mu_s fitted by least squares (eV/atom per species)."""
from __future__ import annotations

import numpy as np


def composition(atoms_list, species: list[str]) -> np.ndarray:
    """(n_configs, n_species) atom counts."""
    index = {s: k for k, s in enumerate(species)}
    counts = np.zeros((len(atoms_list), len(species)))
    for row, at in enumerate(atoms_list):
        for s in at.get_chemical_symbols():
            counts[row, index[s]] += 1
    return counts


def fit_species_reference(atoms_list, energies, species: list[str]) -> dict[str, float]:
    """mu_s minimising sum (E - sum_s n_s mu_s)^2 over configurations with finite energy."""
    energies = np.asarray(energies, dtype=float)
    ok = np.isfinite(energies)
    if not ok.any():
        raise ValueError("no finite energies to fit per-species references on")
    counts = composition([a for a, k in zip(atoms_list, ok) if k], species)
    mu, *_ = np.linalg.lstsq(counts, energies[ok], rcond=None)
    return dict(zip(species, mu))


def reference_energy(atoms_list, mu: dict[str, float]) -> np.ndarray:
    """sum_s n_s mu_s for each configuration (eV)."""
    species = list(mu)
    return composition(atoms_list, species) @ np.array([mu[s] for s in species])
