"""TReaderXML: teacher knowledge from nearest-neighbour texts and parent labels, read with Reading
(MMHSA + residual + MHSA) and Interaction.

``teacher`` (retrieval of the teacher's texts and labels), ``candidates`` (row-wise top-k of sparse scores,
the shortlist), ``network`` (Reading, Interaction, Prediction), ``model`` (config, training, save/load).
"""

from xmtc.models.treaderxml.model import TReaderXML, TReaderXMLConfig

__all__ = ["TReaderXML", "TReaderXMLConfig"]
