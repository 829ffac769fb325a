"""Label-side helpers of MAACF+: global nearest label groups by CF-IDF (Section 3.2.1, Eq. 1-3), negative
label sampling for the pairwise loss (Section 3.3) and shortlist recall.

CF-IDF treats a label like a document term: for the target label i and another label j,

* ``CF_ij = count(i, j) / N`` (Eq. 1): the share of the N training documents tagged with both labels;
* ``IDF_j = log(N / count(j))`` (Eq. 2): rare labels weigh more, a label on every document weighs 0;
* ``CF-IDF_ij = CF_ij * IDF_j`` (Eq. 3).

The k labels j with the highest CF-IDF for label i form its group ``g_i``. Everything is computed with sparse
matrix products (the co-occurrence counts are ``Y^T Y``) and one vectorised sort of the nonzeros: there is no
Python loop over labels or label pairs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from xmtc.errors import DataError


def cf_idf(Y: sp.spmatrix) -> sp.csr_matrix:
    """CF-IDF of label co-occurrence (Eq. 1-3) over a training label matrix.

    Args:
        Y: CSR (N, L) training labels (any nonzero counts as a label).

    Returns:
        CSR (L, L) float64 with ``M[i, j] = count(i, j) / N * log(N / count(j))`` for ``i != j``; zero
        entries (no co-occurrence, or ``j`` on every document) are not stored.
    """
    Y = sp.csr_matrix(Y)
    n_docs = Y.shape[0]
    if n_docs == 0:
        raise DataError("CF-IDF needs at least one training document")
    B = sp.csr_matrix((np.ones(Y.nnz), Y.indices, Y.indptr), shape=Y.shape)
    B.sum_duplicates()
    B.data[:] = 1.0  # binary: a label counts once per document
    co = (B.T @ B).tocsr()  # (L, L) co-occurrence counts count(i, j); diagonal = count(i)
    counts = co.diagonal()  # (L,) documents per label
    co.setdiag(0.0)
    co.eliminate_zeros()
    idf = np.log(n_docs / np.maximum(counts, 1.0))  # (L,) Eq. 2
    M = (co @ sp.diags(idf)).tocsr() / n_docs  # Eq. 1 * Eq. 2 = Eq. 3
    M.eliminate_zeros()
    M.sort_indices()
    return M


def nearest_label_groups(Y: sp.spmatrix, k: int) -> np.ndarray:
    """The global nearest label group of every label: its ``k`` labels of highest CF-IDF.

    Args:
        Y: CSR (N, L) training labels.
        k: group size (the paper's default is 2; 0 gives an empty group).

    Returns:
        int64 (L, k): group member ids sorted by decreasing CF-IDF (ties: lower label id first), padded
        with -1 where a label co-occurs with fewer than ``k`` informative labels.
    """
    if k < 0:
        raise DataError(f"label group size k must be >= 0, but is {k}")
    n_labels = Y.shape[1]
    groups = np.full((n_labels, k), -1, dtype=np.int64)
    if k == 0:
        return groups
    M = cf_idf(Y).tocoo()
    order = np.lexsort((M.col, -M.data, M.row))  # by row, then decreasing CF-IDF, then column
    rows, cols = M.row[order].astype(np.int64), M.col[order].astype(np.int64)
    starts = np.searchsorted(rows, np.arange(n_labels))  # (L,) first nonzero of each row
    rank = np.arange(len(rows)) - starts[rows]  # position of each nonzero within its row
    keep = rank < k
    groups[rows[keep], rank[keep]] = cols[keep]
    return groups


def sample_negatives(positives: torch.Tensor, is_positive: torch.Tensor, n_neg: int,
                     generator: torch.Generator | None = None,
                     rounds: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform negative labels for each positive pair (labels the document is not tagged with).

    Collisions with a positive label are redrawn ``rounds`` times; the pairs still colliding after that
    (only possible when a document carries most of the labels) are masked out.

    Args:
        positives: (batch, p) int64 positive label ids (padding entries are ignored by the caller).
        is_positive: (batch, L) bool, True at each document's gold labels.
        n_neg: Neg, negatives drawn per positive.
        generator: torch generator on the same device (None: torch's global RNG, which the training
            loop seeds and checkpoints).
        rounds: redraws of colliding samples.

    Returns:
        (negatives (batch, p, n_neg) int64, valid (batch, p, n_neg) bool).
    """
    batch, p = positives.shape
    n_labels = is_positive.shape[1]
    dev = positives.device
    neg = torch.randint(n_labels, (batch, p, n_neg), generator=generator, device=dev)
    rows = torch.arange(batch, device=dev).view(batch, 1, 1)
    bad = is_positive[rows, neg]  # (batch, p, n_neg)
    for _ in range(rounds):
        if not bool(bad.any()):
            break
        redraw = torch.randint(n_labels, neg.shape, generator=generator, device=dev)
        neg = torch.where(bad, redraw, neg)
        bad = is_positive[rows, neg]
    return neg, ~bad


def sample_hard_negatives(candidates: torch.Tensor, is_positive: torch.Tensor, p: int,
                          n_neg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Negatives drawn uniformly from each document's shortlist (e.g. the top labels of a linear head).

    Args:
        candidates: (batch, c) int64 shortlisted label ids (-1 = padding, never drawn as valid).
        is_positive: (batch, L) bool gold labels.
        p: positives per document (one draw of ``n_neg`` per positive).
        n_neg: negatives per positive.

    Returns:
        (negatives (batch, p, n_neg) int64, valid (batch, p, n_neg) bool: False where a gold label was
        drawn).
    """
    batch, c = candidates.shape
    pick = torch.randint(c, (batch, p * n_neg), device=candidates.device)
    neg = torch.gather(candidates, 1, pick).view(batch, p, n_neg)
    pad = neg < 0
    neg = neg.clamp(min=0)
    rows = torch.arange(batch, device=candidates.device).view(batch, 1, 1)
    return neg, ~(is_positive[rows, neg] | pad)


def shortlist_recall(candidates: np.ndarray, Y: sp.spmatrix) -> float:
    """Share of the gold (document, label) pairs whose label is among the document's candidates.

    Args:
        candidates: int (n, c) label ids per document, -1 = padding.
        Y: CSR (n, L) gold labels.

    Returns:
        recall in [0, 1] (1.0 when there is no gold label).
    """
    Y = sp.csr_matrix(Y)
    if candidates.shape[0] != Y.shape[0]:
        raise DataError(f"candidates have {candidates.shape[0]} rows but Y has {Y.shape[0]}")
    n, c = candidates.shape
    rows = np.repeat(np.arange(n), c)
    cols = candidates.reshape(-1)
    ok = cols >= 0
    C = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok])), shape=Y.shape)
    C.data[:] = 1.0
    gold = sp.csr_matrix((np.ones(Y.nnz), Y.indices, Y.indptr), shape=Y.shape)
    total = gold.nnz
    return float(gold.multiply(C).sum() / total) if total else 1.0
