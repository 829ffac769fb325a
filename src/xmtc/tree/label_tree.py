"""Shallow-and-wide probabilistic label tree (AttentionXML; LightAttention Section III-B, Algorithm 1).

Construction:

1. A deep balanced binary tree ``T_0`` (Parabel): recursive balanced cosine 2-means over label features
   (PIFA) down to binary depth ``D``, the smallest depth whose nodes hold at most ``cluster_size`` (= M)
   labels each. The nodes at depth ``D`` are the *leaf clusters*; every label is in exactly one.
2. Compression (Algorithm 1 with ``K = 2**c``): keep only every ``c``-th binary depth going up from the leaf
   clusters (``D, D - c, D - 2c, ...``) and re-attach each kept node to its nearest kept ancestor, so that
   every internal node has up to ``K`` children; the top kept level hangs from the (implicit) root and may
   be wide.

The tree is stored by levels: level 0 holds the children of the root, level ``n_levels - 1`` the leaf
clusters and level ``n_levels`` the L labels. ``parents[l][j]`` is the parent (in level ``l - 1``) of node
``j`` of level ``l``. Node ids follow the binary recursion, so the children of node ``j`` are the contiguous
ids ``j * 2**g ... (j + 1) * 2**g - 1`` for a depth gap ``g`` (``g = c``: AttentionXML's
``get_inter_groups`` layout), except for the labels under a leaf cluster (any label ids).

Mapping to AttentionXML's settings (its ``cluster.max_leaf``, ``cluster.levels`` and ``k``):
``cluster_size`` is ``max_leaf`` (= M); ``branching`` is ``k`` (= K); the binary depths in ``levels`` are
``[log2(n_top), ..., D]``, i.e. ``n_top = 2**levels[0]``. Its released configs give: Amazon-670K
``max_leaf=8, k=8, levels=[11, 14, 17]`` = ``build(V, cluster_size=8, branching=8, n_top=2048)`` (levels of
2048, 16384 and 131072 nodes, then 670,091 labels); Wiki-500K ``max_leaf=64, levels=[13]`` =
``build(V, cluster_size=64, n_top=8192)`` (one level of 8192 clusters of about 61 labels); EUR-Lex and
Wiki10-31K use no tree (a flat output layer). The paper's height ``H`` (levels excluding root and labels) is
``n_levels``; ``build(..., height=H)`` fixes it instead of ``n_top``. For EURLex-sized label sets (4k
labels), ``cluster_size=8, n_top=256`` gives 256 top clusters over 1024 leaf clusters of 4-5 labels;
LightAttention's flat cluster -> label tree is ``build(V, cluster_size=M, height=1)``, or
:meth:`LabelTree.from_groups` for given clusters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.errors import ConfigError, DataError, ModelLoadError
from xmtc.tree.kmeans import balanced_kmeans

_FORMAT_VERSION = 1


class LabelTree:
    """A label tree stored level by level (see the module docstring).

    Attributes:
        level_sizes: number of nodes in each level; ``level_sizes[-1]`` is the number of labels L.
        parents: ``parents[l]`` int64 (level_sizes[l],), parent in level ``l - 1`` of each node of level
            ``l``; ``parents[0]`` is all -1 (children of the root).
    """

    def __init__(self, parents: Sequence[np.ndarray]):
        """Build from parent arrays (``parents[0]`` all -1, the last level being the labels); validated."""
        if len(parents) < 1:
            raise DataError("a label tree needs at least one level (the labels)")
        self.parents: list[np.ndarray] = [np.asarray(p, dtype=np.int64).reshape(-1) for p in parents]
        self.level_sizes: list[int] = [len(p) for p in self.parents]
        if np.any(self.parents[0] != -1):
            raise DataError("parents[0] must be all -1 (level 0 hangs from the root)")
        for level in range(1, len(self.parents)):
            p = self.parents[level]
            if len(p) and (p.min() < 0 or p.max() >= self.level_sizes[level - 1]):
                raise DataError(f"parents[{level}] must be in [0, {self.level_sizes[level - 1]}), but holds "
                                f"{p.min()}..{p.max()}")
            counts = np.bincount(p, minlength=self.level_sizes[level - 1])
            if np.any(counts == 0):
                raise DataError(f"node {int(np.argmin(counts))} of level {level - 1} has no children")
        # Children of each node as CSR-like (ptr, ids) per level, for children().
        self._child_ptr: list[np.ndarray] = []
        self._child_ids: list[np.ndarray] = []
        for level in range(1, len(self.parents)):
            p = self.parents[level]
            counts = np.bincount(p, minlength=self.level_sizes[level - 1])
            self._child_ptr.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            self._child_ids.append(np.argsort(p, kind="stable").astype(np.int64))
        self._ancestors: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, label_features: sp.spmatrix | np.ndarray, *, cluster_size: int = 8,
              n_top: int | None = None, height: int | None = None, branching: int | None = None,
              seed: int = 0, max_iter: int = 20, tol: float = 1e-4) -> LabelTree:
        """Shallow-and-wide tree over the labels (rows of ``label_features``).

        Args:
            label_features: (L, F) label representations, e.g. :func:`xmtc.tree.pifa` (CSR or dense).
            cluster_size: M, the most labels a leaf cluster may hold (>= 2). Leaf clusters sit at binary depth
                ``D = min{d : ceil(L / 2**d) <= M}``, so they hold between about M/2 and M labels.
            n_top: wanted number of top-level nodes; the top level is at binary depth ``ceil(log2(n_top))``
                (clamped to ``[1, D]``), so it has the smallest power of two >= ``n_top`` nodes. Levels below
                it are every ``c`` depths up from the leaf clusters; one that would sit less than ``c / 2``
                depths below the top is dropped (so top nodes get between ``2**(c/2)`` and ``2**(1.5c)``
                children).
            height: instead of ``n_top``, the number of node levels ``H`` (leaf clusters included); levels
                that would go above binary depth 1 are dropped. With neither, levels go up to the shallowest
                depth ``>= 1`` (a root fan-out of at most K).
            branching: K = 2**c children per internal node (power of two, default: the smallest power of two
                >= ``cluster_size``, the paper's ``M = K``).
            seed: clustering seed (same seed and features -> same tree).
            max_iter: 2-means iterations per split.
            tol: 2-means convergence threshold (AttentionXML's ``eps``).

        Returns:
            The tree; ``n_levels >= 1`` (a single leaf cluster when ``L <= cluster_size``).
        """
        n_labels = label_features.shape[0]
        if n_labels < 1:
            raise DataError("cannot build a label tree without labels")
        if cluster_size < 2:
            raise ConfigError(f"cluster_size must be at least 2, but is {cluster_size}")
        if n_top is not None and height is not None:
            raise ConfigError("give either n_top or height for the label tree, not both")
        if n_top is not None and n_top < 1:
            raise ConfigError(f"n_top must be positive, but is {n_top}")
        if height is not None and height < 1:
            raise ConfigError(f"height must be positive, but is {height}")
        if branching is None:
            branching = 1 << int(np.ceil(np.log2(cluster_size)))
        if branching < 2 or branching & (branching - 1):
            raise ConfigError(f"branching must be a power of two >= 2, but is {branching}")
        c = branching.bit_length() - 1
        depth = 0
        while -(-n_labels // (1 << depth)) > cluster_size:
            depth += 1
        depths = _level_depths(depth, c, n_top, height)
        clusters = balanced_kmeans(label_features, 1 << depth, seed=seed, max_iter=max_iter, tol=tol)
        parents = [np.full(1 << depths[0], -1, dtype=np.int64)]
        for prev, cur in zip(depths[:-1], depths[1:], strict=True):
            parents.append(np.arange(1 << cur, dtype=np.int64) >> (cur - prev))
        parents.append(clusters)
        return cls(parents)

    @classmethod
    def from_groups(cls, label_to_cluster: np.ndarray, n_clusters: int | None = None) -> LabelTree:
        """Flat two-level tree (clusters -> labels), LightAttention's label clusters.

        Args:
            label_to_cluster: int (L,) cluster of each label.
            n_clusters: number of clusters (default ``max + 1``); every cluster must hold a label.
        """
        g = np.asarray(label_to_cluster, dtype=np.int64).reshape(-1)
        if len(g) == 0:
            raise DataError("cannot build a label tree without labels")
        k = int(g.max()) + 1 if n_clusters is None else n_clusters
        return cls([np.full(k, -1, dtype=np.int64), g])

    @classmethod
    def from_clusters(cls, clusters: Sequence[Sequence[int]], n_labels: int) -> LabelTree:
        """Flat two-level tree from lists of label ids; every label must be in exactly one cluster."""
        g = np.full(n_labels, -1, dtype=np.int64)
        for j, members in enumerate(clusters):
            members = np.asarray(members, dtype=np.int64)
            if np.any(g[members] >= 0):
                raise DataError(f"cluster {j} repeats a label that is already in another cluster")
            g[members] = j
        if np.any(g < 0):
            raise DataError(f"label {int(np.argmin(g))} is in no cluster")
        return cls.from_groups(g, len(clusters))

    # ------------------------------------------------------------------ queries
    @property
    def n_levels(self) -> int:
        """Number of node levels above the labels (the paper's height H)."""
        return len(self.level_sizes) - 1

    @property
    def n_labels(self) -> int:
        return self.level_sizes[-1]

    @property
    def label_to_leaf_cluster(self) -> np.ndarray:
        """int64 (L,) leaf cluster (node of level ``n_levels - 1``) of each label."""
        if self.n_levels == 0:
            raise DataError("a tree without node levels has no leaf clusters")
        return self.parents[-1]

    def leaf_clusters(self) -> list[np.ndarray]:
        """Label ids of each leaf cluster (sorted)."""
        ptr, ids = self._child_ptr[-1], self._child_ids[-1]
        return [ids[ptr[j]:ptr[j + 1]] for j in range(len(ptr) - 1)]

    def ancestors(self, level: int) -> np.ndarray:
        """int64 (L,): the node of ``level`` above each label (``level == n_levels``: the labels)."""
        level = self._check_level(level)
        if level not in self._ancestors:
            if level == self.n_levels:
                self._ancestors[level] = np.arange(self.n_labels, dtype=np.int64)
            else:
                self._ancestors[level] = self.parents[level + 1][self.ancestors(level + 1)]
        return self._ancestors[level]

    def children(self, level: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Children (in level ``level + 1``) of several nodes of ``level``, vectorised.

        Args:
            level: level of ``nodes``, ``0 <= level < n_levels``.
            nodes: int node ids of that level, any shape (flattened in C order).

        Returns:
            (child_ids int64 (total,), owner int64 (total,)): ``owner[i]`` is the position in the flattened
            ``nodes`` whose child is ``child_ids[i]``; children of one node are contiguous and ascending.
        """
        if not 0 <= level < self.n_levels:
            raise IndexError(f"level must be in [0, {self.n_levels}), but is {level}")
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        if len(nodes) and (nodes.min() < 0 or nodes.max() >= self.level_sizes[level]):
            raise IndexError(f"node ids of level {level} must be in [0, {self.level_sizes[level]})")
        ptr, ids = self._child_ptr[level], self._child_ids[level]
        counts = ptr[nodes + 1] - ptr[nodes]
        owner = np.repeat(np.arange(len(nodes), dtype=np.int64), counts)
        offsets = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        return ids[ptr[nodes][owner] + offsets], owner

    def n_children(self, level: int) -> np.ndarray:
        """int64 (level_sizes[level],) number of children of each node of ``level``."""
        return np.diff(self._child_ptr[self._check_level(level)])

    def targets(self, Y: sp.spmatrix, level: int) -> sp.csr_matrix:
        """Node targets: node ``j`` of ``level`` is positive for a document iff one of its labels is.

        Args:
            Y: (n, L) label matrix (non-zeros are positives).
            level: ``0 <= level <= n_levels`` (``n_levels`` gives the binarised ``Y``).

        Returns:
            CSR float32 (n, level_sizes[level]) of ones, sorted indices.
        """
        Y = sp.csr_matrix(Y)
        if Y.shape[1] != self.n_labels:
            raise DataError(f"label matrix has {Y.shape[1]} columns but the tree has {self.n_labels} labels")
        Y = Y.copy()
        Y.eliminate_zeros()
        cols = self.ancestors(level)[Y.indices]
        T = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, Y.indptr.copy()),
                          shape=(Y.shape[0], self.level_sizes[level]))
        T.sum_duplicates()
        T.data[:] = 1.0
        return T

    def _check_level(self, level: int) -> int:
        if not 0 <= level <= self.n_levels:
            raise IndexError(f"level must be in [0, {self.n_levels}], but is {level}")
        return level

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelTree) and self.level_sizes == other.level_sizes
                and all(np.array_equal(a, b) for a, b in zip(self.parents, other.parents, strict=True)))

    def __repr__(self) -> str:
        return f"LabelTree(level_sizes={self.level_sizes})"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, prefix: str = "tree") -> list[str]:
        """Write ``{prefix}.npz`` (parent arrays, no pickle) into the folder ``path``; returns file names."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}.npz"
        arrays = {f"parents_{level}": p for level, p in enumerate(self.parents)}
        arrays["format_version"] = np.asarray(_FORMAT_VERSION, dtype=np.int64)
        arrays["level_sizes"] = np.asarray(self.level_sizes, dtype=np.int64)
        np.savez(path / name, **arrays)
        return [name]

    @classmethod
    def load(cls, path: str | Path, prefix: str = "tree") -> LabelTree:
        """Read a tree written by :meth:`save` (``allow_pickle=False``), checking its consistency."""
        f = Path(path) / f"{prefix}.npz"
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ModelLoadError(f"{f}: label tree file missing") from None
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{f}: cannot read the label tree ({e})") from None
        if int(arrays.get("format_version", -1)) != _FORMAT_VERSION:
            raise ModelLoadError(f"{f}: label tree format {arrays.get('format_version')} is not supported")
        sizes = arrays.get("level_sizes")
        try:
            parents = [arrays[f"parents_{level}"] for level in range(len(sizes))]
            tree = cls(parents)
        except (KeyError, TypeError, DataError) as e:
            raise ModelLoadError(f"{f}: inconsistent label tree ({e})") from None
        if tree.level_sizes != [int(s) for s in sizes]:
            raise ModelLoadError(f"{f}: level sizes {tree.level_sizes} do not match the stored "
                                 f"{sizes.tolist()}")
        return tree


def _level_depths(depth: int, c: int, n_top: int | None, height: int | None) -> list[int]:
    """Binary depths of the kept levels, top first, ending with the leaf-cluster depth ``depth``."""
    if depth == 0:
        return [0]
    if n_top is not None:
        top = min(max(int(np.ceil(np.log2(n_top))), 1), depth)
        below = [d for d in range(depth - c * ((depth - top) // c), depth + 1, c) if d > top]
        if len(below) > 1 and below[0] - top < c / 2:
            below = below[1:]  # avoid a top level with only 2 or so children per node
        return [top, *below]
    levels = [d for d in range(depth, 0, -c)]
    if height is not None:
        levels = levels[:height]
    return levels[::-1]
