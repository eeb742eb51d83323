"""mp: multi-task pretraining (one head per EIP on the pool), then fine-tuning on DFT."""
from .base import Strategy, register

MP = register(Strategy("mp", "multi-task pretraining", pretraining=True))
