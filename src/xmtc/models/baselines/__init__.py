"""Baselines on the same core: XML-CNN, XML-RNN (BiLSTM + max pooling) and Parabel / Bonsai via omikuji.
"""

from xmtc.models.baselines.parabel import BonsaiModel, ParabelModel
from xmtc.models.baselines.xmlcnn import XMLCNN
from xmtc.models.baselines.xmlrnn import XMLRNN

__all__ = ["XMLCNN", "XMLRNN", "BonsaiModel", "ParabelModel"]
