"""What an explanation is, and where its tokens lie in the original text (used by :mod:`xmtc.explain`).

:class:`Explanation` holds one document with its tokens located in the text and the attention of several labels
(:class:`LabelAttention`). :func:`align_weights` maps a model's per-token weights onto every token of the
original text (:func:`xmtc.text.tokenize` tokens, located by :func:`token_spans`); tokens beyond the model's
``max_len`` get weight 0. All names are also reachable from :mod:`xmtc.explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xmtc.errors import XMTCError

__all__ = ["Explanation", "LabelAttention", "align_weights", "token_spans"]


@dataclass
class LabelAttention:
    """Attention of one label over a document.

    Attributes:
        label: label name.
        weights: float32 (n_tokens,) one weight per token of the document (0 beyond the model's max_len).
        score: the model's score of the label for the document (None when it is not among the top-k).
        description: human-readable label name, when known.
    """

    label: str
    weights: np.ndarray
    score: float | None = None
    description: str | None = None


@dataclass
class Explanation:
    """One document with its tokens located in the text and the attention of several labels.

    Attributes:
        text: the document as shown (the original text, or the tokens joined by spaces when the model's own
            tokens cannot be located in it).
        tokens: the tokens, in order.
        spans: (start, end) character offsets of each token in ``text``.
        n_seen: tokens the model saw (the first ``n_seen``; the rest lie beyond its ``max_len``).
        labels: attention per label, in display order (top-k by score first).
        model: the model name.
    """

    text: str
    tokens: list[str]
    spans: list[tuple[int, int]]
    n_seen: int
    labels: list[LabelAttention] = field(default_factory=list)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (weights rounded to 6 decimals)."""
        return {"model": self.model, "text": self.text, "tokens": self.tokens,
                "spans": [list(s) for s in self.spans], "n_seen": self.n_seen,
                "labels": [{"label": la.label, "score": la.score, "description": la.description,
                            "weights": _round(la.weights)} for la in self.labels]}


def _round(weights: np.ndarray) -> list[float]:
    return [round(float(w), 6) for w in np.asarray(weights, dtype=np.float64)]


# ------------------------------------------------------------------------------------------- alignment
def token_spans(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Character spans of ``tokens`` in ``text``, located in order in the lowercased text.

    Works for any tokenizer whose (lowercased) tokens are substrings of ``text.lower()`` in order (as
    :func:`xmtc.text.tokenize`); offsets refer to the original ``text`` even where lowercasing changes the
    length of a character (``"İ".lower()`` has two characters).

    Args:
        text: the original document.
        tokens: its tokens in order.

    Returns:
        One (start, end) per token, or None when a token cannot be found (a different tokenizer).
    """
    lowered = text.lower()
    # position in ``lowered`` -> position in ``text``; per-character lowering keeps the lengths of the
    # whole-string lowering (only the final sigma is context dependent, and it keeps its length).
    orig_of = [i for i, ch in enumerate(text) for _ in range(len(ch.lower()))]
    if len(orig_of) != len(lowered):
        return None
    orig_of.append(len(text))
    spans, cursor = [], 0
    for tok in tokens:
        low = tok.lower()
        start = lowered.find(low, cursor) if low else -1
        if start < 0:
            return None
        end = start + len(low)
        spans.append((orig_of[start], orig_of[end - 1] + 1))
        cursor = end
    return spans


def align_weights(text: str, model_tokens: Sequence[str],
                  weights: np.ndarray) -> tuple[str, list[str], list[tuple[int, int]], np.ndarray, int]:
    """Map a model's per-token weights onto every token of the original text.

    Args:
        text: the original document.
        model_tokens: the tokens the model attended to (``model.explain``; truncated to its max_len).
        weights: float (len(model_tokens),) attention weights.

    Returns:
        (display text, tokens, spans, weights float32 (len(tokens),), n_seen). When the model's tokens are a
        prefix of :func:`xmtc.text.tokenize` (the shared tokenizer) every text token is shown and those beyond
        the prefix get weight 0; otherwise the model's own tokens are shown, located in the text when possible
        and else joined by spaces.
    """
    from xmtc.text import tokenize

    weights = np.asarray(weights, dtype=np.float32).ravel()
    model_tokens = list(model_tokens)
    if weights.shape[0] != len(model_tokens):
        raise XMTCError(f"explain returned {len(model_tokens)} tokens but {weights.shape[0]} weights")
    n_seen = len(model_tokens)
    full = tokenize(text)
    tokens = full if full[:n_seen] == model_tokens else model_tokens
    spans = token_spans(text, tokens)
    if spans is None:  # a tokenizer whose tokens are not substrings of the text: show the tokens themselves
        text = " ".join(tokens)
        starts = np.cumsum([0] + [len(t) + 1 for t in tokens[:-1]]).tolist() if tokens else []
        spans = [(int(a), int(a) + len(t)) for a, t in zip(starts, tokens, strict=True)]
    out = np.zeros(len(tokens), dtype=np.float32)
    out[:n_seen] = weights
    return text, tokens, spans, out, n_seen
