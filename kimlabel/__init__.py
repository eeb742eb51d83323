"""kimlabel: evaluate many OpenKIM empirical interatomic potentials on atomic configurations."""
__version__ = "0.1.0"

from .runner import label  # noqa: E402

__all__ = ["label", "__version__"]
