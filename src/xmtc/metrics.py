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

The kernels (input checks, the (numerator, denominator) sums) live in :mod:`xmtc.metric_sums`, the streaming
accumulator and the report in :mod:`xmtc.metric_report`; this module re-exports their public names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError  # noqa: F401 (re-exported)
from xmtc.metric_report import MetricAccumulator, format_report, report  # noqa: F401 (re-exported)
from xmtc.metric_sums import (  # noqa: F401 (re-exported)
    _f1_sums,
    _indices,
    _label_mask,
    _n_gold,
    _one,
    _ratio,
    _restrict,
    _scores_of,
)
from xmtc.metric_utils import check_k, gold_csr  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from xmtc.models.base import TopK

__all__ = [
    "MetricAccumulator", "format_report", "inverse_propensity", "micro_f1", "ndcg_at_k", "precision_at_k",
    "psndcg_at_k", "psp_at_k", "r_precision_at_k", "recall_at_k", "report", "restrict_to_labels",
]  # plus label_groups, label_group_auc, tail_label_precision from xmtc.label_metrics (see __getattr__)


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


def __getattr__(name: str) -> Any:
    """Label-wise metrics live in :mod:`xmtc.label_metrics` (imported lazily, no import cycle)."""
    if name in ("label_group_auc", "label_groups", "tail_label_precision"):
        from xmtc import label_metrics

        return getattr(label_metrics, name)
    raise AttributeError(f"module 'xmtc.metrics' has no attribute {name!r}")
