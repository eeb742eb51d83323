"""Per-species reference energies: E ~ sum_s n_s mu_s fitted by least squares (mu_s in eV/atom),
and their use as a model's per-species offsets."""
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


def species_offset_energy(atoms_list, mu: dict[str, float]) -> np.ndarray:
    """sum_s n_s mu_s for each configuration (eV): the per-species offsets of a composition (not a
    DFT energy, which kimlabel calls the reference energy)."""
    species = list(mu)
    return composition(atoms_list, species) @ np.array([mu[s] for s in species])


def set_reference(model, atoms_list, targets: np.ndarray, species: list[str]):
    """Fit per-species references (eV/atom) per output on training data (NaN targets skipped);
    scale = std of the per-atom residual (eV/atom). Stored in the model's buffers."""
    from ase.data import atomic_numbers
    targets = np.asarray(targets, dtype=float).reshape(len(atoms_list), -1)
    n_atoms = np.array([len(a) for a in atoms_list])
    for k in range(targets.shape[1]):
        mu = fit_species_reference(atoms_list, targets[:, k], species)
        resid = (targets[:, k] - species_offset_energy(atoms_list, mu)) / n_atoms
        for s, v in mu.items():
            model.species_ref[atomic_numbers[s], k] = v
        model.scale[k] = float(np.nanstd(resid)) if np.isfinite(resid).sum() > 1 else 1.0
        model.scale[k] = max(float(model.scale[k]), 1e-3)
    return model
