"""Glue shared by every strategy: graphs for a model, model construction, references, predictions, metrics."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .config import ModelConfig
from .descriptors import SOAPSettings, soap_features
from .graphs import Graph, build_graphs, collate
from .models import SchNet, SOAPNet
from .reference import fit_species_reference, reference_energy
from .trainer import LabelledSet


def soap_settings(cfg: ModelConfig) -> SOAPSettings:
    return SOAPSettings(r_cut=cfg.soap_r_cut, n_max=cfg.soap_n_max, l_max=cfg.soap_l_max)


def prepare_graphs(atoms_list, cfg: ModelConfig, species: list[str], key: str | None = None) -> list[Graph]:
    """Inputs for the model: neighbour graphs (SchNet) or per-atom SOAP vectors (SOAPNet), cached under key."""
    if cfg.name == "schnet":
        return build_graphs(atoms_list, cfg.cutoff, key)
    if cfg.name == "soapnet":
        feats = soap_features(atoms_list, species, soap_settings(cfg), key)
        empty_i, empty_s = np.zeros(0, dtype=np.int64), np.zeros((0, 3))
        return [Graph(a.get_atomic_numbers().astype(np.int64), a.get_positions(), empty_i, empty_i, empty_s, f)
                for a, f in zip(atoms_list, feats)]
    raise ValueError(f"unknown model {cfg.name!r}: use schnet or soapnet")


def build_model(cfg: ModelConfig, n_out: int = 1, n_features: int | None = None):
    if cfg.name == "schnet":
        return SchNet(cfg.hidden, cfg.n_layers, cfg.n_rbf, cfg.cutoff, n_out, cfg.filter, cfg.filter_grid)
    if cfg.name == "soapnet":
        return SOAPNet(n_features, cfg.hidden, cfg.n_layers, n_out)
    raise ValueError(f"unknown model {cfg.name!r}: use schnet or soapnet")


def n_features(graphs) -> int | None:
    """Per-atom descriptor length (SOAPNet inputs), None for SchNet graphs."""
    return None if graphs[0].features is None else int(graphs[0].features.shape[1])


def model_meta(cfg: ModelConfig, n_out: int, graphs, species) -> dict:
    """What a checkpoint needs to rebuild its model (kimtrain.Calculator reads it)."""
    return {"model_config": dataclasses.asdict(cfg), "n_out": n_out, "n_features": n_features(graphs),
            "species": species}


def model_from_meta(meta: dict):
    return build_model(ModelConfig(**meta["model_config"]), meta["n_out"], meta["n_features"])


def set_reference(model, atoms_list, targets: np.ndarray, species: list[str]):
    """Fit per-species references (eV/atom) per output on training data (NaN targets skipped);
    scale = std of the per-atom residual. Stored in the model's buffers."""
    from ase.data import atomic_numbers
    targets = np.asarray(targets, dtype=float).reshape(len(atoms_list), -1)
    n_atoms = np.array([len(a) for a in atoms_list])
    for k in range(targets.shape[1]):
        mu = fit_species_reference(atoms_list, targets[:, k], species)
        resid = (targets[:, k] - reference_energy(atoms_list, mu)) / n_atoms
        for s, v in mu.items():
            model.species_ref[atomic_numbers[s], k] = v
        model.scale[k] = float(np.nanstd(resid)) if np.isfinite(resid).sum() > 1 else 1.0
        model.scale[k] = max(float(model.scale[k]), 1e-3)
    return model


def new_model(cfg: ModelConfig, n_out: int, graphs, fit_graphs, seed: int = 0):
    """A fresh model with weights drawn from `seed`; SOAPNet standardises its inputs on fit_graphs."""
    torch.manual_seed(seed)
    model = build_model(cfg, n_out, n_features(graphs))
    if isinstance(model, SOAPNet):
        model.fit_standardisation(np.concatenate([g.features for g in fit_graphs]))
    return model


@torch.no_grad()
def predict(model, graphs, batch_size: int = 64, device=None) -> np.ndarray:
    """(n, n_out) predicted total energies (eV)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model(collate(graphs[s:s + batch_size]).to(device)).double().cpu().numpy()
           for s in range(0, len(graphs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.n_out))


def energy_metrics(pred: np.ndarray, target: np.ndarray, n_atoms: np.ndarray) -> dict:
    """Config MAE (eV) and per-atom MAE (eV/atom) of the first output over finite targets."""
    p, t = np.asarray(pred).reshape(len(target), -1)[:, 0], np.asarray(target).reshape(len(target), -1)[:, 0]
    ok = np.isfinite(t)
    err = np.abs(p[ok] - t[ok])
    return {"mae": float(err.mean()), "mae_per_atom": float((err / n_atoms[ok]).mean())}


def energy_validator(val: LabelledSet, batch_size: int):
    def validate(model):
        m = energy_metrics(predict(model, val.graphs, batch_size), val.targets, val.n_atoms)
        return {"val_mae": m["mae"], "val_mae_per_atom": m["mae_per_atom"]}
    return validate
