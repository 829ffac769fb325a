"""MAACF+: CF-IDF label groups, multi-aspect text encoders, co-attention label/text models, an NCF predictor
and a BPR-style pairwise loss.

``config`` (settings), ``label_groups`` (CF-IDF groups, negative sampling), ``aspects`` (the text encoders),
``transformer`` (the MiniLM aspect), ``network`` (co-attention + predictor), ``pairs`` (pair batches, BPR loss),
``ranking`` (top-k over the shortlist, score fusion, exact label scores), ``model`` (shortlists, training,
save/load).
"""

from xmtc.models.maacf.model import MAACF, MAACFConfig

__all__ = ["MAACF", "MAACFConfig"]
