"""Ensemble combinators (score averaging, AttentionXML consensus) and the registered ``ensemble`` model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

import xmtc
from xmtc.config import ConfigError
from xmtc.data import Dataset, LabelIndex
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import TopK
from xmtc.models.ensemble import EnsembleConfig, average_topk, consensus_many, consensus_topk


def _top(indices, scores, n_labels=10) -> TopK:
    return TopK(np.asarray(indices), np.asarray(scores, dtype=np.float32), n_labels=n_labels)


def test_consensus_formula_on_hand_made_predictions():
    a = _top([[1, 2, 3]], [[0.9, 0.5, 0.2]])
    b = _top([[2, 4, 1]], [[0.6, 0.7, 0.1]])
    out = consensus_topk(a, b, k=5)
    expected = {1: 1 - 0.1 * 0.9, 2: 1 - 0.5 * 0.4, 3: 0.2, 4: 0.7}  # 1 - (1 - P0)(1 - P1), missing = 0
    order = sorted(expected, key=lambda label: -expected[label])
    assert out.indices[0, :4].tolist() == order
    np.testing.assert_allclose(out.scores[0, :4], [expected[label] for label in order], rtol=1e-6)
    assert out.indices[0, 4] == -1 and out.scores[0, 4] == -np.inf  # only 4 distinct candidates


def test_average_with_missing_labels_and_weights():
    a = _top([[0, 1], [5, 6]], [[0.8, 0.4], [0.3, 0.2]])
    b = _top([[1, 2], [6, -1]], [[0.6, 0.5], [0.9, -np.inf]])
    out = average_topk([a, b], k=3)
    np.testing.assert_array_equal(out.indices, [[1, 0, 2], [6, 5, -1]])
    np.testing.assert_allclose(out.scores[0], [0.5, 0.4, 0.25], rtol=1e-6)  # (0.4+0.6)/2, 0.8/2, 0.5/2
    np.testing.assert_allclose(out.scores[1, :2], [0.55, 0.15], rtol=1e-6)
    weighted = average_topk([a, b], k=1, weights=[3, 1])
    assert weighted.indices[0, 0] == 0  # 0.75 * 0.8 = 0.6 beats 0.75 * 0.4 + 0.25 * 0.6 = 0.45
    np.testing.assert_allclose(weighted.scores[0, 0], 0.6, rtol=1e-6)


def test_combinators_match_brute_force_on_random_predictions():
    rng = np.random.default_rng(0)
    n, n_labels, k = 40, 30, 7
    tops = []
    for _ in range(3):
        idx = np.stack([rng.choice(n_labels, k, replace=False) for _ in range(n)])
        sc = np.sort(rng.random((n, k)), axis=1)[:, ::-1]
        idx[rng.random((n, k)) < 0.1] = -1  # some padding
        tops.append(_top(idx, np.where(idx >= 0, sc, -np.inf), n_labels))
    dense = [np.zeros((n, n_labels)) for _ in tops]
    for d, t in zip(dense, tops, strict=True):
        rows, cols = np.nonzero(t.indices >= 0)
        d[rows, t.indices[rows, cols]] = t.scores[rows, cols]
    w = np.array([1.0, 2.0, 0.5])
    avg = average_topk(tops, k=10, weights=w)
    want = sum(wi * d for wi, d in zip(w, dense, strict=True)) / w.sum()
    cons = consensus_many(tops, k=10)
    want_c = 1 - np.prod([1 - d for d in dense], axis=0)
    for got, ref in ((avg, want), (cons, want_c)):
        for r in range(n):
            valid = got.indices[r] >= 0
            np.testing.assert_allclose(got.scores[r, valid], ref[r, got.indices[r, valid]],
                                       rtol=1e-5, atol=1e-7)
            n_cand = int((ref[r] > 0).sum())
            assert valid.sum() == min(10, n_cand)
            kth = np.sort(ref[r])[::-1][valid.sum() - 1]
            assert got.scores[r, valid].min() >= kth - 1e-6  # really the best ones


def test_consensus_rejects_non_probabilities_and_mismatches():
    a = _top([[1, 2]], [[3.0, 0.5]])
    b = _top([[1, 2]], [[0.3, 0.5]])
    with pytest.raises(XMTCError, match=r"probability scores in \[0, 1\]"):
        consensus_topk(a, b, k=2)
    with pytest.raises(XMTCError, match="labels"):
        average_topk([b, _top([[1, 2]], [[0.3, 0.5]], n_labels=11)], k=2)
    with pytest.raises(XMTCError, match="documents"):
        average_topk([b, _top([[1, 2], [1, 2]], [[0.3, 0.5], [0.3, 0.5]])], k=2)
    with pytest.raises(XMTCError, match="weights"):
        average_topk([a, b], k=2, weights=[1.0])


def test_ensemble_config_validation():
    with pytest.raises(ConfigError, match="method must be"):
        EnsembleConfig(members=["a"], method="vote").validate()
    with pytest.raises(ConfigError, match="one entry per member"):
        EnsembleConfig(members=["a", "b"], weights=[1.0]).validate()
    with pytest.raises(XMTCError, match="members is empty"):
        xmtc.create("ensemble").fit()


def _learnable(seed: int, n: int = 240, n_labels: int = 12, n_features: int = 300):
    """Documents whose features contain a signature of each gold label (sparse X, l2-normalised)."""
    rng = np.random.default_rng(seed)
    sig = rng.integers(0, n_features, (n_labels, 4))
    labels = np.stack([rng.choice(n_labels, 2, replace=False) for _ in range(n)])
    rows = np.repeat(np.arange(n), 2)
    Y = sp.csr_matrix((np.ones(2 * n, np.float32), (rows, labels.ravel())), shape=(n, n_labels))
    cols = np.hstack([sig[labels].reshape(n, -1), rng.integers(0, n_features, (n, 6))])
    rows = np.repeat(np.arange(n), cols.shape[1])
    X = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols.ravel())), shape=(n, n_features))
    X = sp.csr_matrix(X.multiply(1 / np.sqrt(X.multiply(X).sum(axis=1))), dtype=np.float32)
    index = LabelIndex([f"L{i}" for i in range(n_labels)])
    return Dataset(Y=Y[:200], label_index=index, X=X[:200]), Dataset(Y=Y[200:], label_index=index, X=X[200:])


def test_ensemble_model_save_load_and_move(tmp_path, monkeypatch):
    train, test = _learnable(0)
    cfg = xmtc.models.baselines.parabel.ParabelConfig(n_trees=1)
    xmtc.create("parabel", cfg).fit(train).save(tmp_path / "runs" / "a")
    xmtc.create("bonsai", xmtc.models.baselines.parabel.BonsaiConfig(n_trees=1, linear_c=2.0)).fit(train).save(
        tmp_path / "runs" / "b")
    monkeypatch.chdir(tmp_path)
    for method in ("average", "consensus"):
        ens = xmtc.create("ensemble", EnsembleConfig(members=["runs/a", "runs/b"], method=method)).fit(train)
        top = ens.predict(test, k=3)
        members = [xmtc.load(tmp_path / "runs" / m).predict(test, k=50) for m in "ab"]
        ref = consensus_topk(*members, k=3) if method == "consensus" else average_topk(members, k=3)
        np.testing.assert_array_equal(top.indices, ref.indices)
        hits = np.take_along_axis(test.Y.toarray(), top.indices[:, :1], axis=1)
        assert hits.mean() > 0.8  # chance is 2/12
    ens.save(tmp_path / "runs" / "ens")
    stored = json.loads((tmp_path / "runs" / "ens" / "members.json").read_text())
    assert [m["path"] for m in stored["members"]] == ["../a", "../b"]  # relative to the ensemble folder
    (tmp_path / "runs").rename(tmp_path / "moved")  # the folder and its members move together
    monkeypatch.chdir(tmp_path / "moved")
    again = xmtc.load(tmp_path / "moved" / "ens")
    np.testing.assert_array_equal(again.predict(test, k=3).indices, top.indices)
    # a member changed after the ensemble was saved is refused
    meta = tmp_path / "moved" / "a" / "meta.json"
    meta.write_text(meta.read_text().replace('"format"', '"format" ', 1))
    with pytest.raises(ModelLoadError, match="changed since the ensemble was saved"):
        xmtc.load(tmp_path / "moved" / "ens")


def test_ensemble_maps_member_label_spaces_by_name(tmp_path):
    train, test = _learnable(1)
    xmtc.create("parabel", xmtc.models.baselines.parabel.ParabelConfig(n_trees=1)).fit(train).save(tmp_path / "a")
    # member b knows the labels under a different id order plus one extra label
    names = train.label_index.names
    perm = np.arange(len(names))[::-1]
    index_b = LabelIndex([names[i] for i in perm] + ["extra"])
    Yb = sp.csr_matrix(train.Y[:, perm].toarray())
    Yb = sp.hstack([Yb, sp.csr_matrix((len(train), 1))], format="csr")
    xmtc.create("parabel", xmtc.models.baselines.parabel.ParabelConfig(n_trees=1)).fit(
        Dataset(Y=Yb, label_index=index_b, X=train.X)).save(tmp_path / "b")
    ens = xmtc.create("ensemble", EnsembleConfig(members=[str(tmp_path / "a"), str(tmp_path / "b")])).fit()
    assert ens.label_index_.names == [*names, "extra"]
    top = ens.predict(test, k=1)
    hits = np.take_along_axis(test.Y.toarray(), top.indices, axis=1)
    assert hits.mean() > 0.8
