"""Energy models, each registered by name (kimtrain.models.registry): SchNet, CGCNN and GemNet
(message passing on neighbour graphs), SOAPNet (SOAP descriptors + per-atom MLP). The import order is the
registry's order (CLI choices, default experiment models, tables)."""
from .registry import ModelSpec, get, names, register
from .schnet import SchNet
from .soapnet import SOAPNet
from .cgcnn import CGCNN  # noqa: E402  (registry order)
from .gemnet import GemNet  # noqa: E402

__all__ = ["CGCNN", "GemNet", "ModelSpec", "SchNet", "SOAPNet", "get", "names", "register"]
