"""Probabilistic label tree levels as used by the level-wise deep models (AttentionXML, LightAttention III-B).

:class:`TreeLevels` is the array view a deep model needs of a shallow-and-wide label tree: the node count of
each level (top level first, the last level is the labels themselves) and the parent of every node in the
level above. From these it derives padded children tables, per-level targets and the candidate sets used to
train a level on the top-C nodes of the level above plus the positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from xmtc.errors import ModelLoadError


@dataclass
class TreeLevels:
    """Levels of a label tree.

    Attributes:
        sizes: node count per level, top level first; ``sizes[-1]`` is the number of labels (leaf = label id).
        parents: ``parents[i]`` int64 (sizes[i+1],): parent (a node id of level i) of every node of level i+1.
    """

    sizes: list[int]
    parents: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sizes = [int(s) for s in self.sizes]
        self.parents = [np.asarray(p, dtype=np.int64) for p in self.parents]
        if len(self.parents) != len(self.sizes) - 1:
            raise ValueError(f"{len(self.sizes)} levels need {len(self.sizes) - 1} parent arrays, "
                             f"got {len(self.parents)}")
        for i, p in enumerate(self.parents):
            if p.shape != (self.sizes[i + 1],) or (len(p) and (p.min() < 0 or p.max() >= self.sizes[i])):
                raise ValueError(f"parents[{i}] must map {self.sizes[i + 1]} nodes into "
                                 f"0..{self.sizes[i] - 1}")
        self._children: dict[int, np.ndarray] = {}
        self._ancestors: dict[int, np.ndarray] = {}

    @classmethod
    def flat(cls, n_labels: int) -> TreeLevels:
        """One level holding every label (no tree)."""
        return cls([n_labels], [])

    @classmethod
    def from_label_tree(cls, tree) -> TreeLevels:
        """Levels of an :class:`xmtc.tree.LabelTree` (its ``level_sizes`` and ``parents``)."""
        sizes = [int(s) for s in tree.level_sizes]
        parents = [np.asarray(p, dtype=np.int64) for p in tree.parents]
        if len(parents) == len(sizes):  # parents of the top level point at a single root: drop them
            parents = parents[1:]
        return cls(sizes, parents)

    @property
    def n_levels(self) -> int:
        return len(self.sizes)

    @property
    def n_labels(self) -> int:
        return self.sizes[-1]

    def children(self, level: int) -> np.ndarray:
        """Padded children table of ``level``: int64 (sizes[level], max_children), ``-1`` padded."""
        if level not in self._children:
            p = self.parents[level]
            order = np.argsort(p, kind="stable")
            counts = np.bincount(p, minlength=self.sizes[level])
            width = max(int(counts.max()) if len(counts) else 1, 1)
            table = np.full((self.sizes[level], width), -1, dtype=np.int64)
            start = np.cumsum(counts) - counts
            col = np.arange(len(order)) - np.repeat(start, counts)
            table[p[order], col] = order
            self._children[level] = table
        return self._children[level]

    def ancestors(self, level: int) -> np.ndarray:
        """int64 (n_labels,): the node of ``level`` above each label."""
        if level not in self._ancestors:
            anc = np.arange(self.n_labels, dtype=np.int64)
            for i in range(self.n_levels - 2, level - 1, -1):
                anc = self.parents[i][anc]
            self._ancestors[level] = anc
        return self._ancestors[level]

    def targets(self, Y: sp.csr_matrix, level: int) -> sp.csr_matrix:
        """Binary CSR (n, sizes[level]): a node is positive when one of its labels is (PLT ``z_n``)."""
        Y = sp.csr_matrix(Y)
        if level == self.n_levels - 1:
            out = Y.copy()
        else:
            anc = self.ancestors(level)
            A = sp.csr_matrix((np.ones(self.n_labels, dtype=np.float32), (np.arange(self.n_labels), anc)),
                              shape=(self.n_labels, self.sizes[level]))
            out = sp.csr_matrix(Y @ A)
        out.data[:] = 1.0
        out.eliminate_zeros()
        out.sort_indices()
        return out.astype(np.float32)

    # ----------------------------------------------------------------- persistence
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {f"{prefix}sizes": np.asarray(self.sizes, dtype=np.int64)}
        out.update({f"{prefix}parents{i}": p for i, p in enumerate(self.parents)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> TreeLevels:
        try:
            sizes = arrays[f"{prefix}sizes"].tolist()
            return cls(sizes, [arrays[f"{prefix}parents{i}"] for i in range(len(sizes) - 1)])
        except (KeyError, ValueError) as e:
            raise ModelLoadError(f"label tree arrays {prefix!r} are incomplete or inconsistent "
                                 f"({e})") from None


def training_candidates(top_parents: np.ndarray, positive_parents: sp.csr_matrix, children: np.ndarray,
                        n_parents: int) -> np.ndarray:
    """Candidate nodes for training a level: the children of each document's positive parents plus its
    highest-scoring predicted parents, ``n_parents`` parents in all (more when it has more positives).

    Args:
        top_parents: int64 (b, C') predicted parents, best first (``-1`` padded).
        positive_parents: CSR (b, n_upper) positive parents of the documents.
        children: int64 (n_upper, max_children) children table of the upper level.
        n_parents: C, parents expanded per document.

    Returns:
        int64 (b, W) candidate node ids, ``-1`` padded (W = max parents in the batch * max_children).
    """
    rows = []
    for r in range(top_parents.shape[0]):
        pos = positive_parents.indices[positive_parents.indptr[r]: positive_parents.indptr[r + 1]]
        pred = top_parents[r][top_parents[r] >= 0]
        extra = pred[~np.isin(pred, pos)][: max(0, n_parents - len(pos))]
        rows.append(np.concatenate([pos.astype(np.int64), extra.astype(np.int64)]))
    width = max(max((len(p) for p in rows), default=1), 1)
    parents = np.full((len(rows), width), -1, dtype=np.int64)
    for r, p in enumerate(rows):
        parents[r, : len(p)] = p
    cand = children[np.maximum(parents, 0)]  # (b, width, max_children)
    cand[parents < 0] = -1
    return cand.reshape(len(rows), -1)


def candidate_targets(candidates: np.ndarray, Y: sp.csr_matrix) -> np.ndarray:
    """float32 (b, W): 1 where candidate node ``candidates[r, j]`` is positive in row ``r`` of ``Y``."""
    Y = sp.csr_matrix(Y)
    b, w = candidates.shape
    n_cols = Y.shape[1] + 1
    row_of_nz = np.repeat(np.arange(b), np.diff(Y.indptr))
    pos_keys = row_of_nz * n_cols + Y.indices
    cand_keys = np.arange(b)[:, None] * n_cols + candidates
    hit = np.isin(cand_keys, pos_keys) & (candidates >= 0)
    return hit.astype(np.float32)
