"""mp+la: the pretrained representation fine-tuned with label augmentation."""
from .base import Strategy, register

MP_LA = register(Strategy("mp+la", "multi-task pretraining and label augmentation", pretraining=True,
                          classifier=True))
