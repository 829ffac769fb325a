"""make_synthetic: shapes, power-law label frequencies, determinism, learnability and scale."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from xmtc.data import make_synthetic
from xmtc.data.synthetic import word_of
from xmtc.errors import ConfigError


def test_shapes_and_split():
    train, test = make_synthetic(500, 40, doc_len=20, labels_per_doc=3, seed=3)
    assert (len(train), len(test)) == (400, 100)
    assert train.label_index is test.label_index and train.label_names == [str(j) for j in range(40)]
    for d in (train, test):
        assert d.Y.shape == (len(d), 40) and d.Y.dtype == np.float32 and d.Y.has_sorted_indices
        assert len(d.texts) == len(d) and d.unseen.sum() == 0
        assert np.all(np.diff(d.Y.indptr) >= 1)  # every document has a label
        lengths = np.array([len(t.split()) for t in d.texts])
        assert lengths.min() >= 10 and lengths.max() <= 30
    assert 2.3 < np.diff(train.Y.indptr).mean() < 3.2
    assert (train.split, test.split) == ("train", "test")


def test_deterministic_per_seed():
    a_train, a_test = make_synthetic(200, 30, seed=7)
    b_train, b_test = make_synthetic(200, 30, seed=7)
    c_train, _ = make_synthetic(200, 30, seed=8)
    assert a_train.texts == b_train.texts and a_test.texts == b_test.texts
    assert (a_train.Y != b_train.Y).nnz == 0
    assert a_train.texts != c_train.texts


def test_power_law_label_frequencies():
    train, _ = make_synthetic(20_000, 1000, labels_per_doc=2, alpha=1.1, doc_len=5, seed=0)
    freq = np.asarray(train.Y.sum(axis=0)).ravel()
    ranks = np.arange(1, 1001)
    slope = np.polyfit(np.log(ranks[5:200]), np.log(np.maximum(freq[5:200], 1)), 1)[0]
    assert -1.3 < slope < -0.9  # frequency of label id j ~ (j + 1) ** -alpha
    flat, _ = make_synthetic(20_000, 1000, labels_per_doc=2, alpha=0.0, doc_len=5, seed=0)
    f0 = np.asarray(flat.Y.sum(axis=0)).ravel()
    assert f0.max() < 3 * f0.mean()  # alpha = 0 gives uniform labels


def test_learnable_by_word_label_counts():
    """A trivial model (word-label co-occurrence counts from train) must beat the majority baseline widely."""
    train, test = make_synthetic(3000, 50, doc_len=30, labels_per_doc=2, seed=0)
    vec = CountVectorizer(token_pattern=r"\S+")
    Xtr, Xte = vec.fit_transform(train.texts), vec.transform(test.texts)
    W = (train.Y.T @ Xtr).toarray()  # (L, V) co-occurrence counts
    W = W / (W.sum(axis=1, keepdims=True) + 1e-9) / (W.sum(axis=0, keepdims=True) + 1e-9)
    top1 = np.asarray(Xte @ W.T).argmax(axis=1)
    p_at_1 = test.Y[np.arange(len(test)), top1].mean()
    majority = test.Y[:, np.asarray(train.Y.sum(axis=0)).argmax()].mean()
    assert p_at_1 > 0.9 and p_at_1 > majority + 0.3


def test_words_are_letters_and_distinct():
    words = [word_of(i) for i in range(200_000)]
    assert len(set(words)) == len(words)
    assert all(w.isalpha() and w.islower() and len(w) >= 6 for w in words[::997])


def test_hierarchy_groups():
    train, _ = make_synthetic(50, 10, n_groups=3)
    assert len(train.hierarchy) == 10 and train.hierarchy.parents["4"] == ["group1"]
    assert make_synthetic(50, 10)[0].hierarchy is None


def test_million_labels_stay_sparse():
    # Its memory is a benchmark (benchmarks/scale.py, peak RSS after the data); here: the label matrices are
    # sparse with a few labels per document.
    train, test = make_synthetic(2000, 1_000_000, seed=1)
    assert train.Y.shape == (1600, 1_000_000) and len(test) == 400
    assert sp.issparse(train.Y) and sp.issparse(test.Y)
    assert train.Y.nnz + test.Y.nnz < 2000 * 50  # a few labels per document, not a row per label


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_docs": 0}, "n_docs must be positive, but is 0"),
        ({"n_labels": 0}, "n_labels must be positive"),
        ({"labels_per_doc": 0.5}, "labels_per_doc must be at least 1"),
        ({"noise": 1.0}, r"noise must be in \[0, 1\)"),
        ({"split_test": 1.0}, r"split_test must be in \[0, 1\)"),
        ({"vocab_size": 1}, "vocab_size must be at least 2"),
        ({"alpha": -1}, "alpha must be non-negative"),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"n_docs": 10, "n_labels": 5, **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_synthetic(args.pop("n_docs"), args.pop("n_labels"), **args)


def test_small_vocab_shares_words_and_no_test_split():
    train, test = make_synthetic(30, 1000, vocab_size=50, split_test=0.0)
    assert len(train) == 30 and len(test) == 0
    assert len({w for t in train.texts for w in t.split()}) <= 50
