"""mp+la: the pretrained representation fine-tuned with label augmentation (both shared steps)."""
from .base import register
from .la import CLASSIFIER, LA
from .mp import PRETRAINING

MP_LA = register(LA("mp+la", "multi-task pretraining and label augmentation", steps=(PRETRAINING, CLASSIFIER)))
