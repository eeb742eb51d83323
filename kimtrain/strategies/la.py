"""la: label augmentation (a classifier picks an EIP label for pool configurations; Tukey loss, weight alpha)."""
from .base import Strategy, register

LA = register(Strategy("la", "label augmentation", classifier=True))
