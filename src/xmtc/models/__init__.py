"""Models: the shared core and one package per system.

Core: :mod:`~xmtc.models.base` (the ``XMTCModel`` contract, ``TopK``, the model table), :mod:`~xmtc.models.deep`
(``DeepTextModel``: vocabulary, word vectors, batches, the training loop), :mod:`~xmtc.models.layers` (shared
layers) and :mod:`~xmtc.models.ensemble`. Systems: ``attentionxml/``, ``lightattention/``, ``treaderxml/``,
``maacf/`` and ``baselines/`` (XML-CNN, XML-RNN, Parabel/Bonsai). :mod:`~xmtc.models.catalog` imports them all.

This package imports only the light core; the model classes below load on first access.
"""

from __future__ import annotations

import importlib

from xmtc.models.base import MODELS, TopK, XMTCModel, register

_LAZY = {
    "AttentionXML": "xmtc.models.attentionxml", "AttentionXMLConfig": "xmtc.models.attentionxml",
    "LightAttention": "xmtc.models.lightattention", "LightAttentionConfig": "xmtc.models.lightattention",
    "TReaderXML": "xmtc.models.treaderxml", "TReaderXMLConfig": "xmtc.models.treaderxml",
    "MAACF": "xmtc.models.maacf", "MAACFConfig": "xmtc.models.maacf",
    "XMLCNN": "xmtc.models.baselines", "XMLRNN": "xmtc.models.baselines",
    "ParabelModel": "xmtc.models.baselines", "BonsaiModel": "xmtc.models.baselines",
    "EnsembleModel": "xmtc.models.ensemble",
}

__all__ = ["MODELS", "TopK", "XMTCModel", "register", *sorted(_LAZY)]


def __getattr__(name: str):
    """Load a model class on first access (``xmtc.models.AttentionXMLConfig``) without importing torch up front."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xmtc.models' has no attribute {name!r}")
