"""TReaderXML: teacher knowledge from nearest-neighbour texts and parent labels, read with Reading
(MMHSA + residual + MHSA) and Interaction.

``teacher`` (retrieval of the teacher's texts and labels), ``candidates`` (row-wise top-k of sparse scores,
the shortlist), ``network`` (Reading, Interaction, Prediction), ``config`` (settings, Table 3 ablations),
``model`` (training, save/load).
"""

from xmtc.models.treaderxml.config import TReaderXMLConfig
from xmtc.models.treaderxml.model import TReaderXML

__all__ = ["TReaderXML", "TReaderXMLConfig"]
