"""Input checks shared by :mod:`xmtc.metrics` and :mod:`xmtc.label_metrics`.

Both metric modules import this one (never each other at import time: :mod:`xmtc.metrics` only reaches
:mod:`xmtc.label_metrics` lazily, to re-export its functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError

__all__ = ["check_k", "gold_csr"]


def check_k(k: Any) -> int:
    """``k`` as an int; XMTCError unless it is a positive integer (bools are refused)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise XMTCError(f"k must be a positive integer, but is {k!r}")
    return int(k)


def gold_csr(Y: Any) -> sp.csr_matrix:
    """Canonical binary CSR copy: sorted indices, no duplicates, no explicit zeros."""
    if not sp.issparse(Y):
        Y = np.asarray(Y)
        if Y.ndim != 2:
            raise DataError(f"Y_true must be a 2-D (n_docs, n_labels) matrix, got shape {Y.shape}")
    Y = sp.csr_matrix(Y, dtype=np.float64, copy=True)
    Y.sum_duplicates()
    Y.eliminate_zeros()
    Y.data[:] = 1.0
    return Y
