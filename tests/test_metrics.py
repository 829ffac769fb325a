"""Metrics: hand-computed answers, napkinXC agreement, streaming == batch, properties."""

from math import log2

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xmtc import metrics as M
from xmtc.errors import DataError, XMTCError
from xmtc.label_metrics import label_counts, label_group_auc, label_groups, tail_label_precision
from xmtc.models.base import TopK

# 4 documents, 6 labels. doc2 has no gold label; doc3 has 4 gold labels but only 1 prediction.
GOLD = [[0, 2], [3], [], [1, 2, 4, 5]]
TOP = np.array([[0, 1, 2], [4, 3, -1], [1, 2, 5], [5, -1, -1]])
SCORES = np.array([[0.9, 0.6, 0.4], [0.7, 0.2, -np.inf], [0.8, 0.1, 0.05], [0.55, -np.inf, -np.inf]])
Q = np.arange(1.0, 7.0)  # inverse propensity of label l is l + 1


def _csr(rows, n_labels=6):
    r = [i for i, labels in enumerate(rows) for _ in labels]
    c = [j for labels in rows for j in labels]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_labels))


Y = _csr(GOLD)
D = [1 / log2(i + 2) for i in range(5)]  # discounts 1/log2(l+1), l = 1..5


def test_precision_ndcg_recall_rp_by_hand():
    assert M.precision_at_k(Y, TOP, 1) == pytest.approx(2 / 4)
    assert M.precision_at_k(Y, TOP, 3) == pytest.approx((2 / 3 + 1 / 3 + 0 + 1 / 3) / 4)
    # k larger than the predictions: the missing positions are misses
    assert M.precision_at_k(Y, TOP, 5) == pytest.approx((2 / 5 + 1 / 5 + 1 / 5) / 4)
    ndcg3 = ((D[0] + D[2]) / (D[0] + D[1]) + D[1] / D[0] + 0 + D[0] / (D[0] + D[1] + D[2])) / 4
    assert M.ndcg_at_k(Y, TOP, 3) == pytest.approx(ndcg3)
    assert M.ndcg_at_k(Y, TOP, 1) == pytest.approx(M.precision_at_k(Y, TOP, 1))
    assert M.r_precision_at_k(Y, TOP, 3) == pytest.approx((1 + 1 + 0 + 1 / 3) / 4)
    assert M.recall_at_k(Y, TOP, 3) == pytest.approx((1 + 1 + 0 + 1 / 4) / 4)


def test_n_gold_counts_unseen_labels_as_misses():
    n_gold = np.array([3, 1, 0, 4])  # doc0 has one more gold label, unknown to the label index
    ndcg3 = ((D[0] + D[2]) / (D[0] + D[1] + D[2]) + D[1] / D[0] + 0 + D[0] / (D[0] + D[1] + D[2])) / 4
    assert M.ndcg_at_k(Y, TOP, 3, n_gold=n_gold) == pytest.approx(ndcg3)
    assert M.r_precision_at_k(Y, TOP, 3, n_gold=n_gold) == pytest.approx((2 / 3 + 1 + 0 + 1 / 3) / 4)
    assert M.recall_at_k(Y, TOP, 3, n_gold=n_gold) == pytest.approx((2 / 3 + 1 + 0 + 1 / 4) / 4)
    assert M.micro_f1(Y, TOP, 0.5, scores=SCORES, n_gold=n_gold) == pytest.approx(4 / (4 + 3 + 6))
    with pytest.raises(DataError, match=r"n_gold\[3\] = 2"):
        M.ndcg_at_k(Y, TOP, 3, n_gold=np.array([3, 1, 0, 2]))


def test_propensity_scored_by_hand():
    # PSP@1: hits q0 (doc0) + q5 (doc3); best: max gold q per doc = 3 + 4 + 6.
    assert M.psp_at_k(Y, TOP, 1, Q) == pytest.approx((1 + 6) / (3 + 4 + 6))
    assert M.psp_at_k(Y, TOP, 3, Q) == pytest.approx((1 + 3 + 4 + 6) / ((3 + 1) + 4 + (6 + 5 + 3)))
    num = (1 * D[0] + 3 * D[2]) / (D[0] + D[1]) + 4 * D[1] + 6 * D[0] / (D[0] + D[1] + D[2])
    den = (3 * D[0] + 1 * D[1]) / (D[0] + D[1]) + 4 + (6 * D[0] + 5 * D[1] + 3 * D[2]) / (D[0] + D[1] + D[2])
    assert M.psndcg_at_k(Y, TOP, 3, Q) == pytest.approx(num / den)


def test_inverse_propensity_formula():
    Ytr = _csr([[0], [0, 1], [0], [2], [0, 2]], n_labels=4)  # N = 5; N_l = 4, 1, 2, 0
    C = (np.log(5) - 1) * 2.5**0.55
    expected = 1 + C * (np.array([4, 1, 2, 0]) + 1.5) ** -0.55
    np.testing.assert_allclose(M.inverse_propensity(Ytr), expected)
    assert M.inverse_propensity(Ytr).argmax() == 3  # the never-seen label is the rarest


def test_micro_f1_by_hand():
    # predicted at >= 0.5: doc0 {0, 1}, doc1 {4}, doc2 {1}, doc3 {5}; TP = 2, FP = 3, FN = 7 - 2.
    assert M.micro_f1(Y, TOP, 0.5, scores=SCORES) == pytest.approx(4 / (4 + 3 + 5))
    assert M.micro_f1(Y, TopK(TOP, SCORES, 6), 0.5) == pytest.approx(1 / 3)
    with pytest.raises(DataError, match="needs scores"):
        M.micro_f1(Y, TOP)


def test_report_keys_and_topk_input():
    r = M.report(Y, TopK(TOP, SCORES, 6), ks=(1, 3, 5), inv_prop=Q, scores_for_f1=SCORES)
    for key in ("P@1", "P@3", "nDCG@3", "PSP@5", "PSnDCG@5", "RP@5", "R@5", "microF1"):
        assert 0.0 <= r[key] <= 1.0, key
    assert r["n_docs"] == 4  # the document without gold labels stays in (and scores 0)
    assert r["P@1"] == pytest.approx(0.5) and r["microF1"] == pytest.approx(1 / 3)
    assert "PSP@1" not in M.report(Y, TOP)
    text = M.format_report(r)
    assert "50.00" in text and "n_docs" in text and text.splitlines()[0].split()[:3] == ["@1", "@3", "@5"]


def test_label_groups_and_restricted_metrics():
    train_counts = np.array([100, 60, 10, 3, 0, 51])
    groups = label_groups(train_counts)
    assert [g.tolist() for g in groups.values()] == [[0, 1, 5], [2, 3], [4]]
    assert label_groups(train_counts, frequent_above=59, few_above=3)["zero"].tolist() == [3, 4]
    Ys, idx, rows = M.restrict_to_labels(Y, TOP, groups["frequent"])
    assert rows.tolist() == [0, 3] and idx.tolist() == [[0, 1, -1], [5, -1, -1]]
    assert Ys.toarray().tolist() == [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1]]
    r = M.report(Y, TOP, ks=(1, 3), groups=groups)
    assert r["frequent:n_docs"] == 2 and r["frequent:P@1"] == 1.0
    assert r["frequent:RP@3"] == pytest.approx((1 + 1 / 2) / 2)
    assert r["few:n_docs"] == 3 and r["few:P@1"] == pytest.approx(2 / 3)
    assert r["zero:n_docs"] == 1 and r["zero:P@1"] == 0.0
    empty = M.report(Y, TOP, ks=(1,), groups={"none": []})
    assert empty["none:n_docs"] == 0 and np.isnan(empty["none:P@1"]) and "n/a" in M.format_report(empty)
    with pytest.raises(XMTCError, match="group names"):
        M.report(Y, TOP, groups={"a:b": [0]})


def test_errors_name_the_problem():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(XMTCError, match="k must be a positive integer"):
            M.precision_at_k(Y, TOP, bad)
    with pytest.raises(XMTCError, match="k must be"):
        M.report(Y, TOP, ks=(1, 0))
    with pytest.raises(DataError, match="3 rows but Y_true has 4"):
        M.precision_at_k(Y, TOP[:3], 1)
    with pytest.raises(DataError, match="label id 6"):
        M.precision_at_k(Y, np.where(TOP == 4, 6, TOP), 1)
    with pytest.raises(DataError, match="repeats a label"):
        M.precision_at_k(Y, np.array([[0, 0, 1]] * 4), 1)
    with pytest.raises(DataError, match="over 7 labels"):
        M.precision_at_k(Y, TopK(TOP, SCORES, 7), 1)
    with pytest.raises(DataError, match=r"inv_prop must have shape \(6,\)"):
        M.psp_at_k(Y, TOP, 1, Q[:5])
    with pytest.raises(DataError, match="no documents"):
        M.MetricAccumulator((1,)).result()
    with pytest.raises(DataError, match="non-negative"):
        label_group_auc(Y, TopK(TOP, np.where(TOP >= 0, -SCORES, 0.0), 6), min_count=1)
    with pytest.raises(AttributeError):
        _ = M.no_such_metric


def _random(seed, n=200, n_labels=50, density=0.06):
    rng = np.random.default_rng(seed)
    dense = rng.random((n, n_labels)) < density
    dense[:7] = False  # some documents without gold labels
    Yr = sp.csr_matrix(dense.astype(np.float64))
    return rng, Yr, rng.random((n, n_labels))


def test_matches_napkinxc():
    nm = pytest.importorskip("napkinxc.metrics")
    rng, Yr, S = _random(0)
    Ytr = sp.csr_matrix((rng.random((300, 50)) < 0.08).astype(np.float64))
    q = M.inverse_propensity(Ytr)
    np.testing.assert_allclose(q, nm.Jain_et_al_inverse_propensity(Ytr), rtol=1e-12)
    top = TopK.from_scores(S, 5)
    ks = range(1, 6)
    checks = [(M.precision_at_k, nm.precision_at_k(Yr, S, k=5), {}),
              (M.ndcg_at_k, nm.ndcg_at_k(Yr, S, k=5), {}),
              (M.recall_at_k, nm.recall_at_k(Yr, S, k=5), {}),
              (M.psp_at_k, nm.psprecision_at_k(Yr, S, q, k=5), {"inv_prop": q}),
              (M.psndcg_at_k, nm.psndcg_at_k(Yr, S, q, k=5), {"inv_prop": q})]
    for fn, theirs, kw in checks:
        ours = [fn(Yr, top, k, **kw) for k in ks]
        np.testing.assert_allclose(ours, theirs, atol=1e-6, err_msg=fn.__name__)


def test_accumulator_equals_report():
    rng, Yr, S = _random(1)
    top = TopK.from_scores(S, 10)
    q = M.inverse_propensity(Yr)
    n_gold = np.diff(Yr.indptr) + rng.integers(0, 2, Yr.shape[0])
    groups = label_groups(Yr, frequent_above=12)
    full = M.report(Yr, top, ks=(1, 3, 5), inv_prop=q, n_gold=n_gold, scores_for_f1=top, groups=groups)
    acc = M.MetricAccumulator((5, 1, 3), inv_prop=q, groups=groups)
    for lo, hi in ((0, 13), (13, 150), (150, 200)):
        part = TopK(top.indices[lo:hi], top.scores[lo:hi], top.n_labels)
        acc.update(Yr[lo:hi], part, n_gold=n_gold[lo:hi], scores=part.scores)
    streamed = acc.result()
    assert streamed.keys() == full.keys()
    for key, value in full.items():
        assert streamed[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    assert full["zero:n_docs"] == 0 and full["frequent:n_docs"] > 0 and full["few:n_docs"] > 0


def test_label_group_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng, Yr, S = _random(2, n=120, n_labels=30, density=0.1)
    top = TopK.from_scores(S, 8)
    dense = top.to_csr().toarray()  # scores outside the top-8 are 0
    Yd = Yr.toarray()
    counts = Yd.sum(axis=0)
    groups = label_group_auc(Yr, top)
    assert len(groups) == 3 and sum(g["n_labels"] for g in groups) == int((counts >= 5).sum())
    assert groups[0]["min_count"] > groups[1]["max_count"]
    assert sum(g["share"] for g in groups) == pytest.approx(1)
    micro = label_group_auc(Yr, top, average="micro")
    for g, gm in zip(groups, micro, strict=True):
        labels = np.flatnonzero((counts >= g["min_count"]) & (counts <= g["max_count"]))
        auc = np.mean([metrics.roc_auc_score(Yd[:, j], dense[:, j]) for j in labels])
        ap = np.mean([metrics.average_precision_score(Yd[:, j], dense[:, j]) for j in labels])
        assert g["AUC"] == pytest.approx(auc) and g["AUPR"] == pytest.approx(ap)
        y, s = Yd[:, labels].ravel(), dense[:, labels].ravel()
        assert gm["AUC"] == pytest.approx(metrics.roc_auc_score(y, s))
        assert gm["AUPR"] == pytest.approx(metrics.average_precision_score(y, s))
    # a perfect scorer gets AUC = AUPR = 1; dense and sparse score matrices are accepted
    assert all(g["AUC"] == g["AUPR"] == 1.0 for g in label_group_auc(Yr, sp.csr_matrix(Yd * 0.9)))


def test_label_frequency_bins_equal_occurrence():
    rows = [[] for _ in range(30)]
    for label, count in enumerate([10, 10, 5, 5, 5, 5] + [2] * 10):
        for d in range(count):
            rows[(d * 7 + label) % 30].append(label)
    Yb = _csr(rows, n_labels=16)
    assert label_counts(Yb).tolist() == [10, 10, 5, 5, 5, 5] + [2] * 10
    groups = label_group_auc(Yb, Yb.toarray(), min_count=2)
    summary = [(g["min_count"], g["max_count"], g["n_labels"]) for g in groups]
    assert summary == [(10, 10, 2), (5, 5, 4), (2, 2, 10)]
    assert [g["share"] for g in groups] == pytest.approx([1 / 3] * 3)


def test_tail_label_precision_by_hand():
    # label 0: 1 document, label 1: 2 documents, label 2: 4 documents
    Yt = _csr([[1, 2], [2], [0, 2], [], [1, 2], []], n_labels=3)
    S = np.zeros((6, 3))
    S[:, 0] = [0.1, 0.2, 0.9, 0.3, 0.0, 0.0]  # doc 2 first
    S[:, 1] = [0.5, 0.6, 0.0, 0.1, 0.9, 0.2]  # docs 4, 1, 0, ...
    out = tail_label_precision(Yt, S, ks=(1, 2, 3), n_tail=2)
    # K=1: hits 1 + 1 over max(1,1) + max(2,1); K=2: 1 + 1 over 2 + 2; K=3: 1 + 2 over 3 + 3.
    assert out == pytest.approx({"tailP@1": 2 / 3, "tailP@2": 2 / 4, "tailP@3": 3 / 6, "n_tail": 2})
    # From a TopK only documents whose top-k holds the label can be retrieved.
    top1 = tail_label_precision(Yt, TopK.from_scores(S, 1), ks=(1,), n_tail=2)
    assert top1["tailP@1"] == pytest.approx(2 / 3)
    assert M.tail_label_precision is tail_label_precision  # re-exported lazily


@st.composite
def _cases(draw):
    n, n_labels = draw(st.integers(1, 8)), draw(st.integers(1, 7))
    gold = draw(arrays(bool, (n, n_labels)))
    perm = draw(st.permutations(range(n_labels)))
    k = draw(st.integers(1, n_labels + 2))
    q = draw(arrays(np.float64, n_labels, elements=st.floats(1.0, 50.0)))
    return gold, np.array(perm), k, q


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_properties(case):
    gold, perm, k, q = case
    Yh = sp.csr_matrix(gold.astype(np.float32))
    n = gold.shape[0]
    kk = min(k, gold.shape[1])
    top = np.tile(perm[:kk], (n, 1))
    r = M.report(Yh, top, ks=(1, k), inv_prop=q)
    assert all(0.0 <= v <= 1.0 + 1e-12 for key, v in r.items() if key != "n_docs")
    # Perfect ranking: gold labels first, by decreasing propensity.
    perfect = np.argsort(np.where(gold, -q, np.inf), axis=1, kind="stable")[:, :kk]
    p = M.report(Yh, perfect, ks=(1, k), inv_prop=q)
    if gold.any(axis=1).all():
        for key in ("P@1", f"nDCG@{k}", f"RP@{k}", f"PSP@{k}", f"PSnDCG@{k}"):
            assert p[key] == pytest.approx(1.0), key
        if k >= gold.shape[1]:
            assert p[f"R@{k}"] == pytest.approx(1.0)
