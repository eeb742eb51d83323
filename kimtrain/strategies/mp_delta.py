"""mp+delta: multi-task pretraining on the EIP heads (the shared pretraining of mp), then
fine-tuning on DFT minus the EIP chosen on validation, which predictions add back, as delta does."""
from .base import register
from .delta import Delta
from .mp import PRETRAINING

MP_DELTA = register(Delta("mp+delta", "multi-task pretraining, then Δ-learning on an EIP chosen on validation",
                          steps=(PRETRAINING,), uses_table=True))
