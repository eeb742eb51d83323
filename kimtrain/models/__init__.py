"""Energy models: SchNet (message passing) and SOAPNet (SOAP descriptors + per-atom MLP)."""
from .schnet import SchNet
from .soapnet import SOAPNet

__all__ = ["SchNet", "SOAPNet"]
