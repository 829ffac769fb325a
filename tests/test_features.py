"""TF-IDF featurizer and cosine kNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from xmtc.errors import DataError, ModelLoadError
from xmtc.features import TfidfFeaturizer, knn, neighbours

TEXTS = [
    "The cat sat on the mat.",
    "The dog sat on the log!",
    "Cats and dogs: cat, dog, cat.",
    "Regulation No 1234/2001 on cats.",
    "",
]


def test_tfidf_weights_match_the_formula():
    f = TfidfFeaturizer(max_features=None, min_df=1, sublinear_tf=True)
    X = f.fit_transform(TEXTS)
    assert X.dtype == np.float32 and X.shape == (5, f.n_features) and X.has_sorted_indices
    n = len(TEXTS)
    row = X[2].toarray().ravel()
    # doc 2 tokens: cats and dogs cat dog cat -> cat x2, dog x1, cats x1, and x1, dogs x1
    df = {"cat": 2, "dog": 2, "cats": 2, "and": 1, "dogs": 1}
    tf = {"cat": 2, "dog": 1, "cats": 1, "and": 1, "dogs": 1}
    expect = {t: (1 + np.log(c)) * (np.log((1 + n) / (1 + df[t])) + 1) for t, c in tf.items()}
    norm = np.sqrt(sum(v * v for v in expect.values()))
    for t, v in expect.items():
        assert row[f.vocabulary_[t]] == pytest.approx(v / norm, rel=1e-5)
    assert np.count_nonzero(row) == len(expect)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    assert np.allclose(norms[:4], 1.0) and norms[4] == 0.0  # the empty text gives a zero row


def test_tfidf_min_df_max_features_and_ngrams():
    f = TfidfFeaturizer(max_features=None, min_df=2).fit(TEXTS)
    assert set(f.terms) == {"the", "cat", "sat", "on", "dog", "cats"}
    assert f.terms == sorted(f.terms)
    g = TfidfFeaturizer(max_features=3, min_df=1).fit(TEXTS)
    assert set(g.terms) == {"the", "cat", "on"}  # the three most frequent terms (4, 3, 3; no tie at the cut)
    h = TfidfFeaturizer(max_features=None, min_df=2, ngram_max=2).fit(TEXTS)
    assert "sat on" in h.vocabulary_ and "on the" in h.vocabulary_
    X = h.transform(["sat on a mat"])
    assert X[0, h.vocabulary_["sat on"]] > 0


def test_tfidf_save_load_gives_identical_transform(tmp_path):
    f = TfidfFeaturizer(max_features=50, min_df=1, ngram_max=2, sublinear_tf=False).fit(TEXTS)
    files = f.save(tmp_path, prefix="feat")
    assert sorted(files) == ["feat.idf.npz", "feat.vocab.json"]
    assert json.loads((tmp_path / "feat.vocab.json").read_text())["sublinear_tf"] is False
    g = TfidfFeaturizer.load(tmp_path, prefix="feat")
    new = ["a cat on a log", "nothing known here", "dog dog dog"]
    a, b = f.transform(new), g.transform(new)
    assert (a != b).nnz == 0 and a.shape == b.shape
    assert g.max_features == 50 and g.ngram_max == 2 and g.sublinear_tf is False


def test_tfidf_errors(tmp_path):
    with pytest.raises(DataError, match="no terms"):
        TfidfFeaturizer(min_df=5).fit(["one doc", "two docs"])
    with pytest.raises(DataError, match="no terms"):
        TfidfFeaturizer(min_df=1).fit(["", "!!!"])
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfFeaturizer().transform(["x"])
    with pytest.raises(TypeError):
        TfidfFeaturizer(min_df=1).fit("a single string")
    with pytest.raises(ModelLoadError, match="missing"):
        TfidfFeaturizer.load(tmp_path)
    f = TfidfFeaturizer(min_df=1).fit(TEXTS)
    f.save(tmp_path)
    np.savez(tmp_path / "tfidf.idf.npz", idf=np.ones(3))
    with pytest.raises(ModelLoadError, match="idf weights"):
        TfidfFeaturizer.load(tmp_path)


# ---------------------------------------------------------------- kNN
def _brute(q, b, k, exclude_self=False):
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
    s = qn @ bn.T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    idx = np.array([sorted(range(len(b)), key=lambda j: (-s[i, j], j))[:k] for i in range(len(q))])
    return idx, np.take_along_axis(s, idx, axis=1)


@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_knn_matches_brute_force(batch_size):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(13, 8)).astype(np.float32)
    idx, sim = knn(queries, base, 5, batch_size=batch_size)
    bidx, bsim = _brute(queries.astype(np.float64), base.astype(np.float64), 5)
    assert idx.dtype == np.int64 and sim.dtype == np.float32 and idx.shape == (13, 5)
    assert np.array_equal(idx, bidx)
    assert np.allclose(sim, bsim, atol=1e-5)
    assert np.all(np.diff(sim, axis=1) <= 0)


def test_knn_exclude_self_and_sparse_input(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 6)).astype(np.float32)
    idx, sim = knn(base, base, 4, exclude_self=True, batch_size=9)
    assert not np.any(idx == np.arange(40)[:, None])
    bidx, bsim = _brute(base.astype(np.float64), base.astype(np.float64), 4, exclude_self=True)
    assert np.array_equal(idx, bidx) and np.allclose(sim, bsim, atol=1e-5)
    own, _ = knn(base, base.copy(), 1)
    assert np.array_equal(own[:, 0], np.arange(40))  # without exclusion a row finds itself
    with pytest.raises(ValueError, match="queries is base"):
        knn(base, base.copy(), 3, exclude_self=True)
    dense = np.abs(base) * (rng.random(base.shape) < 0.5)
    csr = sp.csr_matrix(dense)
    sidx, ssim = knn(csr, csr, 3, exclude_self=True, batch_size=8)
    didx, dsim = knn(dense, dense, 3, exclude_self=True)
    assert np.array_equal(sidx, didx) and np.allclose(ssim, dsim, atol=1e-6)
    queries = dense[:6].copy()
    queries[2] = 0  # a query without terms, and batches that use only some of the terms
    queries[:, :3] = 0
    for batch_size in (1, 4):
        sidx, ssim = knn(sp.csr_matrix(queries), csr, 3, batch_size=batch_size)
        didx, dsim = knn(queries, dense, 3)
        assert np.array_equal(sidx, didx) and np.allclose(ssim, dsim, atol=1e-6)

    monkeypatch.setattr(neighbours, "_DENSE_BATCH_MAX", 0)  # the sparse x sparse fallback of huge vocabularies
    fidx, fsim = knn(sp.csr_matrix(queries), csr, 3, batch_size=4)
    assert np.array_equal(fidx, sidx) and np.allclose(fsim, ssim, atol=1e-6)


def test_knn_ties_zero_rows_and_small_base():
    base = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=np.float32)
    idx, sim = knn(np.array([[2, 0]], dtype=np.float32), base, 3)
    assert idx.tolist() == [[0, 1, 2]]  # ties broken by the smaller index (row 2 and the zero row score 0)
    assert sim.tolist() == [[1.0, 1.0, 0.0]]
    idx, sim = knn(base, base, 10, exclude_self=True)
    assert idx.shape == (4, 3)  # k clamped to the 3 other rows


def test_knn_cost_benchmark_times_both_products_and_checks_they_agree(tiny_dir, tmp_path):
    from benchmarks import knn_cost
    from benchmarks.schema import load as load_result

    out = tmp_path / "knn.json"
    knn_cost.main(["--data", str(tiny_dir), "--queries", "16", "--max-len", "20", "--out", str(out)])
    rows = load_result(out)["rows"]
    assert [r["model"] for r in rows] == ["knn block, sparse x sparse", "knn block, dense batch (_similarities)"]
    assert all(r["queries"] == 16 and r["block_cpu_s"] >= 0 for r in rows)
    assert rows[0]["max_abs_diff"] < 1e-6
