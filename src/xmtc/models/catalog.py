"""The built-in models: importing this module registers every one of them (``xmtc.registry`` does it on first use)."""

from xmtc.models import attentionxml, baselines, ensemble, lightattention, maacf, treaderxml  # noqa: F401
