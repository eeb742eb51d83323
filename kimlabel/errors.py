"""Errors of model creation and evaluation, shared by kimlabel's model modules."""


class ModelInitError(RuntimeError):
    """A KIM model could not be created or needs something kimlabel cannot provide."""


class UnsupportedSpecies(ValueError):
    """A configuration holds species the model does not support."""
