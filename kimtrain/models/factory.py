"""Models from configurations and checkpoints, and the inputs each model reads, via the registry."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import ModelConfig
from ..data.descriptors import SOAPSettings, soap_features
from ..data.graphs import Graph, build_graphs
from .registry import get


def soap_settings(cfg: ModelConfig) -> SOAPSettings:
    return SOAPSettings(r_cut=cfg.soap_r_cut, n_max=cfg.soap_n_max, l_max=cfg.soap_l_max)


def prepare_graphs(atoms_list, cfg: ModelConfig, species: list[str], key: str | None = None) -> list[Graph]:
    """The model's inputs: neighbour graphs within cfg.cutoff (Å), or per-atom SOAP vectors; cached under key."""
    if get(cfg.name).inputs == "graph":
        return build_graphs(atoms_list, cfg.cutoff, key)
    feats = soap_features(atoms_list, species, soap_settings(cfg), key)
    empty_i, empty_s = np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    return [Graph(a.get_atomic_numbers().astype(np.int64), a.get_positions(), empty_i, empty_i, empty_s, f)
            for a, f in zip(atoms_list, feats)]


def n_features(graphs) -> int | None:
    """Per-atom descriptor length (SOAP inputs), None for neighbour graphs."""
    return None if graphs[0].features is None else int(graphs[0].features.shape[1])


def build_model(cfg: ModelConfig, n_out: int = 1, n_features: int | None = None):
    return get(cfg.name).build(cfg, n_out, n_features)


def new_model(cfg: ModelConfig, n_out: int, graphs, fit_graphs, seed: int = 0):
    """A fresh model with weights drawn from `seed`, its input standardisation (if any) fitted on fit_graphs."""
    torch.manual_seed(seed)
    model = build_model(cfg, n_out, n_features(graphs))
    model.fit_inputs(fit_graphs)
    return model


def model_meta(cfg: ModelConfig, n_out: int, graphs, species) -> dict:
    """What a checkpoint needs to rebuild its model (kimtrain.Calculator reads it)."""
    return {"model_config": dataclasses.asdict(cfg), "n_out": n_out, "n_features": n_features(graphs),
            "species": species}


def model_from_meta(meta: dict):
    """The model a checkpoint's meta describes (with its fidelity embedding, if it had one)."""
    model = build_model(ModelConfig(**meta["model_config"]), meta["n_out"], meta["n_features"])
    return model.embed_fidelities() if meta.get("fidelity_embedding") else model
