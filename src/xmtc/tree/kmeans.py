"""Balanced spherical k-means by recursive 2-means (the label clustering of Parabel and AttentionXML).

Every node of one depth is split at the same time with array operations only (no Python loop over labels or
nodes), so a depth costs a few passes over the non-zeros of the feature matrix per iteration:

* each node picks two of its labels at random (seeded) as initial centres;
* each label gets ``d = cos(x, c_right) - cos(x, c_left)``; within its node, the labels with the
  ``n_left`` smallest ``d`` go left, the others right (AttentionXML's ``split_node``: an exactly balanced
  split, ``n_left = floor(n / 2)`` for power-of-two cluster counts);
* centres become the L2-normalised sums of their labels; a node stops when its mean cosine to its own
  centre improves by less than ``tol`` (AttentionXML's ``eps``) or after ``max_iter`` iterations.

For sparse features, the similarity of every label to the centres of its own node is computed without
materialising any centre: the non-zeros are grouped by (node, feature) once per depth, and centre entries and
norms are segment sums (``np.bincount``) over those groups.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

log = logging.getLogger(__name__)


def balanced_kmeans(features: sp.spmatrix | np.ndarray, n_clusters: int, *, seed: int = 0, max_iter: int = 20,
                    tol: float = 1e-4) -> np.ndarray:
    """Cluster the rows of ``features`` into ``n_clusters`` balanced groups by recursive cosine 2-means.

    Cluster ids follow the recursion: the node covering clusters ``[a, b)`` splits into ``[a, m)`` and
    ``[m, b)`` with ``m = (a + b) // 2``. For ``n_clusters = 2**D`` the ancestor of cluster ``c`` at binary
    depth ``d`` is therefore ``c >> (D - d)`` (AttentionXML's level order). Cluster ``j`` gets exactly
    ``floor((j + 1) * L / K) - floor(j * L / K)`` rows (sizes differ by at most one).

    Args:
        features: (L, F) CSR or dense rows to cluster (e.g. PIFA label features); rows are L2-normalised
            inside, all-zero rows are allowed (they fill the places left in their node).
        n_clusters: number of clusters K, ``1 <= K <= L``.
        seed: seed of the initial centres; the same seed and input give the same clusters.
        max_iter: 2-means iterations per split.
        tol: stop a node's iterations when its mean cosine to its centre improves by less than this.

    Returns:
        int64 (L,) cluster id of each row.
    """
    n = features.shape[0]
    if not 1 <= n_clusters <= max(n, 1):
        raise ValueError(f"n_clusters must be between 1 and the number of rows ({n}), but is {n_clusters}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be positive, but is {max_iter}")
    lo = np.zeros(n, dtype=np.int64)  # each row's node covers clusters [lo, hi)
    hi = np.full(n, n_clusters, dtype=np.int64)
    if n_clusters == 1:
        return lo
    engine = _SparseSims(features) if sp.issparse(features) else _DenseSims(features)
    rng = np.random.default_rng(seed)
    depth = 0
    while (hi - lo).max() > 1:
        t0 = time.perf_counter()
        node_lo, node = np.unique(lo, return_inverse=True)  # nodes are disjoint: lo identifies a node
        node = node.reshape(-1).astype(np.int64)
        node_hi = np.zeros_like(node_lo)
        node_hi[node] = hi
        mid = (node_lo + node_hi) // 2
        n_left = (mid * n) // n_clusters - (node_lo * n) // n_clusters
        right = _split(engine, node, len(node_lo), n_left, rng, max_iter, tol)
        engine.refine(right)
        lo = np.where(right, mid[node], lo)
        hi = np.where(right, hi, mid[node])
        depth += 1
        log.debug("balanced k-means: depth %d, %d nodes split in %.2fs", depth, len(node_lo),
                  time.perf_counter() - t0)
    return lo


def _split(engine, node: np.ndarray, n_nodes: int, n_left: np.ndarray, rng: np.random.Generator,
           max_iter: int, tol: float) -> np.ndarray:
    """Balanced 2-means inside every node at once. Returns bool (L,): True = right child."""
    n = len(node)
    sizes = np.bincount(node, minlength=n_nodes)
    start = np.cumsum(sizes) - sizes
    members = np.argsort(node, kind="stable")  # labels grouped by node
    # Two distinct random members per node as initial centres (one member only in a node of size 1).
    p1 = np.floor(rng.random(n_nodes) * sizes).astype(np.int64)
    p2 = (p1 + 1 + np.floor(rng.random(n_nodes) * (sizes - 1)).astype(np.int64)) % np.maximum(sizes, 1)
    weights = np.zeros((n, 2), dtype=np.float32)
    weights[members[start + p1], 0] = 1.0
    weights[members[start + p2], 1] = 1.0
    engine.prepare(node, n_nodes)
    positions = np.arange(n)
    right = np.zeros(n, dtype=bool)
    active = np.ones(n_nodes, dtype=bool)
    old = np.full(n_nodes, -np.inf)
    sims = engine.sims(weights)  # (L, 2) cosine to own node's left / right centre
    for it in range(max_iter):
        order = np.lexsort((sims[:, 1] - sims[:, 0], node))  # by node, then preference for the left
        rank = positions - start[node[order]]
        new_right = np.empty(n, dtype=bool)
        new_right[order] = rank >= n_left[node[order]]
        right = new_right if it == 0 else np.where(active[node], new_right, right)
        obj = np.bincount(node, np.where(right, sims[:, 1], sims[:, 0]), minlength=n_nodes)
        obj /= np.maximum(sizes, 1)
        active &= obj - old >= tol
        old = obj
        if not active.any():
            break
        sims = engine.sims_sides(right)
    return right


class _SparseSims:
    """Cosine of every row to the two centres of its node, for CSR features.

    The non-zeros are kept sorted by (node of their row, feature): the root order is by feature, and after
    each split :meth:`refine` moves every node's right-child non-zeros behind its left-child ones (a stable
    partition, O(nnz)), so no depth needs a global sort and every segment sum runs over contiguous memory.
    """

    def __init__(self, features: sp.spmatrix):
        x = normalize(sp.csr_matrix(features, dtype=np.float32), norm="l2")
        x.sum_duplicates()
        self.n = x.shape[0]
        coo = x.tocoo()
        order = np.argsort(coo.col, kind="stable")
        self.rows = coo.row.astype(np.int64)[order]
        self.cols = coo.col.astype(np.int64)[order]
        self.vals = coo.data.astype(np.float64)[order]

    def prepare(self, node: np.ndarray, n_nodes: int) -> None:
        """Runs of equal (node, feature) in the stored order; ``node`` must agree with that order."""
        self.node, self.n_nodes = node, n_nodes
        self.nz_node = node[self.rows]  # non-decreasing
        nnz = len(self.rows)
        new_run = np.ones(nnz, dtype=bool)
        new_run[1:] = (self.nz_node[1:] != self.nz_node[:-1]) | (self.cols[1:] != self.cols[:-1])
        self.run_starts = np.flatnonzero(new_run)
        self.run = np.cumsum(new_run) - 1  # run id of each non-zero
        self.run_node = self.nz_node[self.run_starts]
        if nnz:
            # Sum of the whole node per run, and each row's dot product with it: left = whole - right.
            self.total = np.add.reduceat(self.vals, self.run_starts)
            self.total_dots = np.bincount(self.rows, self.vals * self.total[self.run], minlength=self.n)

    def sims(self, weights: np.ndarray) -> np.ndarray:
        """Cosines to the centres ``sum_j weights[j, s] * x_j`` (s = 0, 1) of each row's node."""
        out = np.zeros((self.n, 2), dtype=np.float64)
        if len(self.rows) == 0:
            return out
        for s in range(2):
            centre = np.add.reduceat(self.vals * weights[:, s][self.rows], self.run_starts)
            dots = np.bincount(self.rows, self.vals * centre[self.run], minlength=self.n)
            out[:, s] = self._cosine(dots, centre)
        return out

    def sims_sides(self, right: np.ndarray) -> np.ndarray:
        """Cosines to the centres of the left (``~right``) and right rows of each node (one pass, not two)."""
        out = np.zeros((self.n, 2), dtype=np.float64)
        if len(self.rows) == 0:
            return out
        centre_r = np.add.reduceat(np.where(right[self.rows], self.vals, 0.0), self.run_starts)
        dots_r = np.bincount(self.rows, self.vals * centre_r[self.run], minlength=self.n)
        out[:, 0] = self._cosine(self.total_dots - dots_r, self.total - centre_r)
        out[:, 1] = self._cosine(dots_r, centre_r)
        return out

    def _cosine(self, dots: np.ndarray, centre: np.ndarray) -> np.ndarray:
        denom = np.sqrt(np.bincount(self.run_node, centre * centre, minlength=self.n_nodes))[self.node]
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)

    def refine(self, right: np.ndarray) -> None:
        """Reorder the non-zeros for the next depth: within each node, left child first (stable)."""
        nnz = len(self.rows)
        if nnz == 0:
            return
        is_right = right[self.rows]
        seg = self.nz_node
        counts = np.bincount(seg, minlength=self.n_nodes)
        seg_start = np.cumsum(counts) - counts
        left_before = np.concatenate([[0], np.cumsum(~is_right)])  # exclusive prefix count of lefts
        left_in_seg = left_before[:-1] - left_before[seg_start][seg]  # lefts before it in its node
        n_left_seg = left_before[seg_start + counts] - left_before[seg_start]
        pos_in_seg = np.arange(nnz) - seg_start[seg]
        new_pos = seg_start[seg] + np.where(is_right, n_left_seg[seg] + pos_in_seg - left_in_seg, left_in_seg)
        order = np.empty(nnz, dtype=np.int64)
        order[new_pos] = np.arange(nnz)
        self.rows, self.cols, self.vals = self.rows[order], self.cols[order], self.vals[order]


class _DenseSims:
    """Cosine of every row to the two centres of its node, for dense features."""

    _CHUNK = 65536

    def __init__(self, features: np.ndarray):
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"features must be 2-D, got shape {x.shape}")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        self.x = x / np.where(norms > 0, norms, 1.0)
        self.n = x.shape[0]

    def prepare(self, node: np.ndarray, n_nodes: int) -> None:
        self.node, self.n_nodes = node, n_nodes

    def refine(self, right: np.ndarray) -> None:
        pass

    def sims_sides(self, right: np.ndarray) -> np.ndarray:
        return self.sims(np.stack([~right, right], axis=1).astype(np.float32))

    def sims(self, weights: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n, 2), dtype=np.float64)
        rows = np.arange(self.n)
        for s in range(2):
            assign = sp.csr_matrix((weights[:, s], (self.node, rows)), shape=(self.n_nodes, self.n))
            centres = np.asarray(assign @ self.x, dtype=np.float32)  # (n_nodes, F)
            norms = np.linalg.norm(centres, axis=1, keepdims=True)
            centres /= np.where(norms > 0, norms, 1.0)
            for a in range(0, self.n, self._CHUNK):
                b = min(a + self._CHUNK, self.n)
                out[a:b, s] = np.einsum("ij,ij->i", self.x[a:b], centres[self.node[a:b]])
        return out
