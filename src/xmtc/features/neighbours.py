"""Exact cosine k-nearest neighbours by batched matrix products (dense or CSR inputs)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize


def knn(queries: np.ndarray | sp.spmatrix, base: np.ndarray | sp.spmatrix, k: int, *,
        exclude_self: bool = False, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``base`` by cosine similarity to each row of ``queries``.

    Rows are L2-normalised inside (all-zero rows have similarity 0 to everything). Each batch of queries costs
    one (batch, n_base) similarity block, so memory stays at ``batch_size * n_base`` floats.

    Args:
        queries: float (n, d) dense array or CSR.
        base: float (m, d), the same kind of matrix.
        k: neighbours per query; clamped to the number of candidates (``m``, or ``m - 1`` with
            ``exclude_self``), so the result may have fewer than ``k`` columns on tiny data.
        exclude_self: leave out each query's own row (``queries`` must be the very same object as ``base``):
            neighbours of training documents among the training documents, without leakage.
        batch_size: queries per matrix product.

    Returns:
        (indices int64 (n, k'), similarities float32 (n, k')), each row sorted by decreasing similarity, ties
        broken by the smaller index.
    """
    if exclude_self and queries is not base:
        raise ValueError("exclude_self=True requires `queries is base` (neighbours of the base rows "
                         "themselves)")
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got k={k}, batch_size={batch_size}")
    if queries.shape[1] != base.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} columns but base has {base.shape[1]}")
    sparse = sp.issparse(base)
    b = _normalised(base)
    q = b if queries is base else _normalised(queries)
    n, m = q.shape[0], b.shape[0]
    kk = min(k, m - 1 if exclude_self else m)
    idx = np.zeros((n, max(kk, 0)), dtype=np.int64)
    sim = np.zeros((n, max(kk, 0)), dtype=np.float32)
    if kk <= 0 or n == 0:
        return idx, sim
    bt = b.T.tocsr() if sparse else b.T
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        block = _similarities(q[start:stop], bt)  # (batch, m)
        if exclude_self:
            rows = np.arange(stop - start)
            block[rows, start + rows] = -np.inf
        if kk < m:
            part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]  # (batch, kk) unordered
        else:
            part = np.broadcast_to(np.arange(m), block.shape).copy()
        vals = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)  # by similarity desc, then index asc
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        sim[start:stop] = np.take_along_axis(vals, order, axis=1)
    return idx, sim


#: most entries (batch x terms used) of the dense copy of a sparse query batch (64M floats: 256 MiB).
_DENSE_BATCH_MAX = 64 * 2**20


def _similarities(q: np.ndarray | sp.csr_matrix, bt: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Dense float32 (batch, m) block ``q @ bt``.

    Sparse inputs multiply a dense copy of the batch, cut to the terms it uses, by those rows of the CSR ``bt``
    (terms x m): the same numbers as the sparse x sparse product, whose output is a nearly dense CSR (every two
    documents share a common word), at 0.56x its CPU on EURLEX57K (``benchmarks/knn_cost.py``).
    """
    if not sp.issparse(q):
        return np.asarray(q @ bt, dtype=np.float32)
    terms = np.unique(q.indices)
    if q.shape[0] * len(terms) > _DENSE_BATCH_MAX:  # a huge vocabulary: keep the batch sparse
        return np.asarray((q @ bt).toarray(), dtype=np.float32)
    dense = q[:, terms].toarray()  # (batch, terms used)
    return np.asarray(dense @ bt[terms], dtype=np.float32)


def _normalised(x: np.ndarray | sp.spmatrix) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(x):
        return normalize(sp.csr_matrix(x, dtype=np.float32), norm="l2")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
