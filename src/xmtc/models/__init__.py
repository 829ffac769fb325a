"""Built-in models; importing this package registers them."""

from xmtc.models.base import TopK, XMTCModel

__all__ = ["TopK", "XMTCModel"]
