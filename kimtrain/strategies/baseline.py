"""baseline: the model trained on DFT alone."""
from .base import Strategy, register

BASELINE = register(Strategy("baseline", "DFT labels only"))
