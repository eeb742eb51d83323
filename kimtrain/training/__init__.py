"""The training layer: the training context (data, split, model inputs), the trainer, losses,
forces, inference, metrics and distributed data parallel. It imports data and models, never a
strategy."""
