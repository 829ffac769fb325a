"""Metrics of predicted label *sets* (not rankings): micro/macro/example F1, precision, recall, F1 by label
frequency group, and the expected calibration error of scores.

A set prediction is a binary (n, L) matrix ``P`` (scipy sparse, dense, or a list of label-id arrays, one per
document) compared with the gold CSR ``Y`` (n, L). Per document ``i`` and label ``l``: ``tp`` = predicted and
gold, ``pred`` = predicted, ``gold`` = gold. Gold labels unknown to the model (``Dataset.unseen``) are misses:
pass ``n_gold`` (gold count per document including them) and, for macro-F1, ``n_unseen_labels``.

Zero-division convention (the same as scikit-learn's ``zero_division`` argument): a ratio whose denominator
is 0 (a document, or a label, with neither gold nor predicted labels; no prediction at all for precision) is
``zero_division`` (default 0.0). Macro-F1 averages by default over the labels *present* (gold or predicted in
the evaluated documents), where F1 is always defined; ``labels="all"`` averages over all ``L`` columns like
``sklearn.metrics.f1_score(average="macro")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError
from xmtc.metric_utils import gold_csr

__all__ = [
    "as_set_matrix", "calibration_bins", "candidate_hits", "example_f1", "expected_calibration_error",
    "f1_by_frequency", "macro_f1", "micro_f1", "precision", "recall", "set_report", "topk_calibration",
]


# ----------------------------------------------------------------------------------------------- inputs
def as_set_matrix(P: Any, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR (n, L) of predicted sets: from a sparse/dense matrix or a list of label-id arrays."""
    n, n_labels = shape
    if isinstance(P, (list, tuple)):
        if len(P) != n:
            raise DataError(f"predicted sets have {len(P)} rows but Y_true has {n} documents")
        rows = [np.asarray(p, dtype=np.int64).ravel() for p in P]
        lens = np.asarray([len(r) for r in rows], dtype=np.int64)
        cols = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= n_labels):
            raise DataError(f"predicted label ids must be in 0..{n_labels - 1}")
        indptr = np.concatenate([[0], np.cumsum(lens)])
        P = sp.csr_matrix((np.ones(cols.size), cols, indptr), shape=shape)
    P = gold_csr(P)
    if P.shape != shape:
        raise DataError(f"predicted sets have shape {P.shape} but Y_true has {shape}")
    return P


def _counts(Y_true: Any, P: Any) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    Y = gold_csr(Y_true)
    P = as_set_matrix(P, Y.shape)
    return Y, P, Y.multiply(P).tocsr()


def _n_gold(n_gold: Any, Y: sp.csr_matrix) -> np.ndarray:
    g = np.diff(Y.indptr).astype(np.float64)
    if n_gold is None:
        return g
    n_gold = np.asarray(n_gold, dtype=np.float64)
    if n_gold.shape != g.shape or np.any(n_gold < g):
        raise DataError(f"n_gold must have shape {g.shape} and be >= the gold labels in Y_true")
    return n_gold


def _div(num: np.ndarray | float, den: np.ndarray | float, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den > 0)
    return out


def candidate_hits(Y_true: Any, indices: np.ndarray) -> np.ndarray:
    """Bool (n, k): whether candidate ``indices[i, j]`` (label ids, -1 pads) is a gold label of document i."""
    Y = gold_csr(Y_true)
    idx = np.asarray(indices, dtype=np.int64)
    n, L = Y.shape
    if idx.ndim != 2 or idx.shape[0] != n:
        raise DataError(f"candidates must be (n_docs={n}, k), got shape {idx.shape}")
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(Y.indptr))
    gold_keys = rows * L + Y.indices  # sorted: rows ascending, sorted indices within a row
    keys = np.arange(n, dtype=np.int64)[:, None] * L + np.maximum(idx, 0)
    pos = np.minimum(np.searchsorted(gold_keys, keys), max(gold_keys.size - 1, 0))
    found = gold_keys[pos] == keys if gold_keys.size else np.zeros(idx.shape, dtype=bool)
    return found & (idx >= 0)


# ----------------------------------------------------------------------------------------------- set metrics
def precision(Y_true: Any, P: Any, zero_division: float = 0.0) -> float:
    """Micro precision ``sum tp / sum pred`` over all documents and labels."""
    _, P, TP = _counts(Y_true, P)
    return float(_div(TP.nnz, P.nnz, zero_division))


def recall(Y_true: Any, P: Any, n_gold: Any = None, zero_division: float = 0.0) -> float:
    """Micro recall ``sum tp / sum gold`` (``gold`` from ``n_gold`` when given: unseen labels are misses)."""
    Y, _, TP = _counts(Y_true, P)
    return float(_div(TP.nnz, _n_gold(n_gold, Y).sum(), zero_division))


def micro_f1(Y_true: Any, P: Any, n_gold: Any = None, zero_division: float = 0.0) -> float:
    """Micro-F1 ``2 sum tp / (sum pred + sum gold)`` (= ``2 TP / (2 TP + FP + FN)``) over all pairs.

    Equals ``sklearn.metrics.f1_score(Y, P, average="micro")`` when ``n_gold`` is None.
    """
    Y, P, TP = _counts(Y_true, P)
    return float(_div(2.0 * TP.nnz, P.nnz + _n_gold(n_gold, Y).sum(), zero_division))


def _label_f1(Y: sp.csr_matrix, P: sp.csr_matrix, TP: sp.csr_matrix, zero_division: float):
    L = Y.shape[1]
    tp = np.bincount(TP.indices, minlength=L).astype(np.float64)
    pred = np.bincount(P.indices, minlength=L).astype(np.float64)
    gold = np.bincount(Y.indices, minlength=L).astype(np.float64)
    return _div(2.0 * tp, pred + gold, zero_division), (pred + gold) > 0


def macro_f1(Y_true: Any, P: Any, labels: str | Sequence[int] = "present", n_unseen_labels: int = 0,
             zero_division: float = 0.0) -> float:
    """Macro-F1: the mean over labels ``l`` of ``F1_l = 2 tp_l / (pred_l + gold_l)``.

    Args:
        Y_true: CSR (n, L) gold labels.
        P: predicted sets (see :func:`as_set_matrix`).
        labels: ``"present"`` (default): the labels gold or predicted in these documents (F1 always defined);
            ``"all"``: every column, a label with neither counts ``zero_division`` (as scikit-learn's
            ``average="macro"``); or explicit label ids (as scikit-learn's ``labels=``).
        n_unseen_labels: distinct gold labels unknown to the model, each counted as one more label with F1 0.
        zero_division: F1 of a label with neither gold nor predicted documents.
    """
    Y, P, TP = _counts(Y_true, P)
    f1, present = _label_f1(Y, P, TP, zero_division)
    if isinstance(labels, str):
        if labels not in ("present", "all"):
            raise XMTCError(f"labels must be 'present', 'all' or label ids, but is {labels!r}")
        chosen = f1[present] if labels == "present" else f1
    else:
        chosen = f1[np.asarray(labels, dtype=np.int64)]
    n = chosen.size + int(n_unseen_labels)
    return float(chosen.sum() / n) if n else float(zero_division)


def example_f1(Y_true: Any, P: Any, n_gold: Any = None, zero_division: float = 0.0) -> float:
    """Example-based F1: the mean over documents ``i`` of ``2 tp_i / (pred_i + gold_i)``.

    A document with neither gold nor predicted labels scores ``zero_division``. Equals
    ``sklearn.metrics.f1_score(Y, P, average="samples", zero_division=zero_division)`` when ``n_gold`` is None.
    """
    Y, P, TP = _counts(Y_true, P)
    if Y.shape[0] == 0:
        return float(zero_division)
    per_doc = _div(2.0 * np.diff(TP.indptr), np.diff(P.indptr) + _n_gold(n_gold, Y), zero_division)
    return float(per_doc.mean())


def f1_by_frequency(Y_true: Any, P: Any, train_counts: Any, frequent_above: int = 50,
                    unseen: Any = None, n_unseen_labels: int = 0) -> dict[str, dict[str, float]]:
    """Micro- and macro-F1 restricted to the labels of each training-frequency group.

    Groups (EURLEX57K convention): ``frequent`` (more than ``frequent_above`` training documents), ``few``
    (1..``frequent_above``), ``zero`` (no training document: labels of the index absent from training, plus
    the gold labels unknown to the model, given as ``unseen`` per-document counts and ``n_unseen_labels``;
    they are never predicted, so they count as misses). Macro-F1 averages over the group's present labels.

    Returns:
        {group: {"n_labels": present labels, "micro-F1": ..., "macro-F1": ...}} (NaN where a group is empty).
    """
    Y, P, TP = _counts(Y_true, P)
    L = Y.shape[1]
    counts = np.asarray(train_counts).ravel()
    if counts.shape != (L,):
        raise DataError(f"train_counts must have one entry per label ({L}), got shape {counts.shape}")
    tp = np.bincount(TP.indices, minlength=L).astype(np.float64)
    pred = np.bincount(P.indices, minlength=L).astype(np.float64)
    gold = np.bincount(Y.indices, minlength=L).astype(np.float64)
    f1, present = _label_f1(Y, P, TP, 0.0)
    extra_gold = float(np.asarray(unseen).sum()) if unseen is not None else 0.0
    out = {}
    for name, mask in (("frequent", counts > frequent_above), ("few", (counts > 0) & (counts <= frequent_above)),
                       ("zero", counts <= 0)):
        g_gold = gold[mask].sum() + (extra_gold if name == "zero" else 0.0)
        n_present = int((present & mask).sum()) + (int(n_unseen_labels) if name == "zero" else 0)
        den = pred[mask].sum() + g_gold
        out[name] = {"n_labels": n_present,
                     "micro-F1": float(2.0 * tp[mask].sum() / den) if den > 0 else float("nan"),
                     "macro-F1": float(f1[present & mask].sum() / n_present) if n_present else float("nan")}
    return out


def set_report(Y_true: Any, P: Any, n_gold: Any = None, n_unseen_labels: int = 0) -> dict[str, float]:
    """{"micro-F1", "macro-F1", "example-F1", "precision", "recall", "mean_set_size", "empty_sets"}."""
    Y = gold_csr(Y_true)
    P = as_set_matrix(P, Y.shape)
    sizes = np.diff(P.indptr)
    return {"micro-F1": micro_f1(Y, P, n_gold), "macro-F1": macro_f1(Y, P, n_unseen_labels=n_unseen_labels),
            "example-F1": example_f1(Y, P, n_gold), "precision": precision(Y, P), "recall": recall(Y, P, n_gold),
            "mean_set_size": float(sizes.mean()) if sizes.size else 0.0,
            "empty_sets": int((sizes == 0).sum())}


# ----------------------------------------------------------------------------------------------- calibration
def calibration_bins(scores: Any, correct: Any, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability diagram data: equal-width bins of ``[0, 1]``, per bin the count, mean score, hit rate.

    Scores are clipped to ``[0, 1]``; a score of exactly 1 falls in the last bin.
    """
    if n_bins < 1:
        raise XMTCError(f"n_bins must be positive, but is {n_bins}")
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    c = np.asarray(correct, dtype=np.float64).ravel()
    if s.shape != c.shape:
        raise DataError(f"scores {s.shape} and correct {c.shape} must have the same size")
    b = np.minimum((s * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(b, minlength=n_bins).astype(np.float64)
    conf = np.bincount(b, weights=s, minlength=n_bins)
    acc = np.bincount(b, weights=c, minlength=n_bins)
    return [{"lo": i / n_bins, "hi": (i + 1) / n_bins, "count": int(n[i]),
             "mean_score": float(conf[i] / n[i]) if n[i] else float("nan"),
             "hit_rate": float(acc[i] / n[i]) if n[i] else float("nan")} for i in range(n_bins)]


def expected_calibration_error(scores: Any, correct: Any, n_bins: int = 10) -> float:
    """ECE ``= sum_b (n_b / N) |hit_rate_b - mean_score_b|`` over equal-width score bins of ``[0, 1]``.

    ``scores`` are the model's scores of predicted (document, label) pairs read as probabilities, ``correct``
    whether each pair is gold (bool or 0/1). 0 means perfectly calibrated; NaN when there is no pair.
    """
    bins = calibration_bins(scores, correct, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["count"] * abs(b["hit_rate"] - b["mean_score"]) for b in bins if b["count"]) / total)


def topk_calibration(Y_true: Any, top: Any, n_bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """(ECE, reliability bins) of the scores of all top-k candidates of a TopK against the gold labels."""
    idx = np.asarray(top.indices, dtype=np.int64)
    keep = idx >= 0
    correct = candidate_hits(Y_true, idx)[keep]
    scores = np.asarray(top.scores, dtype=np.float64)[keep]
    return expected_calibration_error(scores, correct, n_bins), calibration_bins(scores, correct, n_bins)
