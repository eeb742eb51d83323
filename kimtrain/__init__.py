"""kimtrain: SchNet / SOAPNet energy models trained on DFT, with knowledge injected from OpenKIM EIPs."""
__version__ = "0.1.0"


def __getattr__(name):  # the Calculator imports ase and torch: load it on first use
    if name == "Calculator":
        from .calculator import Calculator
        return Calculator
    raise AttributeError(name)


__all__ = ["Calculator", "__version__"]
