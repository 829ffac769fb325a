"""Evaluation metrics for XMTC: pure functions over ``(Y_true CSR (n, L), top)`` plus a streaming accumulator.

``top`` is a :class:`~xmtc.models.base.TopK` or an int array (n, k) of label ids sorted by decreasing score,
``-1`` padding rows with fewer predictions. Gold labels are the non-zero entries of ``Y_true``.

Conventions (shared with napkinXC and pyxclib, so numbers compare with published tables):

* Documents without any gold label stay in every per-document average and score 0.
* ``k`` larger than the predictions available: missing positions are misses. ``k <= 0`` raises XMTCError.
* ``n_gold`` (int (n,)) counts gold labels including those unseen in training. Unseen labels can never be
  predicted, so they are misses: they enlarge the denominators of nDCG, RP and recall (and micro-F1's false
  negatives). Propensity-scored metrics use the known labels only (an unseen label has no training count).
* PSP@k and PSnDCG@k are normalised by the best achievable value (ratio of sums over documents, as napkinXC's
  ``normalize=True`` and pyxclib's ``psprecision`` / ``psndcg``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError
from xmtc.metric_utils import check_k, gold_csr

if TYPE_CHECKING:
    from xmtc.models.base import TopK

__all__ = [
    "MetricAccumulator", "format_report", "inverse_propensity", "micro_f1", "ndcg_at_k", "precision_at_k",
    "psndcg_at_k", "psp_at_k", "r_precision_at_k", "recall_at_k", "report", "restrict_to_labels",
]  # plus label_groups, label_group_auc, tail_label_precision from xmtc.label_metrics (see __getattr__)


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


# ----------------------------------------------------------------------------------------------- metrics
def precision_at_k(Y_true: Any, top: TopK | np.ndarray, k: int) -> float:
    """Precision at k, averaged over documents.

    ``P@k = 1/n sum_i 1/k sum_{l=1..k} y_i[r_i(l)]`` where ``r_i(l)`` is the l-th predicted label of
    document i (padding and positions beyond the predictions count as misses).

    Args:
        Y_true: CSR (n, L) gold labels (non-zero entries).
        top: TopK or int array (n, k') of label ids with -1 padding.
        k: cut-off (positive).

    Returns:
        P@k in [0, 1].
    """
    return _one("P", Y_true, top, k)


def ndcg_at_k(Y_true: Any, top: TopK | np.ndarray, k: int, n_gold: np.ndarray | None = None) -> float:
    """Normalised discounted cumulative gain at k.

    ``DCG@k = sum_{l=1..k} y[r(l)] / log2(l+1)``, ``iDCG@k = sum_{l=1..min(k, |y|)} 1 / log2(l+1)``,
    ``nDCG@k = mean_i DCG_i@k / iDCG_i@k``; ``|y|`` is ``n_gold`` when given. Documents without gold score 0.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k') of label ids.
        k: cut-off.
        n_gold: optional int (n,) gold counts including labels unseen in training.

    Returns:
        nDCG@k in [0, 1].
    """
    return _one("nDCG", Y_true, top, k, n_gold=n_gold)


def recall_at_k(Y_true: Any, top: TopK | np.ndarray, k: int, n_gold: np.ndarray | None = None) -> float:
    """Recall at k: ``R@k = mean_i |gold_i ∩ top_k_i| / |gold_i|`` (0 for documents without gold).

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k') of label ids.
        k: cut-off.
        n_gold: optional int (n,) gold counts including labels unseen in training.

    Returns:
        R@k in [0, 1].
    """
    return _one("R", Y_true, top, k, n_gold=n_gold)


def r_precision_at_k(Y_true: Any, top: TopK | np.ndarray, k: int, n_gold: np.ndarray | None = None) -> float:
    """R-Precision at k (EURLEX57K, Chalkidis et al. 2019).

    ``RP@k = mean_i |gold_i ∩ top_k_i| / min(k, |gold_i|)``.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k') of label ids.
        k: cut-off.
        n_gold: optional int (n,) gold counts including labels unseen in training.

    Returns:
        RP@k in [0, 1] (0 for documents without gold).
    """
    return _one("RP", Y_true, top, k, n_gold=n_gold)


def psp_at_k(Y_true: Any, top: TopK | np.ndarray, k: int, inv_prop: np.ndarray) -> float:
    """Propensity-scored precision at k (Jain et al. 2016), normalised by the best achievable value.

    ``PSP@k = sum_i sum_{l<=k} q[r_i(l)] y_i[r_i(l)] / sum_i sum_{j<=min(k,|y_i|)} q_i^(j)`` where ``q``
    are the inverse propensities and ``q_i^(j)`` the j-th largest ``q`` among the gold labels of document i
    (the common factor 1/(nk) cancels). Same as napkinXC ``psprecision_at_k(normalize=True)`` and pyxclib
    ``psprecision``.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k') of label ids.
        k: cut-off.
        inv_prop: float (L,) inverse propensities, see :func:`inverse_propensity`.

    Returns:
        PSP@k in [0, 1].
    """
    return _one("PSP", Y_true, top, k, inv_prop=inv_prop)


def psndcg_at_k(Y_true: Any, top: TopK | np.ndarray, k: int, inv_prop: np.ndarray) -> float:
    """Propensity-scored nDCG at k, normalised by the best achievable value (napkinXC / pyxclib ``psndcg``).

    ``PSDCG_i = sum_{l<=k} q[r_i(l)] y_i[r_i(l)] / log2(l+1)``,
    ``best_i = sum_{j<=min(k,|y_i|)} q_i^(j) / log2(j+1)``,
    ``PSnDCG@k = sum_i PSDCG_i / iDCG_i@k / sum_i best_i / iDCG_i@k`` with ``iDCG_i@k`` as in
    :func:`ndcg_at_k` over the known gold labels.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k') of label ids.
        k: cut-off.
        inv_prop: float (L,) inverse propensities.

    Returns:
        PSnDCG@k in [0, 1].
    """
    return _one("PSnDCG", Y_true, top, k, inv_prop=inv_prop)


def inverse_propensity(Y_train: Any, A: float = 0.55, B: float = 1.5) -> np.ndarray:
    """Inverse label propensities of Jain et al. (2016).

    ``C = (log N - 1) (B + 1)^A``, ``inv_p_l = 1 + C (N_l + B)^-A`` with N training documents and N_l of them
    tagged with label l. Typical (A, B): (0.55, 1.5); (0.5, 0.4) Wikipedia; (0.6, 2.6) Amazon.

    Args:
        Y_train: CSR (N, L) training labels.
        A: dataset parameter A.
        B: dataset parameter B.

    Returns:
        float64 (L,) inverse propensities (rare labels get large weights).
    """
    Y = gold_csr(Y_train)
    N = Y.shape[0]
    if N == 0:
        raise DataError("inverse_propensity needs at least one training document")
    counts = np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.float64)
    C = (np.log(N) - 1.0) * (B + 1.0) ** A
    return 1.0 + C * (counts + B) ** -A


def micro_f1(Y_true: Any, top: TopK | np.ndarray, threshold: float = 0.5, scores: np.ndarray | None = None,
             n_gold: np.ndarray | None = None) -> float:
    """Micro-averaged F1 of the predictions whose score is at least ``threshold``.

    ``F1 = 2 TP / (2 TP + FP + FN)`` summed over all documents and labels. Only the labels present in ``top``
    can be predicted, so use a ``k`` large enough for the threshold. Unseen gold labels (``n_gold``) are FN.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK (its scores are used) or int array (n, k) of label ids.
        threshold: minimum score of a predicted label.
        scores: float (n, k) scores aligned with ``top`` (needed when ``top`` is an int array).
        n_gold: optional int (n,) gold counts including labels unseen in training.

    Returns:
        micro-F1 in [0, 1] (0 when there is nothing to predict and nothing predicted).
    """
    Yc = gold_csr(Y_true)
    idx = _indices(top, Yc)
    return _ratio(_f1_sums(Yc, idx, _scores_of(top, scores, idx.shape), threshold, _n_gold(n_gold, Yc)))


# ----------------------------------------------------------------------------------------------- label groups
def restrict_to_labels(Y_true: Any, top: TopK | np.ndarray,
                       labels: Any) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Gold and predictions restricted to a label set, keeping only documents with a gold label in the set.

    Predictions outside the set are removed and the remaining ones move up (the ranking within the set, as
    EURLEX57K's frequent / few / zero-shot evaluation ranks the group's columns), padded with -1. Only labels
    present in ``top`` can be ranked, so predict a generous k (e.g. 100) for group metrics.

    Args:
        Y_true: CSR (n, L) gold labels.
        top: TopK or int array (n, k) of label ids.
        labels: ids of the label set.

    Returns:
        (Y_sub CSR (m, L), idx_sub int64 (m, k), rows int64 (m,) of the kept documents).
    """
    Y = gold_csr(Y_true)
    return _restrict(Y, _indices(top, Y), _label_mask(labels, Y.shape[1]))


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


# ----------------------------------------------------------------------------------------------- report
class MetricAccumulator:
    """Streaming evaluation (napkinXC-metrics style): ``update`` batch by batch, then ``result``.

    Every metric is kept as a (numerator, denominator) pair of sums, so the result over batches equals
    :func:`report` over the whole set (up to float rounding).

    Args:
        ks: cut-offs, e.g. (1, 3, 5).
        inv_prop: optional float (L,) inverse propensities; adds PSP@k and PSnDCG@k.
        f1_threshold: score threshold of "microF1" (computed only when ``update`` gets scores).
        groups: optional {name: label ids}; adds "{name}:{metric}" and "{name}:n_docs" restricted to the group
            (see :func:`restrict_to_labels`; ``n_gold`` is not used inside groups).
    """

    def __init__(self, ks: Sequence[int] = (1, 3, 5), inv_prop: np.ndarray | None = None,
                 f1_threshold: float = 0.5, groups: Mapping[str, Any] | None = None):
        self.ks = tuple(sorted({check_k(k) for k in ks}))
        if not self.ks:
            raise XMTCError("ks must name at least one cut-off")
        self.inv_prop = None if inv_prop is None else np.asarray(inv_prop, dtype=np.float64)
        self.f1_threshold = float(f1_threshold)
        self.groups = dict(groups or {})
        for name in self.groups:
            if not isinstance(name, str) or ":" in name or not name:
                raise XMTCError(f"group names must be non-empty strings without ':', got {name!r}")
        self.sums: dict[str, list[float]] = {}

    def _add(self, sums: dict[str, list[float]], prefix: str = "") -> None:
        for name, (num, den) in sums.items():
            acc = self.sums.setdefault(prefix + name, [0.0, 0.0])
            acc[0] += num
            acc[1] += den

    def update(self, Y_batch: Any, top_batch: TopK | np.ndarray, n_gold: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> MetricAccumulator:
        """Add one batch of documents.

        Args:
            Y_batch: CSR (b, L) gold labels.
            top_batch: TopK or int array (b, k) of predicted label ids.
            n_gold: optional int (b,) gold counts including labels unseen in training.
            scores: optional float (b, k) scores aligned with ``top_batch`` (or a TopK); enables "microF1".

        Returns:
            self
        """
        Y = gold_csr(Y_batch)
        idx = _indices(top_batch, Y)
        g = _n_gold(n_gold, Y)
        q = None if self.inv_prop is None else _inv_prop(self.inv_prop, Y.shape[1])
        self._add(_sums(Y, idx, self.ks, q, g))
        if scores is not None:
            f1 = _f1_sums(Y, idx, _scores_of(top_batch, scores, idx.shape), self.f1_threshold, g)
            self._add({"microF1": f1})
        for name, labels in self.groups.items():
            Ys, idx_s, _ = _restrict(Y, idx, _label_mask(labels, Y.shape[1]))
            self._add(_sums(Ys, idx_s, self.ks, q, np.diff(Ys.indptr).astype(np.int64)), prefix=f"{name}:")
        return self

    def result(self) -> dict[str, float]:
        """Metrics so far: {"P@1": ..., "nDCG@3": ..., "n_docs": ...}; values are fractions in [0, 1].

        A group without documents reports ``"{name}:n_docs": 0`` and NaN metrics (undefined, not zero).
        """
        if not self.sums or self.sums["n_docs"][0] == 0:
            raise DataError("no documents to evaluate (call update() with at least one document)")
        out: dict[str, float] = {}
        for name, (num, den) in self.sums.items():
            if name.endswith("n_docs"):
                out[name] = int(num)
            elif ":" in name and self.sums[name.split(":")[0] + ":n_docs"][0] == 0:
                out[name] = float("nan")
            else:
                out[name] = _ratio((num, den))
        return out


def report(Y: Any, top: TopK | np.ndarray, ks: Sequence[int] = (1, 3, 5), inv_prop: np.ndarray | None = None,
           n_gold: np.ndarray | None = None, scores_for_f1: Any = None,
           groups: Mapping[str, Any] | None = None, f1_threshold: float = 0.5) -> dict[str, float]:
    """All document metrics at once: P@k, nDCG@k, RP@k, R@k (+ PSP@k, PSnDCG@k, microF1, label groups).

    Args:
        Y: CSR (n, L) gold labels.
        top: TopK or int array (n, k) of predicted label ids.
        ks: cut-offs.
        inv_prop: optional float (L,) inverse propensities (from the training labels) for PSP/PSnDCG.
        n_gold: optional int (n,) gold counts including labels unseen in training (misses).
        scores_for_f1: optional scores (n, k) aligned with ``top`` (or the TopK itself) to add "microF1".
        groups: optional {name: label ids}, e.g. :func:`label_groups` of the training labels.
        f1_threshold: score threshold of "microF1".

    Returns:
        {"P@1": ..., "nDCG@3": ..., "PSP@5": ..., "RP@5": ..., "R@5": ..., "n_docs": n, ...}; metric
        values are fractions in [0, 1], "n_docs" an int.
    """
    acc = MetricAccumulator(ks, inv_prop=inv_prop, f1_threshold=f1_threshold, groups=groups)
    return acc.update(Y, top, n_gold=n_gold, scores=scores_for_f1).result()


_KEY = re.compile(r"^(?:(?P<group>[^:]+):)?(?P<metric>[^@]+)(?:@(?P<k>\d+))?$")


def format_report(metrics: Mapping[str, float]) -> str:
    """A small aligned table of a :func:`report` dict, metric values in percent.

    Args:
        metrics: dict from :func:`report` / :meth:`MetricAccumulator.result`.

    Returns:
        Multi-line text: one row per metric (and group), one column per k; counts as integers.
    """
    rows: dict[tuple[str, str], dict[str, float]] = {}
    counts: list[tuple[str, float]] = []
    ks: set[int] = set()
    for key, value in metrics.items():
        m = _KEY.match(key)
        if key.endswith("n_docs") or m is None:
            counts.append((key, value))
            continue
        k = m["k"] or ""
        if k:
            ks.add(int(k))
        rows.setdefault((m["group"] or "", m["metric"]), {})[k] = value
    cols = [str(k) for k in sorted(ks)] + ([""] if any("" in r for r in rows.values()) else [])
    width = max([len(f"{g}:{m}" if g else m) for g, m in rows] + [6])
    head = " " * width + "".join(f"{'@' + c if c else 'value':>9}" for c in cols)
    lines = [head]
    for (g, m), vals in rows.items():
        cells = "".join(f"{_cell(vals.get(c)):>9}" for c in cols)
        lines.append(f"{(f'{g}:{m}' if g else m):<{width}}{cells}")
    lines += [f"{key:<{width}}{int(v):>9d}" for key, v in counts]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return "n/a" if np.isnan(value) else f"{100 * value:.2f}"


def __getattr__(name: str) -> Any:
    """Label-wise metrics live in :mod:`xmtc.label_metrics` (imported lazily, no import cycle)."""
    if name in ("label_group_auc", "label_groups", "tail_label_precision"):
        from xmtc import label_metrics

        return getattr(label_metrics, name)
    raise AttributeError(f"module 'xmtc.metrics' has no attribute {name!r}")
