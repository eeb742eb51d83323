"""Strategies by name: baseline, la, mp, mp+la (paper), delta, mp+delta, mf, auto; each one module; `register` adds your own."""
from .base import Strategy, get, names, register
from . import baseline, la, mp, mp_la, delta, mp_delta, mf, auto  # noqa: F401  (each registers itself)

__all__ = ["Strategy", "get", "names", "register"]
