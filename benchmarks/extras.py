"""Extra evaluations of one trained model, found by what the model offers (no model names):

* :func:`member_rows`: the first 1..N members of a model trained as an ensemble of N (``members(n)``,
  LightAttention's Table III), ``--members``;
* :func:`tail_precision`: tail-label precision (MAACF+ Eq. 14) of the ``--tail`` rarest labels occurring in the
  test documents, K = 1, 10, 20; exact per-label scores where the model has ``label_scores`` (MAACF+), else
  its top ``--tail-k`` predictions;
* :func:`teacher_rows`: a TReaderXML model's teacher on its own (the plain kNN of its label votes) and the
  recall of its label subset and shortlist;
* :func:`shortlist_info`: the recall of a MAACF+ shortlist (gold labels among the reranked candidates).

Each takes the fitted model and the run's :class:`~benchmarks.common.Splits`; rows come back as keyword
arguments of :func:`benchmarks.schema.make_row`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from benchmarks.common import Timer, import_first
from benchmarks.schema import percent_metrics

TAIL_KS = (1, 10, 20)


def evaluate(top: Any, test: Any, inv_prop: np.ndarray) -> dict[str, float]:
    """P@1/3/5, nDCG@3/5, PSP@1/3/5 in percent (:func:`xmtc.metrics.report`; unseen gold labels are misses)."""
    from xmtc import metrics

    return percent_metrics(metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold()))


def shortlist_recall(candidates: np.ndarray, Y: sp.spmatrix) -> float:
    """Share of the gold (document, label) pairs whose label is among the document's candidates (-1: none)."""
    Y = sp.csr_matrix(Y)
    if Y.nnz == 0:
        return 1.0
    n, c = candidates.shape
    rows, cols = np.repeat(np.arange(n), c), candidates.reshape(-1)
    ok = cols >= 0
    C = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], cols[ok])), shape=Y.shape)
    return float(Y.multiply(C).nnz / Y.nnz)


def n_members(model: Any) -> int:
    """How many members a model trained as an ensemble has (1 for a plain model)."""
    return int(getattr(model.config, "n_models", getattr(model.config, "n_trees", 1)) or 1)


def member_rows(model: Any, label: str, test: Any, inv_prop: np.ndarray) -> list[dict[str, Any]]:
    """Rows of the first 1..N-1 members of ``model`` (the N-member row is the run's own row)."""
    if not hasattr(model, "members"):
        return []
    rows = []
    for n in range(1, n_members(model)):
        with Timer() as t:
            top = model.members(n).predict(test, k=5)
        rows.append({"model": f"{label} members={n}", **evaluate(top, test, inv_prop),
                     "predict_docs_s": round(len(test) / t.seconds, 1), "members": n})
    return rows


def tail_labels(train_Y: sp.spmatrix, test_Y: sp.spmatrix, n_tail: int) -> tuple[np.ndarray, np.ndarray]:
    """(the ``n_tail`` rarest labels that occur in the test documents, occurrence counts train + test)."""
    n_labels = test_Y.shape[1]
    in_test = np.bincount(sp.csr_matrix(test_Y).indices, minlength=n_labels).astype(np.int64)
    counts = np.bincount(sp.csr_matrix(train_Y).indices, minlength=n_labels).astype(np.int64) + in_test
    present = np.flatnonzero(in_test > 0)
    return present[np.lexsort((present, counts[present]))][:n_tail], counts


def tail_precision(model: Any, splits: Any, n_tail: int, tail_k: int) -> dict[str, Any]:
    """``tailP@1/10/20`` in percent and the tail labels (Eq. 14 of MAACF+)."""
    tail_label_precision = import_first(["xmtc.label_metrics", "xmtc.metrics"], "tail_label_precision")
    test = splits.test
    tail, counts = tail_labels(splits.train.Y, test.Y, n_tail)
    n, n_labels = test.Y.shape
    if hasattr(model, "label_scores"):  # exact scores of every test document for each tail label
        S = model.label_scores(test, tail)  # (n, len(tail))
        S = sp.csr_matrix((S.reshape(-1), (np.repeat(np.arange(n), len(tail)), np.tile(tail, n))),
                          shape=(n, n_labels))
    else:
        S = model.predict(test, k=min(tail_k, n_labels)).to_csr()
    rep = tail_label_precision(test.Y, S, ks=TAIL_KS, n_tail=n_tail, counts=counts)
    return {"metrics": {f"tailP@{k}": round(100 * rep[f"tailP@{k}"], 2) for k in TAIL_KS},
            "tail_labels": tail.tolist()}


def teacher_rows(model: Any, label: str, splits: Any, inv_prop: np.ndarray) -> tuple[list[dict], dict]:
    """The teacher-kNN row of a model with a ``teacher_`` (TReaderXML) and its recall figures."""
    teacher = getattr(model, "teacher_", None)
    if teacher is None:
        return [], {}
    from xmtc.models.base import TopK

    test = splits.test
    t0 = time.perf_counter()
    out = teacher.query(model.encode(test.texts).ids)
    seconds = time.perf_counter() - t0
    dense = np.asarray(out.label_scores.todense(), dtype=np.float32)
    dense[dense == 0] = -np.inf
    top = TopK.from_scores(dense, 5)
    top.indices[~np.isfinite(top.scores)] = -1
    row = {"model": f"{label} teacher-kNN (k={teacher.n_neighbours})", **evaluate(top, test, inv_prop),
           "predict_docs_s": round(len(test) / seconds, 1)}
    labels = np.where(out.items < test.n_labels, out.items, -1)
    info: dict[str, Any] = {"teacher_label_recall_test": round(shortlist_recall(labels, test.Y), 4)}
    if getattr(model, "use_shortlist_", False):
        shortlist = import_first(["xmtc.models.treaderxml.candidates", "xmtc.models.treaderxml.teacher",
                                  "xmtc.models.teacher"], "shortlist")
        cand = shortlist(out.label_scores, model.clusters_, model.config.shortlist_labels,
                         model.config.shortlist_clusters)
        info["shortlist_recall_test"] = round(shortlist_recall(cand, test.Y), 4)
        info["shortlist_size_test"] = round(float((cand >= 0).sum(1).mean()), 1)
    return [row], info


def fusion_rows(model: Any, label: str, test: Any, inv_prop: np.ndarray) -> list[dict[str, Any]]:
    """For a model that fuses its network with another ranker's scores (:mod:`xmtc.models.fusion`: MAACF+ with
    its parabel shortlist, TReaderXML with its teacher's votes): rows for the same trained model with w = 0 (the
    network alone) and w = inf (the other ranker's own order), so that one training gives the "network alone"
    and "its shortlist" rows of the same table."""
    w, partner = getattr(model, "fusion_weight_", None), getattr(model, "fusion_partner_", None)
    if w is None or partner is None:
        return []
    rows = []
    try:
        for weight, what in ((0.0, "the network alone, w = 0"), (float("inf"), f"{partner}, w = inf")):
            model.fusion_weight_ = weight
            t0 = time.perf_counter()
            top = model.predict(test, k=5)
            rows.append({"model": f"{label} ({what})", **evaluate(top, test, inv_prop),
                         "predict_docs_s": round(len(test) / max(time.perf_counter() - t0, 1e-9), 1)})
    finally:
        model.fusion_weight_ = w
    return rows


def shortlist_info(model: Any, splits: Any) -> dict[str, Any]:
    """Kind, size and test recall of the candidate shortlist of a model with ``shortlist_candidates``."""
    if not hasattr(model, "shortlist_candidates"):
        return {}
    cand = model.shortlist_candidates(splits.test)
    recall = shortlist_recall(cand, splits.test.Y)
    return {"shortlist": getattr(model, "shortlist_kind", None), "shortlist_size": int(cand.shape[1]),
            "shortlist_recall": round(100 * recall, 2)}
