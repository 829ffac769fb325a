"""PIFA label features, balanced recursive 2-means and the shallow-and-wide label tree."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmtc.errors import ConfigError, DataError, ModelLoadError
from xmtc.tree import LabelTree, balanced_kmeans, pifa


def _planted(n_groups: int, per_group: int, dim: int = 64, seed: int = 0, sparse: bool = True):
    """Label features in ``n_groups`` well-separated groups (disjoint feature blocks plus noise)."""
    rng = np.random.default_rng(seed)
    block = dim // n_groups
    X = rng.random((n_groups * per_group, dim)) * 0.05
    truth = np.repeat(np.arange(n_groups), per_group)
    for g in range(n_groups):
        X[truth == g, g * block:(g + 1) * block] += rng.random((per_group, block)) + 1.0
    perm = rng.permutation(len(truth))
    X, truth = X[perm], truth[perm]
    return (sp.csr_matrix(X.astype(np.float32)) if sparse else X.astype(np.float32)), truth


# ---------------------------------------------------------------- PIFA
def test_pifa_toy_case():
    X = sp.csr_matrix(np.array([[3, 4, 0], [0, 0, 2], [1, 0, 0]], dtype=np.float32))
    Y = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32))
    V = pifa(X, Y)
    assert V.shape == (3, 3) and V.dtype == np.float32 and sp.isspmatrix_csr(V)
    # label 0: normalize([0.6, 0.8, 0] + [0, 0, 1]); label 1: normalize([0, 0, 1] + [1, 0, 0]); label 2: none
    s0 = np.array([0.6, 0.8, 1.0]) / np.sqrt(0.36 + 0.64 + 1.0)
    s1 = np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0)
    assert np.allclose(V.toarray(), [s0, s1, [0, 0, 0]], atol=1e-6)
    assert V[2].nnz == 0
    with pytest.raises(ValueError):
        pifa(X, Y[:2])


# ---------------------------------------------------------------- balanced k-means
@pytest.mark.parametrize("sparse", [True, False])
def test_balanced_kmeans_recovers_planted_groups(sparse):
    V, truth = _planted(8, 12, sparse=sparse)
    clusters = balanced_kmeans(V, 8, seed=0)
    assert np.bincount(clusters).tolist() == [12] * 8
    # every cluster is exactly one planted group
    assert len({(c, t) for c, t in zip(clusters, truth, strict=True)}) == 8


@pytest.mark.parametrize("n,k", [(10, 3), (37, 8), (5, 5), (9, 1)])
def test_balanced_kmeans_sizes(n, k):
    V = sp.random(n, 20, density=0.3, random_state=1, format="csr", dtype=np.float32)
    clusters = balanced_kmeans(V, k, seed=0)
    expect = [(j + 1) * n // k - j * n // k for j in range(k)]
    assert np.bincount(clusters, minlength=k).tolist() == expect


def test_balanced_kmeans_sparse_equals_dense_and_is_seeded():
    V = sp.random(300, 40, density=0.1, random_state=2, format="csr", dtype=np.float32)
    a = balanced_kmeans(V, 16, seed=5)
    assert np.array_equal(a, balanced_kmeans(V, 16, seed=5))
    assert np.array_equal(a, balanced_kmeans(V.toarray(), 16, seed=5))
    assert not np.array_equal(a, balanced_kmeans(V, 16, seed=6))
    with pytest.raises(ValueError):
        balanced_kmeans(V, 301)


def test_balanced_kmeans_zero_rows():
    V = sp.csr_matrix((6, 4), dtype=np.float32)
    assert np.bincount(balanced_kmeans(V, 2, seed=0)).tolist() == [3, 3]


# ---------------------------------------------------------------- label tree
def _check_invariants(tree: LabelTree, n_labels: int, cluster_size: int) -> None:
    assert tree.level_sizes[-1] == n_labels == tree.n_labels
    assert len(tree.parents) == tree.n_levels + 1
    assert np.all(tree.parents[0] == -1)
    leaf = tree.label_to_leaf_cluster
    sizes = np.bincount(leaf, minlength=tree.level_sizes[-2])
    assert sizes.sum() == n_labels and sizes.min() >= 1 and sizes.max() <= cluster_size
    clusters = tree.leaf_clusters()
    assert sorted(np.concatenate(clusters).tolist()) == list(range(n_labels))
    for level in range(1, tree.n_levels + 1):
        p = tree.parents[level]
        assert p.dtype == np.int64 and len(p) == tree.level_sizes[level]
        assert set(p.tolist()) == set(range(tree.level_sizes[level - 1]))  # every node has a child
        # children() inverts parents
        nodes = np.arange(tree.level_sizes[level - 1])
        kids, owner = tree.children(level - 1, nodes)
        assert sorted(kids.tolist()) == list(range(tree.level_sizes[level]))
        assert np.array_equal(p[kids], nodes[owner])


def test_build_shallow_wide_levels():
    V, _ = _planted(16, 40)  # 640 labels
    tree = LabelTree.build(V, cluster_size=8, seed=0)
    # leaves at binary depth 7 (640 / 128 = 5 labels), levels every c = 3 depths: 7, 4, 1
    assert tree.level_sizes == [2, 16, 128, 640] and tree.n_levels == 3
    _check_invariants(tree, 640, 8)
    assert np.array_equal(tree.parents[2], np.arange(128) // 8)  # K = 8 contiguous children
    wide = LabelTree.build(V, cluster_size=8, n_top=64, seed=0)
    assert wide.level_sizes == [64, 128, 640]
    assert np.array_equal(wide.parents[-1], tree.parents[-1])  # same clustering, other compression
    assert LabelTree.build(V, cluster_size=8, height=2, seed=0).level_sizes == [16, 128, 640]
    assert LabelTree.build(V, cluster_size=8, n_top=8, seed=0).level_sizes == [8, 128, 640]  # not [8, 16, ..]
    assert LabelTree.build(V, cluster_size=8, n_top=3, seed=0).level_sizes == [4, 16, 128, 640]
    assert LabelTree.build(V, cluster_size=8, height=9, seed=0).level_sizes == [2, 16, 128, 640]
    flat = LabelTree.build(V, cluster_size=8, height=1, seed=0)
    assert flat.level_sizes == [128, 640]
    _check_invariants(flat, 640, 8)
    big = LabelTree.build(V, cluster_size=100, branching=2, seed=0)
    assert big.level_sizes == [2, 4, 8, 640]


def test_build_small_and_odd_sizes():
    V = sp.random(37, 10, density=0.5, random_state=3, format="csr", dtype=np.float32)
    for m in (2, 3, 5, 8, 36, 37, 100):
        tree = LabelTree.build(V, cluster_size=m, seed=1)
        _check_invariants(tree, 37, m)
    assert LabelTree.build(V, cluster_size=40).level_sizes == [1, 37]
    assert LabelTree.build(V.toarray(), cluster_size=5, seed=1) == LabelTree.build(V, cluster_size=5, seed=1)
    with pytest.raises(ConfigError):
        LabelTree.build(V, cluster_size=1)
    with pytest.raises(ConfigError):
        LabelTree.build(V, cluster_size=4, branching=3)
    with pytest.raises(ConfigError):
        LabelTree.build(V, n_top=4, height=2)


def test_tree_groups_planted_labels_together():
    V, truth = _planted(2, 8)  # 16 labels in 2 planted groups
    tree = LabelTree.build(V, cluster_size=8, seed=0)
    assert tree.level_sizes == [2, 16]
    for members in tree.leaf_clusters():
        assert len(set(truth[members].tolist())) == 1


def test_split_is_a_two_means_fixed_point():
    """At convergence, re-centring each cluster and re-splitting by the balanced rule changes nothing."""
    V = sp.random(40, 15, density=0.3, random_state=6, format="csr", dtype=np.float32)
    side = balanced_kmeans(V, 2, seed=3, max_iter=200, tol=1e-12)
    X = V.toarray() / np.linalg.norm(V.toarray(), axis=1, keepdims=True)
    centres = np.stack([X[side == s].sum(0) for s in (0, 1)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sims = X @ centres.T
    order = np.argsort(sims[:, 1] - sims[:, 0], kind="stable")
    again = np.zeros(40, dtype=np.int64)
    again[order[20:]] = 1
    assert np.array_equal(side, again)


def test_targets_and_ancestors():
    tree = LabelTree([np.full(2, -1), np.array([0, 0, 1]), np.array([0, 1, 1, 2, 2])])
    Y = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1]],
                               dtype=np.float32))
    assert tree.ancestors(0).tolist() == [0, 0, 0, 1, 1]
    T1 = tree.targets(Y, 1)
    assert T1.dtype == np.float32 and T1.toarray().tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 1]]
    assert tree.targets(Y, 0).toarray().tolist() == [[1, 0], [1, 1], [0, 0], [0, 1]]
    assert (tree.targets(Y, 2) != Y).nnz == 0
    kids, owner = tree.children(1, np.array([[2, 0]]))
    assert kids.tolist() == [3, 4, 0] and owner.tolist() == [0, 0, 1]
    assert tree.n_children(0).tolist() == [2, 1]
    with pytest.raises(DataError, match="columns"):
        tree.targets(Y[:, :4], 1)
    with pytest.raises(IndexError):
        tree.children(2, np.array([0]))


def test_targets_on_built_tree_match_brute_force():
    V = sp.random(50, 12, density=0.4, random_state=4, format="csr", dtype=np.float32)
    tree = LabelTree.build(V, cluster_size=4, seed=0)
    Y = sp.random(20, 50, density=0.1, random_state=5, format="csr", dtype=np.float32)
    for level in range(tree.n_levels + 1):
        anc = tree.ancestors(level)
        expect = np.zeros((20, tree.level_sizes[level]))
        for i, j in zip(*Y.nonzero(), strict=True):
            expect[i, anc[j]] = 1
        assert np.array_equal(tree.targets(Y, level).toarray(), expect)


def test_from_groups_and_clusters():
    tree = LabelTree.from_groups(np.array([1, 0, 1, 2]))
    assert tree.level_sizes == [3, 4] and tree.label_to_leaf_cluster.tolist() == [1, 0, 1, 2]
    assert [c.tolist() for c in tree.leaf_clusters()] == [[1], [0, 2], [3]]
    same = LabelTree.from_clusters([[1], [0, 2], [3]], n_labels=4)
    assert same == tree
    with pytest.raises(DataError, match="no children"):
        LabelTree.from_groups(np.array([0, 2]))
    with pytest.raises(DataError, match="no cluster"):
        LabelTree.from_clusters([[0], [2]], n_labels=3)
    with pytest.raises(DataError, match="repeats"):
        LabelTree.from_clusters([[0, 1], [1]], n_labels=2)


def test_save_load_round_trip_and_determinism(tmp_path):
    V, _ = _planted(4, 30)
    tree = LabelTree.build(V, cluster_size=6, seed=7)
    assert tree.save(tmp_path, prefix="t") == ["t.npz"]
    back = LabelTree.load(tmp_path, prefix="t")
    assert back == tree and back.level_sizes == tree.level_sizes
    assert LabelTree.build(V, cluster_size=6, seed=7) == tree
    assert LabelTree.build(V, cluster_size=6, seed=8) != tree
    with pytest.raises(ModelLoadError, match="missing"):
        LabelTree.load(tmp_path, prefix="nope")
    arrays = dict(np.load(tmp_path / "t.npz"))
    arrays["parents_1"] = arrays["parents_1"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelLoadError, match="bad.npz"):
        LabelTree.load(tmp_path, prefix="bad")


@pytest.mark.slow
def test_build_100k_labels():
    rng = np.random.default_rng(0)
    n, dim, nnz = 100_000, 20_000, 20
    V = sp.csr_matrix((rng.random(n * nnz, dtype=np.float32), rng.integers(0, dim, n * nnz),
                       np.arange(0, n * nnz + 1, nnz)), shape=(n, dim))
    tree = LabelTree.build(V, cluster_size=8, n_top=1024, seed=0)  # its cost: benchmarks/scale.py
    assert tree.level_sizes == [1024, 16384, 100_000]  # depths 10 and 14 (a level at depth 11 is dropped)
    _check_invariants(tree, n, 8)


@pytest.mark.slow
def test_eurlex57k_pifa_tree_groups_related_labels(shared_data):
    """Real data: leaf clusters of the PIFA tree are far more coherent than random groups of labels."""
    import gzip

    from xmtc.data import LabelIndex
    from xmtc.features import TfidfFeaturizer

    data = shared_data / "eurlex57k"
    if not (data / "train.texts.txt.gz").is_file():
        pytest.skip(f"eurlex57k not found in {shared_data}")
    with gzip.open(data / "train.texts.txt.gz", "rt", encoding="utf-8") as fh:
        texts = [next(fh) for _ in range(5000)]
    with gzip.open(data / "train.labels.txt.gz", "rt", encoding="utf-8") as fh:
        labels = [next(fh).split() for _ in range(5000)]
    index = LabelIndex.build(labels)
    Y, _, _ = index.encode(labels)
    V = pifa(TfidfFeaturizer(max_features=50000).fit_transform(texts), Y)
    tree = LabelTree.build(V, cluster_size=8, n_top=64, seed=0)
    _check_invariants(tree, len(index), 8)

    def coherence(groups):  # mean cosine between labels of the same group
        sims = [(V[g] @ V[g].T).toarray()[np.triu_indices(len(g), 1)].mean() for g in groups if len(g) > 1]
        return float(np.mean(sims))

    rng = np.random.default_rng(0)
    random_groups = np.array_split(rng.permutation(len(index)), tree.level_sizes[-2])
    assert coherence(tree.leaf_clusters()) > 2 * coherence(random_groups)
