"""Label representations for clustering: PIFA (Positive Instance Feature Aggregation)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize


def pifa(X: sp.spmatrix | np.ndarray, Y: sp.spmatrix) -> sp.csr_matrix:
    """PIFA label features, as in Parabel and AttentionXML's label tree.

    ``v_l = normalize(sum_{i : Y[i, l] != 0} normalize(X[i]))``: the L2-normalised sum of the L2-normalised
    feature vectors of the documents tagged with label ``l``. Labels without any document get a zero row.

    Args:
        X: document features (n, F), typically TF-IDF (CSR, or dense).
        Y: labels (n, L) CSR; every non-zero counts as a positive (weights are ignored).

    Returns:
        CSR float32 (L, F) with sorted indices; each row has unit L2 norm or is zero.
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    Xn = normalize(sp.csr_matrix(X, dtype=np.float32), norm="l2")
    Yb = sp.csr_matrix(Y, dtype=np.float32, copy=True)
    Yb.eliminate_zeros()
    Yb.data[:] = 1.0
    V = sp.csr_matrix(Yb.T.tocsr() @ Xn, dtype=np.float32)  # (L, F)
    V = normalize(V, norm="l2", copy=False).astype(np.float32)
    V.eliminate_zeros()
    V.sort_indices()
    return V
