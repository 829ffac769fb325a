"""Choosing a decision rule and its parameters on validation predictions (:func:`tune`, see :mod:`xmtc.decision`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from xmtc.decision_rules import (
    METRICS,
    NEVER,
    RULES,
    CalibratedRule,
    LabelThresholdRule,
    Rule,
    ThresholdRule,
    TopKRule,
    TopKThresholdRule,
    _arrays,
    _Cands,
    _columns,
    _keep_first,
)
from xmtc.errors import XMTCError
from xmtc.metric_utils import gold_csr
from xmtc.set_metrics import candidate_hits

if TYPE_CHECKING:
    from xmtc.models.base import TopK

# ----------------------------------------------------------------------------------------------- tuning
@dataclass
class Candidate:
    """The best rule of one kind: its score on the whole validation split and its 2-fold cross-validated
    score (parameters tuned on one half of the validation documents, scored on the other; None when the
    split is too small to halve)."""

    rule: Rule
    score: float
    cv: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.to_dict(), "score": self.score, "cv": self.cv}


@dataclass
class TuneResult:
    """The rule chosen by :func:`tune`, its validation score, and the best rule of every kind tried."""

    rule: Rule
    score: float
    metric: str
    n_docs: int
    by_kind: dict[str, Candidate]
    selected_by: str = "cv"
    calibration: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "score": self.score, "n_docs": self.n_docs, "selected_by": self.selected_by,
                "calibration": self.calibration,
                "by_kind": {k: c.to_dict() for k, c in self.by_kind.items()}}


class _Evaluator:
    """The validation metric of candidate masks, for every top-k limit at once (cumulative over columns)."""

    def __init__(self, hits: np.ndarray, idx: np.ndarray, n_gold: np.ndarray, gold_per_label: np.ndarray,
                 metric: str, n_unseen_labels: int):
        self.hits, self.idx, self.metric = hits, idx, metric
        self.n_gold = n_gold.astype(np.float64)
        self.total_gold = float(self.n_gold.sum())
        self.gold_l = gold_per_label.astype(np.float64)
        self.L, self.K = gold_per_label.size, idx.shape[1]
        self.n_unseen_labels = n_unseen_labels
        self.col_keys = np.arange(self.K)[None, :] * self.L + np.maximum(idx, 0)

    def all_k(self, mask: np.ndarray) -> np.ndarray:
        """float (K,): the metric of ``mask`` restricted to its first k columns, k = 1..K."""
        th = self.hits & mask
        if self.metric == "micro-F1":
            tp = th.sum(axis=0).cumsum()
            pr = mask.sum(axis=0).cumsum()
            return _safe(2.0 * tp, pr + self.total_gold)
        if self.metric == "example-F1":
            if not th.shape[0]:
                return np.zeros(self.K)
            return _safe(2.0 * th.cumsum(axis=1), mask.cumsum(axis=1) + self.n_gold[:, None]).mean(axis=0)
        if self.K * self.L > 50_000_000:  # the (K, L) tables would be too large: one k at a time
            return np.array([self._macro(mask & _columns(self.idx, k)) for k in range(1, self.K + 1)])
        keys = self.col_keys[mask]
        size = self.K * self.L
        tp = np.bincount(keys, weights=self.hits[mask], minlength=size).reshape(self.K, self.L).cumsum(axis=0)
        pr = np.bincount(keys, minlength=size).reshape(self.K, self.L).cumsum(axis=0)
        den = pr + self.gold_l[None, :]
        present = (den > 0).sum(axis=1) + self.n_unseen_labels
        return _safe(2.0 * tp, den).sum(axis=1) / np.maximum(present, 1)

    def _macro(self, mask: np.ndarray) -> float:
        labs = self.idx[mask]
        tp = np.bincount(labs, weights=self.hits[mask], minlength=self.L)
        den = np.bincount(labs, minlength=self.L) + self.gold_l
        return float(_safe(2.0 * tp, den).sum() / max(int((den > 0).sum()) + self.n_unseen_labels, 1))

    def score(self, mask: np.ndarray) -> float:
        return float(self.all_k(mask)[-1])


def _safe(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _threshold_grid(scores: np.ndarray, n: int) -> np.ndarray:
    """Candidate thresholds: actual scores selecting a geometric range of shares of the candidates (finer among
    the high scores, where F1-optimal thresholds lie), decreasing."""
    s = np.sort(scores[np.isfinite(scores)])[::-1]
    if not s.size:
        return np.zeros(0, dtype=np.float32)
    pos = np.unique(np.ceil(np.geomspace(1.0, s.size, num=max(n, 2))).astype(np.int64) - 1)
    return np.unique(s[pos])[::-1]


def _refine(grid: np.ndarray, best: float, scores: np.ndarray, n: int) -> np.ndarray:
    """Score values strictly between the grid neighbours of ``best`` (at most ``n`` of them)."""
    above, below = grid[grid > best], grid[grid < best]
    hi = above.min() if above.size else np.inf
    lo = below.max() if below.size else -np.inf
    inner = np.unique(scores[(scores > lo) & (scores < hi)])
    if inner.size > n:
        inner = inner[np.linspace(0, inner.size - 1, n).round().astype(np.int64)]
    return inner[::-1]


class _Problem:
    """Validation candidates with their hits, ready to be searched (:meth:`search`) or scored (:meth:`score`)."""

    def __init__(self, Y: sp.csr_matrix, idx: np.ndarray, S: np.ndarray, g: np.ndarray, metric: str,
                 n_unseen_labels: int):
        self.idx, self.S, self.g, self.metric = idx, S, g, metric
        self.n, self.K = idx.shape
        self.L = Y.shape[1]
        self.valid = idx >= 0
        self.hits = candidate_hits(Y, idx)
        self.gold_l = np.bincount(Y.indices, minlength=self.L)
        self.ev = _Evaluator(self.hits, idx, g, self.gold_l, metric, n_unseen_labels)
        self.top = _Cands(idx, S, self.L)

    def subset(self, Y: sp.csr_matrix, rows: np.ndarray, n_unseen_labels: int) -> _Problem:
        return _Problem(Y[rows], self.idx[rows], self.S[rows], self.g[rows], self.metric, n_unseen_labels)

    def score(self, rule: Rule) -> float:
        return self.ev.score(rule.select(self.top))

    def search(self, kinds: Sequence[str], min_positives: int, n_thresholds: int) -> dict[str, tuple[Rule, float]]:
        idx, S, valid, ev, K = self.idx, self.S, self.valid, self.ev, self.K
        best: dict[str, tuple[Rule, float]] = {}

        def offer(kind: str, rule: Rule, value: float) -> None:
            if kind in kinds and (kind not in best or value > best[kind][1] + 1e-12):
                best[kind] = (rule, float(value))

        v = ev.all_k(valid)
        for k in range(1, K + 1):
            offer("topk", TopKRule(k), v[k - 1])
        flat = S[valid]
        grid = _threshold_grid(flat, n_thresholds)
        if any(k in kinds for k in ("threshold", "topk_threshold", "label_thresholds")) and grid.size:

            def sweep(thresholds: np.ndarray) -> None:
                for t in thresholds:
                    for alo in (False, True):
                        vals = ev.all_k(_keep_first(valid & (S >= t), idx, alo))
                        offer("threshold", ThresholdRule(float(t), K, alo), vals[-1])
                        if K > 1:
                            k = int(np.argmax(vals[:-1])) + 1
                            offer("topk_threshold", TopKThresholdRule(k, float(t), alo), vals[k - 1])

            sweep(grid)
            for kind in ("threshold", "topk_threshold"):
                if kind in best:
                    sweep(_refine(grid, best[kind][0].threshold, flat, 50))
            if "label_thresholds" in kinds:
                start = max((best[k] for k in ("threshold", "topk_threshold") if k in best),
                            key=lambda rs: rs[1])[0]
                rule = _label_search(self, start.threshold, getattr(start, "k", K), start.at_least_one,
                                     min_positives)
                offer("label_thresholds", rule, self.score(rule))
        return {k: best[k] for k in kinds if k in best}


def tune(Y_valid: Any, top_valid: TopK, metric: str = "micro-F1", *, n_gold: Any = None,
         n_unseen_labels: int = 0, min_positives: int = 5, n_thresholds: int = 200,
         kinds: Sequence[str] = ("topk", "threshold", "topk_threshold", "label_thresholds"),
         select: str = "cv", seed: int = 0, calibration: str = "none") -> TuneResult:
    """Choose the decision rule and its parameters that maximise ``metric`` on validation predictions.

    Searched, for each kind: ``topk`` for k = 1..K (K = ``top_valid.k``); ``threshold`` over thresholds taken
    from the validation candidate scores (``n_thresholds`` of them, geometrically spaced in rank, then refined
    around the best); ``topk_threshold`` over every (k, threshold) pair of that grid; each threshold rule with
    and without ``at_least_one``; ``label_thresholds``: from the best global threshold rule, two rounds of
    coordinate search over the labels with at least ``min_positives`` validation documents (each label's
    threshold set to the best of its candidate scores, the others fixed).

    The kind is chosen by ``select``: ``"cv"`` (default) compares the kinds by 2-fold cross-validation inside
    the validation split (a seeded half tunes, the other half scores, and back), so that a kind with many
    parameters (per-label thresholds) wins only when it generalises; ``"valid"`` by the score on the whole
    split. Either way the chosen kind's parameters are then tuned on the whole split. Ties go to the simpler
    rule (the order of ``kinds``).

    Args:
        Y_valid: CSR (n, L) validation gold labels (never the test split).
        top_valid: the model's top-K candidates of the validation documents.
        metric: "micro-F1", "macro-F1" or "example-F1" (see :mod:`xmtc.set_metrics`).
        n_gold: optional int (n,) gold counts including labels unknown to the model (misses).
        n_unseen_labels: distinct gold labels unknown to the model (macro-F1 counts each as F1 0).
        min_positives: labels with fewer validation documents keep the global threshold.
        n_thresholds: size of the threshold grid.
        kinds: rule kinds to search.
        select: "cv" or "valid" (see above).
        seed: seed of the cross-validation halves.
        calibration: "none", or "isotonic" / "platt": a score calibration fitted on all of the validation
            candidates (:mod:`xmtc.calibration`; the 2-fold comparison reuses it, so it is a little optimistic
            for it); every rule is then tuned on, and returned wrapped in, :class:`CalibratedRule`.

    Returns:
        :class:`TuneResult` (``rule``, ``score`` on the whole split, ``by_kind``).
    """
    if metric not in METRICS:
        raise XMTCError(f"metric must be one of {', '.join(METRICS)}, but is {metric!r}")
    unknown = [k for k in kinds if k not in RULES]
    if unknown or not kinds:
        raise XMTCError(f"unknown rule kinds {unknown} (known: {', '.join(RULES)})")
    if select not in ("cv", "valid"):
        raise XMTCError(f"select must be 'cv' or 'valid', but is {select!r}")
    Y = gold_csr(Y_valid)
    idx, S = _arrays(top_valid)
    n, K = idx.shape
    if Y.shape[0] != n:
        raise XMTCError(f"validation predictions have {n} rows but Y_valid has {Y.shape[0]} documents")
    if K == 0 or n == 0:
        raise XMTCError("tune needs at least one validation document and one candidate per document")
    if getattr(top_valid, "n_labels", Y.shape[1]) != Y.shape[1]:
        raise XMTCError(f"predictions are over {top_valid.n_labels} labels but Y_valid has {Y.shape[1]}")
    g = np.diff(Y.indptr).astype(np.float64) if n_gold is None else np.asarray(n_gold, dtype=np.float64)
    cal = None
    if calibration != "none":
        from xmtc.calibration import fit as fit_calibration

        cal = fit_calibration(calibration, Y, top_valid)
        S = cal.transform(S)
    whole = _Problem(Y, idx.astype(np.int64), S, g, metric, n_unseen_labels)
    found = whole.search(kinds, min_positives, n_thresholds)
    by_kind = {k: Candidate(r, s) for k, (r, s) in found.items()}
    if select == "cv" and n >= 20:
        perm = np.random.default_rng(seed).permutation(n)
        halves = [np.sort(perm[: n // 2]), np.sort(perm[n // 2:])]
        parts = [whole.subset(Y, h, n_unseen_labels) for h in halves]
        cv = {k: 0.0 for k in by_kind}
        for a, b in ((0, 1), (1, 0)):
            for k, (rule, _) in parts[a].search(list(by_kind), min_positives, n_thresholds).items():
                cv[k] += parts[b].score(rule) / 2
        for k, c in by_kind.items():
            c.cv = float(cv[k])
        key = "cv"
    else:
        key = "score"
        select = "valid"
    order = list(by_kind)
    chosen = order[0]
    for k in order[1:]:
        if getattr(by_kind[k], key) > getattr(by_kind[chosen], key) + 1e-12:
            chosen = k
    if cal is not None:
        for c in by_kind.values():
            c.rule = CalibratedRule(c.rule, cal)
    return TuneResult(by_kind[chosen].rule, by_kind[chosen].score, metric, n, by_kind, selected_by=select,
                      calibration=calibration)


def _between(s: np.ndarray, m: int) -> np.float32:
    """A threshold keeping exactly the first ``m`` of the decreasing scores ``s``: midway to the next one."""
    if m == 0:
        return np.float32(NEVER)
    if m == s.size:
        return np.float32(s[m - 1])
    mid = np.float32((float(s[m - 1]) + float(s[m])) / 2)
    return mid if s[m] < mid <= s[m - 1] else np.float32(s[m - 1])


def _label_search(p: _Problem, t0: float, k0: int, alo: bool, min_positives: int,
                  rounds: int = 2) -> LabelThresholdRule:
    """Coordinate search of per-label thresholds from the global rule (t0, top-k0); see :func:`tune`."""
    idx, S, hits, gold_l, g, L, K, metric = p.idx, p.S, p.hits, p.gold_l, p.g, p.L, p.K, p.metric
    total_gold = p.ev.total_gold
    in_lim = (idx >= 0) & _columns(idx, k0)
    sel = in_lim & (S >= np.float32(t0))
    rows, cols = np.nonzero(in_lim)
    labs = idx[rows, cols]
    order = np.lexsort((-S[rows, cols].astype(np.float64), labs))  # by label, then decreasing score
    rows, cols, labs = rows[order], cols[order], labs[order]
    starts = np.searchsorted(labs, np.arange(L + 1))
    eligible = np.flatnonzero(gold_l >= max(min_positives, 1))
    eligible = eligible[np.argsort(-gold_l[eligible], kind="stable")]
    thresholds = np.full(L, np.float32(t0), dtype=np.float32)
    tp_doc = (hits & sel).sum(axis=1).astype(np.float64)
    pr_doc = sel.sum(axis=1).astype(np.float64)
    TP, PR = tp_doc.sum(), pr_doc.sum()
    for _ in range(rounds):
        for lab in eligible:
            lo, hi = starts[lab], starts[lab + 1]
            r, c = rows[lo:hi], cols[lo:hi]
            s, h = S[r, c], hits[r, c].astype(np.float64)
            cur = sel[r, c]
            m_cur = int(cur.sum())
            ch = np.concatenate([[0.0], np.cumsum(h)])
            m = np.arange(s.size + 1)
            if metric == "micro-F1":
                tp_rest, pr_rest = TP - (h * cur).sum(), PR - cur.sum()
                value = _safe(2.0 * (tp_rest + ch), pr_rest + m + total_gold)
            elif metric == "macro-F1":
                value = _safe(2.0 * ch, m + gold_l[lab])
            else:
                tp0, pr0 = tp_doc[r] - h * cur, pr_doc[r] - cur
                inc = _safe(2.0 * (tp0 + h), pr0 + 1 + g[r]) - _safe(2.0 * tp0, pr0 + g[r])
                value = np.concatenate([[0.0], np.cumsum(inc)])
            allowed = np.ones(s.size + 1, dtype=bool)
            allowed[1:-1] = s[:-1] > s[1:]  # a threshold cannot split equal scores
            value = np.where(allowed, value, -np.inf)
            m_best = int(np.argmax(value))
            if value[m_cur] >= value[m_best] - 1e-12:
                continue  # no gain: the label keeps its threshold
            new = np.arange(s.size) < m_best
            if metric == "micro-F1":
                TP += (h * new).sum() - (h * cur).sum()
                PR += new.sum() - cur.sum()
            elif metric == "example-F1":
                tp_doc[r] += h * new - h * cur
                pr_doc[r] += new.astype(np.float64) - cur
            sel[r, c] = new
            thresholds[lab] = _between(s, m_best)
    changed = np.flatnonzero(thresholds != np.float32(t0))
    return LabelThresholdRule(threshold=float(np.float32(t0)), depth=K, k=k0, n_labels=L,
                              labels=tuple(int(x) for x in changed),
                              thresholds=tuple(float(thresholds[x]) for x in changed),
                              at_least_one=alo, min_positives=min_positives)
