"""Built-in models; importing this package registers them."""

from xmtc.models import ensemble, sparse  # noqa: F401  (registers ensemble, parabel, bonsai)
from xmtc.models.attentionxml import AttentionXML, AttentionXMLConfig  # noqa: F401  (registers attentionxml)
from xmtc.models.base import TopK, XMTCModel
from xmtc.models.lightattention import LightAttention, LightAttentionConfig  # noqa: F401  (registers it)
from xmtc.models.maacf import MAACF, MAACFConfig  # noqa: F401  (registers maacf)
from xmtc.models.treaderxml import TReaderXML, TReaderXMLConfig  # noqa: F401  (registers treaderxml)
from xmtc.models.xmlcnn import XMLCNN, XMLRNN  # noqa: F401  (registers xmlcnn, xmlrnn)

__all__ = ["TopK", "XMTCModel"]
