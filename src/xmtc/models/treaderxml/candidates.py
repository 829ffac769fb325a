"""Row-wise selection on the sparse score matrices of TReaderXML's teacher: the best entries of every row
(:func:`top_per_row`, which also ranks the teacher items), the values at chosen columns (:func:`gather_csr`),
the candidate shortlist of the prediction layer (:func:`shortlist`: the best teacher labels plus the labels of
the best label-tree leaf clusters) and its recall of the gold labels (:func:`shortlist_recall`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_per_row(m: sp.csr_matrix, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` largest entries of each CSR row, vectorised (no loop over rows).

    Returns:
        (columns int64 (n, size) -1 padded, values float32 (n, size)), best first, ties by smaller column.
    """
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    n = m.shape[0]
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((m.indices, -m.data, rows))  # by row, then score desc, then column asc
    pos = np.arange(len(order)) - np.repeat(m.indptr[:-1], counts)
    keep = pos < size
    cols = np.full((n, size), -1, dtype=np.int64)
    vals = np.zeros((n, size), dtype=np.float32)
    cols[rows[keep], pos[keep]] = m.indices[order][keep]
    vals[rows[keep], pos[keep]] = m.data[order][keep]
    return cols, vals


def gather_csr(m: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """float32 (n, C): ``m[r, cols[r, j]]`` (0 where ``cols`` is -1), without densifying ``m``."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    n, width = m.shape[1] + 1, cols.shape[1]
    keys = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)) * n + m.indices  # sorted
    want = np.arange(cols.shape[0])[:, None] * n + cols  # (n, C)
    out = np.zeros((cols.shape[0], width), dtype=np.float32)
    if len(keys) == 0:
        return out
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    hit = (cols >= 0) & (keys[pos] == want)
    out[hit] = m.data[pos[hit]]
    return out


def shortlist(label_scores: sp.csr_matrix, clusters: np.ndarray, n_labels: int, n_clusters: int,
              positives: sp.csr_matrix | None = None) -> np.ndarray:
    """Candidate labels of the prediction layer: the ``n_labels`` best teacher labels, every label of the
    ``n_clusters`` label-tree leaf clusters with the highest summed teacher scores, and ``positives`` when
    given (training, as AttentionXML adds the positives).

    Args:
        label_scores: CSR (n, L) teacher label scores
            (:attr:`~xmtc.models.treaderxml.teacher.TeacherOutput.label_scores`).
        clusters: int64 (L,) leaf cluster of every label.
        n_labels: teacher labels kept.
        n_clusters: clusters whose labels are all added.
        positives: optional CSR (n, L) gold labels.

    Returns:
        int64 (n, C) distinct label ids per row (in decreasing id order), -1 padded.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    L, n_cl = len(clusters), int(clusters.max()) + 1
    top, _ = top_per_row(label_scores, n_labels)  # (n, S)
    to_cluster = sp.csr_matrix((np.ones(L, dtype=np.float32), (np.arange(L), clusters)), shape=(L, n_cl))
    cl, _ = top_per_row(sp.csr_matrix(label_scores @ to_cluster), n_clusters)  # (n, c)
    order = np.argsort(clusters, kind="stable")
    counts = np.bincount(clusters, minlength=n_cl)
    table = np.full((n_cl, max(int(counts.max()), 1)), -1, dtype=np.int64)  # (n_clusters, M)
    table[clusters[order], np.arange(L) - np.repeat(np.cumsum(counts) - counts, counts)] = order
    members = table[np.maximum(cl, 0)]  # (n, c, M)
    members[cl < 0] = -1
    parts = [top, members.reshape(len(top), -1)]
    if positives is not None:
        positives = sp.csr_matrix(positives, dtype=np.float32)
        parts.append(top_per_row(positives, max(int(np.diff(positives.indptr).max(initial=0)), 1))[0])
    cand = np.sort(np.concatenate(parts, axis=1), axis=1)  # (n, C'), -1 first
    dup = np.zeros(cand.shape, dtype=bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    cand[dup] = -1
    cand = -np.sort(-cand, axis=1)  # distinct ids first (decreasing), -1 padding last
    width = max(int((cand >= 0).sum(axis=1).max(initial=0)), 1)
    return cand[:, :width]


def shortlist_recall(candidates: np.ndarray, Y: sp.csr_matrix) -> float:
    """Share of the gold labels of ``Y`` (n, L) that are among ``candidates`` (n, C), over all documents."""
    Y = sp.csr_matrix(Y)
    n_gold = Y.nnz
    if n_gold == 0:
        return 1.0
    rows = np.repeat(np.arange(len(candidates)), candidates.shape[1])
    cols = candidates.ravel()
    ok = cols >= 0
    C = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], cols[ok])), shape=Y.shape)
    return float(Y.multiply(C).nnz / n_gold)
