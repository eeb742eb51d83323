"""The model registry: a model name -> how to build it and what it reads. The CLI's --model
choices, `kimtrain experiment`'s model list, checkpoint loading and the Calculator read it, and
nothing else names models. Adding a model is one module that calls register() and one import in
kimtrain/models/__init__.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..plugins import Registry

REGISTRY = Registry("model")  # name -> ModelSpec


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    build: Callable          # (ModelConfig, n_out, n_features) -> AtomisticModel
    inputs: str = "graph"    # "graph": half neighbour lists within model.cutoff; "soap": per-atom SOAP vectors
    forces: bool = True      # the energy is differentiable in the positions (forces by autograd)
    fidelity_embedding: bool = False  # has embed_fidelities() (mf with strategy.mf_embedding)


def register(spec: ModelSpec) -> ModelSpec:
    if spec.inputs not in ("graph", "soap"):
        raise ValueError(f"model {spec.name}: inputs must be 'graph' or 'soap', got {spec.inputs!r}")
    return REGISTRY.register(spec)


def get(name: str) -> ModelSpec:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()


def having(flag: str) -> list[str]:
    """The registered models whose spec sets `flag` ("forces", "fidelity_embedding"), for errors
    that name the models that would do."""
    return [n for n in names() if getattr(get(n), flag)]
