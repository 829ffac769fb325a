"""Label-wise metrics: frequency groups of labels, per-group AUC / AUPR (AttentionXML Table 6) and tail-label
precision (MAACF+ Eq. 14). Also reachable as ``xmtc.metrics.label_group_auc`` etc.

Label-wise metrics rank documents for one label, so they need scores: a TopK (scores of the top-k labels of
each document; a label outside a document's top-k has score 0, i.e. ranks below every predicted score), or a
full score matrix (dense ndarray or scipy sparse, shape (n, L)). Scores must be non-negative (probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError
from xmtc.metric_utils import check_k, gold_csr

if TYPE_CHECKING:
    from xmtc.models.base import TopK

__all__ = ["label_counts", "label_group_auc", "label_groups", "tail_label_precision"]


def label_counts(Y_or_counts: Any) -> np.ndarray:
    """Documents per label: int64 (L,) from a CSR (n, L) label matrix, or a checked 1-D count array."""
    if sp.issparse(Y_or_counts) or np.ndim(Y_or_counts) == 2:
        Y = gold_csr(Y_or_counts)
        return np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.int64)
    counts = np.asarray(Y_or_counts)
    if counts.ndim != 1 or (counts.size and counts.min() < 0):
        raise DataError(f"label counts must be a 1-D non-negative array, got shape {counts.shape}")
    return counts.astype(np.int64)


def label_groups(Y_train: Any, frequent_above: int = 50, few_above: int = 0) -> dict[str, np.ndarray]:
    """Label ids by training frequency (EURLEX57K convention: frequent > 50, few-shot 1..50, zero-shot 0).

    Args:
        Y_train: CSR (N, L) training labels, or int (L,) training counts per label.
        frequent_above: labels in more than this many training documents are "frequent".
        few_above: labels in ``few_above + 1 .. frequent_above`` documents are "few"; the rest are "zero".

    Returns:
        {"frequent": ids, "few": ids, "zero": ids} (sorted int64). Zero-shot labels exist only where the
        label index holds labels absent from training (e.g. built with ``extra`` names); labels outside the
        index are counted through ``n_gold`` only.
    """
    if few_above < 0 or frequent_above < few_above:
        raise XMTCError(f"need 0 <= few_above <= frequent_above, got {few_above} and {frequent_above}")
    c = label_counts(Y_train)
    return {"frequent": np.flatnonzero(c > frequent_above),
            "few": np.flatnonzero((c > few_above) & (c <= frequent_above)),
            "zero": np.flatnonzero(c <= few_above)}


def _score_matrix(scores: Any, shape: tuple[int, int]) -> sp.csc_matrix:
    """CSC (n, L) of scores; absent entries mean score 0."""
    if hasattr(scores, "indices") and hasattr(scores, "scores"):
        idx, val = np.asarray(scores.indices), np.asarray(scores.scores, dtype=np.float64)
        if idx.shape[0] != shape[0] or getattr(scores, "n_labels", shape[1]) != shape[1]:
            raise DataError(f"predictions of shape {idx.shape} over {scores.n_labels} labels do not match "
                            f"Y_true {shape}")
        mask = idx >= 0
        rows = np.broadcast_to(np.arange(shape[0])[:, None], idx.shape)[mask]
        S = sp.csc_matrix((val[mask], (rows, idx[mask])), shape=shape)
    elif sp.issparse(scores) or (np.ndim(scores) == 2 and np.asarray(scores).dtype.kind == "f"):
        S = sp.csc_matrix(scores, dtype=np.float64)
        if S.shape != shape:
            raise DataError(f"score matrix has shape {S.shape} but Y_true has {shape}")
    else:
        raise DataError("label-wise metrics need scores: pass a TopK or a float score matrix "
                        "(n_docs, n_labels)")
    S.sum_duplicates()
    if S.nnz and S.data.min() < 0:
        raise DataError(f"scores must be non-negative (missing scores count as 0), found {S.data.min():.4g}; "
                        "apply a sigmoid to logits first")
    return S


def _auc_ap(values: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """ROC-AUC and average precision of weighted points (value, #positives, #negatives); ties share ranks.

    AUC = P(score+ > score-) + P(tie)/2 (Mann-Whitney); AP = sum_t (R_t - R_{t-1}) P_t over decreasing
    distinct thresholds t (scikit-learn's ``average_precision_score``).
    """
    keep = (pos + neg) > 0
    values, pos, neg = values[keep], pos[keep], neg[keep]
    order = np.argsort(-values, kind="stable")
    v = values[order]
    grp = np.cumsum(np.r_[True, v[1:] != v[:-1]]) - 1
    p = np.bincount(grp, weights=pos[order])  # positives per distinct value, decreasing
    q = np.bincount(grp, weights=neg[order])
    tp, fp = np.cumsum(p), np.cumsum(q)
    n_pos, n_neg = tp[-1], fp[-1]
    auc = float((p * (n_neg - fp + 0.5 * q)).sum() / (n_pos * n_neg))
    ap = float((np.diff(np.r_[0.0, tp / n_pos]) * tp / (tp + fp)).sum())
    return auc, ap


def _label_points(S: sp.csc_matrix, Yc: sp.csc_matrix,
                  label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted points of one label's column: each scored document, plus one point at score 0 for the rest."""
    n = S.shape[0]
    docs = S.indices[S.indptr[label]:S.indptr[label + 1]]
    vals = S.data[S.indptr[label]:S.indptr[label + 1]]
    gold = Yc.indices[Yc.indptr[label]:Yc.indptr[label + 1]]
    y = np.isin(docs, gold).astype(np.float64)
    rest_pos = gold.size - y.sum()
    rest_neg = (n - docs.size) - rest_pos
    return np.r_[vals, 0.0], np.r_[y, rest_pos], np.r_[1.0 - y, rest_neg]


def _frequency_bins(counts: np.ndarray, labels: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Split ``labels`` by decreasing count into ``n_groups`` bins of near-equal total occurrence (labels with
    the same count stay together, so bins are count ranges ``lo <= t < hi`` as in Table 6)."""
    distinct, inverse = np.unique(counts[labels], return_inverse=True)
    occ = np.bincount(inverse, weights=counts[labels].astype(np.float64))
    distinct, cum = distinct[::-1], np.cumsum(occ[::-1])  # by decreasing count
    cuts = sorted({int(np.argmin(np.abs(cum - cum[-1] * g / n_groups))) + 1 for g in range(1, n_groups)})
    edges = [0] + [c for c in cuts if 0 < c < distinct.size] + [distinct.size]
    return [labels[np.isin(counts[labels], distinct[a:b])]
            for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def label_group_auc(Y_true: Any, scores: TopK | np.ndarray | sp.spmatrix, counts: Any = None,
                    n_groups: int = 3, min_count: int = 5, average: str = "macro") -> list[dict[str, Any]]:
    """ROC-AUC and AUPR per label-frequency group (AttentionXML, Table 6).

    As in the paper: labels that occur at least ``min_count`` (5) times in the evaluated set are sorted by
    frequency and divided into ``n_groups`` (3) groups keeping the total occurrence of each group as equal as
    possible; each group reports the average over its labels ("macro", the paper's "average AUC and AUPR over
    all labels for each group") of the per-label ROC-AUC and AUPR over all documents. ``average="micro"``
    pools every (document, label) pair of the group instead. AUPR is average precision (step-wise area,
    scikit-learn's ``average_precision_score``). Scores outside a document's top-k are 0 (ties share ranks).

    Args:
        Y_true: CSR (n, L) gold labels of the evaluated set.
        scores: TopK, or float score matrix (n, L) dense or sparse.
        counts: label frequencies used for grouping and ``min_count`` (default: occurrences in ``Y_true``,
            as in the paper); pass training counts (:func:`label_counts` of train Y) to group by training
            frequency.
        n_groups: number of groups.
        min_count: labels with fewer occurrences are left out.
        average: "macro" (per-label mean) or "micro" (pooled pairs).

    Returns:
        One dict per group, most frequent first: {"min_count", "max_count", "n_labels", "share" (of the
        total occurrence), "AUC", "AUPR"}; labels without a positive or a negative document in ``Y_true``
        are skipped.
    """
    if average not in ("macro", "micro"):
        raise XMTCError(f"average must be 'macro' or 'micro', but is {average!r}")
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise XMTCError(f"n_groups must be a positive integer, but is {n_groups!r}")
    Y = gold_csr(Y_true)
    S = _score_matrix(scores, Y.shape)
    Yc = Y.tocsc()
    test_counts = np.diff(Yc.indptr)
    c = test_counts if counts is None else label_counts(counts)
    if c.shape != (Y.shape[1],):
        raise DataError(f"counts must have one entry per label ({Y.shape[1]}), got {c.shape}")
    usable = (test_counts > 0) & (test_counts < Y.shape[0])
    eligible = np.flatnonzero((c >= min_count) & usable)
    if eligible.size == 0:
        return []
    out = []
    total = c[eligible].sum()
    for labels in _frequency_bins(c, eligible, n_groups):
        points = [_label_points(S, Yc, int(lab)) for lab in labels]
        if average == "macro":
            auc, ap = np.mean([_auc_ap(*pt) for pt in points], axis=0)
        else:
            auc, ap = _auc_ap(*(np.concatenate(parts) for parts in zip(*points, strict=True)))
        out.append({"min_count": int(c[labels].min()), "max_count": int(c[labels].max()),
                    "n_labels": int(labels.size), "share": float(c[labels].sum() / total),
                    "AUC": float(auc), "AUPR": float(ap)})
    return out


def tail_label_precision(Y_true: Any, scores: TopK | np.ndarray | sp.spmatrix,
                         ks: Sequence[int] = (1, 10, 20), n_tail: int = 10,
                         counts: Any = None) -> dict[str, float]:
    """Tail-label precision of MAACF+ (Eq. 14): documents ranked per tail label.

    The ``n_tail`` labels with the lowest occurrence (ties: lower label id first; labels absent from
    ``Y_true`` are skipped, they have no document to find) are the tail set. For each tail label z_i,
    documents are ranked by their score for z_i and ``Hit_i@K`` counts gold documents among the top K. As
    the equation says, ``P@K = sum_i Hit_i@K / sum_i max(n_i, K)``, n_i = documents tagged with z_i: the
    denominator is the *maximum* of n_i and K, so for K >= n_i this is precision@K and for K < n_i it is
    recall@K (the paper notes the value falls once K exceeds n_i). Documents without a score for z_i (z_i
    outside their top-k) cannot be retrieved; pass a full score matrix to rank every document.

    Args:
        Y_true: CSR (n, L) gold labels of the evaluated set.
        scores: TopK, or float score matrix (n, L) dense or sparse.
        ks: the K values (paper: 1, 10, 20).
        n_tail: size of the tail label set (paper: 10).
        counts: occurrences used to pick the tail (default: occurrences in ``Y_true``; the paper counts "in
            the dataset").

    Returns:
        {"tailP@1": ..., "tailP@10": ..., "tailP@20": ..., "n_tail": labels used}.
    """
    ks = [check_k(k) for k in ks]
    if not isinstance(n_tail, (int, np.integer)) or n_tail < 1:
        raise XMTCError(f"n_tail must be a positive integer, but is {n_tail!r}")
    Y = gold_csr(Y_true)
    S = _score_matrix(scores, Y.shape)
    Yc = Y.tocsc()
    n_i = np.diff(Yc.indptr)
    c = n_i if counts is None else label_counts(counts)
    if c.shape != n_i.shape:
        raise DataError(f"counts must have one entry per label ({n_i.size}), got {c.shape}")
    present = np.flatnonzero(n_i > 0)
    tail = present[np.lexsort((present, c[present]))][:n_tail]
    hits, denom = np.zeros(len(ks)), np.zeros(len(ks))
    for z in tail:
        docs = S.indices[S.indptr[z]:S.indptr[z + 1]]
        vals = S.data[S.indptr[z]:S.indptr[z + 1]]
        ranked = docs[np.lexsort((docs, -vals))]  # by score, then document id
        gold = Yc.indices[Yc.indptr[z]:Yc.indptr[z + 1]]
        for j, k in enumerate(ks):
            hits[j] += np.isin(ranked[:k], gold).sum()
            denom[j] += max(n_i[z], k)
    out = {f"tailP@{k}": float(hits[j] / denom[j]) if denom[j] else 0.0 for j, k in enumerate(ks)}
    out["n_tail"] = int(tail.size)
    return out
