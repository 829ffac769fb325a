"""Kernels of the ranking metrics of :mod:`xmtc.metrics`: checked inputs and (numerator, denominator) sums.

Every per-document metric is a ratio of two sums over documents, so one batch gives its sums and batches add
up (:class:`xmtc.metric_report.MetricAccumulator`). The conventions (empty documents, unseen labels, padding,
normalisation of the propensity-scored metrics) are those stated in :mod:`xmtc.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError
from xmtc.metric_utils import check_k, gold_csr


# ----------------------------------------------------------------------------------------------- inputs
# (check_k and gold_csr, shared with xmtc.label_metrics, live in xmtc.metric_utils)
def _indices(top: Any, Y: sp.csr_matrix) -> np.ndarray:
    """Label ids int64 (n, k) of ``top`` (TopK or int array), checked against ``Y``."""
    n, n_labels = Y.shape
    if hasattr(top, "indices") and hasattr(top, "scores"):
        if getattr(top, "n_labels", n_labels) != n_labels:
            raise DataError(f"predictions are over {top.n_labels} labels but Y_true has {n_labels}")
        top = top.indices
    idx = np.asarray(top)
    if idx.ndim != 2 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise DataError(f"predictions must be a TopK or an int array (n_docs, k), got {idx.dtype} "
                        f"{idx.shape}")
    if idx.shape[0] != n:
        raise DataError(f"predictions have {idx.shape[0]} rows but Y_true has {n} documents")
    idx = idx.astype(np.int64)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -1 or hi >= n_labels:
            bad = lo if lo < -1 else hi
            row = int(np.argwhere(idx == bad)[0, 0])
            raise DataError(f"predicted label id {bad} (row {row}) is outside 0..{n_labels - 1} (-1 pads)")
        s = np.sort(idx, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
        if dup.any():
            row = int(np.argwhere(dup)[0, 0])
            raise DataError(f"row {row} of the predictions repeats a label id: {idx[row].tolist()}")
    return idx


def _scores_of(top: Any, scores: Any, shape: tuple[int, int]) -> np.ndarray:
    """Scores float64 (n, k) aligned with the prediction ids."""
    if scores is None:
        scores = getattr(top, "scores", None)
    elif hasattr(scores, "scores"):
        scores = scores.scores
    if scores is None:
        raise DataError("this metric needs scores: pass a TopK or scores (n_docs, k) aligned with the ids")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != shape:
        raise DataError(f"scores have shape {scores.shape} but the predicted ids have shape {shape}")
    return scores


def _n_gold(n_gold: Any, Y: sp.csr_matrix) -> np.ndarray:
    known = np.diff(Y.indptr).astype(np.int64)
    if n_gold is None:
        return known
    g = np.asarray(n_gold)
    if g.shape != known.shape or not np.issubdtype(g.dtype, np.integer):
        raise DataError(f"n_gold must be an int array of shape {known.shape}, got {g.dtype} {g.shape}")
    short = np.flatnonzero(g < known)
    if short.size:
        i = int(short[0])
        raise DataError(f"n_gold[{i}] = {int(g[i])} is smaller than the {known[i]} gold labels "
                        f"in Y_true row {i}")
    return g.astype(np.int64)


def _inv_prop(inv_prop: Any, n_labels: int) -> np.ndarray:
    q = np.asarray(inv_prop, dtype=np.float64)
    if q.shape != (n_labels,):
        raise DataError(f"inv_prop must have shape ({n_labels},) (one value per label), got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise DataError("inv_prop contains NaN or infinite values")
    return q


def _pad(idx: np.ndarray, k: int) -> np.ndarray:
    if idx.shape[1] >= k:
        return idx
    return np.hstack([idx, np.full((idx.shape[0], k - idx.shape[1]), -1, dtype=idx.dtype)])


def _hits(Y: sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
    """bool (n, k): is ``idx[i, j]`` a gold label of document i (padding is never a hit)."""
    n, n_labels = Y.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(Y.indptr))
    gold_keys = rows * n_labels + Y.indices  # sorted: canonical CSR
    pred_keys = np.arange(n, dtype=np.int64)[:, None] * n_labels + idx  # (n, k)
    if gold_keys.size == 0:
        return np.zeros(idx.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(gold_keys, pred_keys), gold_keys.size - 1)
    return (gold_keys[pos] == pred_keys) & (idx >= 0)


def _discount(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # (k,) 1/log2(l+1), l = 1..k


# ----------------------------------------------------------------------------------------------- core sums
def _sums(Y: sp.csr_matrix, idx: np.ndarray, ks: Sequence[int], inv_prop: np.ndarray | None,
          n_gold: np.ndarray) -> dict[str, list[float]]:
    """{metric: [numerator, denominator]} for one batch; every metric is numerator / denominator."""
    n = Y.shape[0]
    kmax = max(ks)
    idx = _pad(idx, kmax)[:, :kmax]
    hits = _hits(Y, idx)  # (n, kmax)
    disc = _discount(kmax)
    idcg = np.concatenate([[1.0], np.cumsum(disc)])  # idcg[m]: ideal DCG of m gold labels (idcg[0] unused)
    known = np.diff(Y.indptr).astype(np.int64)
    out: dict[str, list[float]] = {"n_docs": [float(n), 1.0]}
    if inv_prop is not None:
        q_hit = np.where(hits, inv_prop[np.maximum(idx, 0)], 0.0)  # (n, kmax)
        rows = np.repeat(np.arange(n), known)
        q_gold = inv_prop[Y.indices]
        order = np.lexsort((-q_gold, rows))  # gold propensities of each row, largest first
        q_sorted = q_gold[order]
        rank = np.arange(rows.size) - Y.indptr[rows]
    for k in ks:
        nh = hits[:, :k].sum(axis=1).astype(np.float64)
        m = np.minimum(k, n_gold)
        has = m > 0
        safe_m = np.maximum(m, 1)
        dcg = hits[:, :k] @ disc[:k]
        out[f"P@{k}"] = [nh.sum() / k, n]
        out[f"nDCG@{k}"] = [float(np.where(has, dcg / idcg[safe_m], 0.0).sum()), n]
        out[f"RP@{k}"] = [float(np.where(has, nh / safe_m, 0.0).sum()), n]
        out[f"R@{k}"] = [float(np.where(has, nh / np.maximum(n_gold, 1), 0.0).sum()), n]
        if inv_prop is not None:
            top_k = rank < k
            best = np.bincount(rows[top_k], weights=q_sorted[top_k], minlength=n)
            best_dcg = np.bincount(rows[top_k], weights=q_sorted[top_k] * disc[rank[top_k]], minlength=n)
            mk = np.minimum(k, known)
            norm = np.where(mk > 0, idcg[np.maximum(mk, 1)], 1.0)
            out[f"PSP@{k}"] = [float(q_hit[:, :k].sum()), float(best.sum())]
            psdcg = q_hit[:, :k] @ disc[:k]
            out[f"PSnDCG@{k}"] = [float((psdcg / norm).sum()), float((best_dcg / norm).sum())]
    return out


def _f1_sums(Y: sp.csr_matrix, idx: np.ndarray, scores: np.ndarray, threshold: float,
             n_gold: np.ndarray) -> list[float]:
    predicted = (idx >= 0) & (scores >= threshold)
    tp = float((_hits(Y, idx) & predicted).sum())
    return [2 * tp, 2 * tp + (predicted.sum() - tp) + (n_gold.sum() - tp)]


def _ratio(num_den: Sequence[float]) -> float:
    num, den = num_den
    return float(num / den) if den > 0 else 0.0


def _one(name: str, Y: Any, top: Any, k: int, inv_prop: Any = None, n_gold: Any = None) -> float:
    k = check_k(k)
    Yc = gold_csr(Y)
    if Yc.shape[0] == 0:
        raise DataError("no documents to evaluate (Y_true has 0 rows)")
    q = _inv_prop(inv_prop, Yc.shape[1]) if inv_prop is not None else None
    return _ratio(_sums(Yc, _indices(top, Yc), (k,), q, _n_gold(n_gold, Yc))[f"{name}@{k}"])

# ----------------------------------------------------------------------------------------------- label groups
def _label_mask(labels: Any, n_labels: int) -> np.ndarray:
    ids = np.asarray(labels, dtype=np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= n_labels):
        raise DataError(f"label group has ids outside 0..{n_labels - 1}")
    mask = np.zeros(n_labels, dtype=bool)
    mask[ids] = True
    return mask


def _restrict(Y: sp.csr_matrix, idx: np.ndarray,
              mask: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    keep = mask[Y.indices]
    rows_of = np.repeat(np.arange(Y.shape[0]), np.diff(Y.indptr))
    counts = np.bincount(rows_of[keep], minlength=Y.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    Ys = sp.csr_matrix((Y.data[keep], Y.indices[keep], indptr), shape=Y.shape)
    rows = np.flatnonzero(counts > 0)
    inside = (idx >= 0) & mask[np.maximum(idx, 0)]  # (n, k)
    order = np.argsort(~inside, axis=1, kind="stable")  # group labels first, original order kept
    idx_s = np.where(np.take_along_axis(inside, order, axis=1), np.take_along_axis(idx, order, axis=1), -1)
    return Ys[rows], idx_s[rows], rows
