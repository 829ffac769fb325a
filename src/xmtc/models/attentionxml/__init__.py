"""AttentionXML (You et al., NeurIPS 2019): BiLSTM + multi-label attention, trained level by level on a
shallow-wide probabilistic label tree and searched with a beam.

``network`` (the attention network), ``levels`` (the tree levels, training candidates), ``model`` (config,
training, beam search, save/load).
"""

from xmtc.models.attentionxml.model import AttentionXML, AttentionXMLConfig

__all__ = ["AttentionXML", "AttentionXMLConfig"]
