"""The metric report: a streaming :class:`MetricAccumulator`, :func:`report` (all metrics at once) and
:func:`format_report` (an aligned text table). All three are also reachable from :mod:`xmtc.metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xmtc.errors import DataError, XMTCError
from xmtc.metric_sums import _f1_sums, _indices, _inv_prop, _label_mask, _n_gold, _ratio, _restrict, _scores_of, _sums
from xmtc.metric_utils import check_k, gold_csr

if TYPE_CHECKING:
    from xmtc.models.base import TopK

__all__ = ["MetricAccumulator", "format_report", "report"]


class MetricAccumulator:
    """Streaming evaluation (napkinXC-metrics style): ``update`` batch by batch, then ``result``.

    Every metric is kept as a (numerator, denominator) pair of sums, so the result over batches equals
    :func:`report` over the whole set (up to float rounding).

    Args:
        ks: cut-offs, e.g. (1, 3, 5).
        inv_prop: optional float (L,) inverse propensities; adds PSP@k and PSnDCG@k.
        f1_threshold: score threshold of "microF1" (computed only when ``update`` gets scores).
        groups: optional {name: label ids}; adds "{name}:{metric}" and "{name}:n_docs" restricted to the group
            (see :func:`restrict_to_labels`; ``n_gold`` is not used inside groups).
    """

    def __init__(self, ks: Sequence[int] = (1, 3, 5), inv_prop: np.ndarray | None = None,
                 f1_threshold: float = 0.5, groups: Mapping[str, Any] | None = None):
        self.ks = tuple(sorted({check_k(k) for k in ks}))
        if not self.ks:
            raise XMTCError("ks must name at least one cut-off")
        self.inv_prop = None if inv_prop is None else np.asarray(inv_prop, dtype=np.float64)
        self.f1_threshold = float(f1_threshold)
        self.groups = dict(groups or {})
        for name in self.groups:
            if not isinstance(name, str) or ":" in name or not name:
                raise XMTCError(f"group names must be non-empty strings without ':', got {name!r}")
        self.sums: dict[str, list[float]] = {}

    def _add(self, sums: dict[str, list[float]], prefix: str = "") -> None:
        for name, (num, den) in sums.items():
            acc = self.sums.setdefault(prefix + name, [0.0, 0.0])
            acc[0] += num
            acc[1] += den

    def update(self, Y_batch: Any, top_batch: TopK | np.ndarray, n_gold: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> MetricAccumulator:
        """Add one batch of documents.

        Args:
            Y_batch: CSR (b, L) gold labels.
            top_batch: TopK or int array (b, k) of predicted label ids.
            n_gold: optional int (b,) gold counts including labels unseen in training.
            scores: optional float (b, k) scores aligned with ``top_batch`` (or a TopK); enables "microF1".

        Returns:
            self
        """
        Y = gold_csr(Y_batch)
        idx = _indices(top_batch, Y)
        g = _n_gold(n_gold, Y)
        q = None if self.inv_prop is None else _inv_prop(self.inv_prop, Y.shape[1])
        self._add(_sums(Y, idx, self.ks, q, g))
        if scores is not None:
            f1 = _f1_sums(Y, idx, _scores_of(top_batch, scores, idx.shape), self.f1_threshold, g)
            self._add({"microF1": f1})
        for name, labels in self.groups.items():
            Ys, idx_s, _ = _restrict(Y, idx, _label_mask(labels, Y.shape[1]))
            self._add(_sums(Ys, idx_s, self.ks, q, np.diff(Ys.indptr).astype(np.int64)), prefix=f"{name}:")
        return self

    def result(self) -> dict[str, float]:
        """Metrics so far: {"P@1": ..., "nDCG@3": ..., "n_docs": ...}; values are fractions in [0, 1].

        A group without documents reports ``"{name}:n_docs": 0`` and NaN metrics (undefined, not zero).
        """
        if not self.sums or self.sums["n_docs"][0] == 0:
            raise DataError("no documents to evaluate (call update() with at least one document)")
        out: dict[str, float] = {}
        for name, (num, den) in self.sums.items():
            if name.endswith("n_docs"):
                out[name] = int(num)
            elif ":" in name and self.sums[name.split(":")[0] + ":n_docs"][0] == 0:
                out[name] = float("nan")
            else:
                out[name] = _ratio((num, den))
        return out


def report(Y: Any, top: TopK | np.ndarray, ks: Sequence[int] = (1, 3, 5), inv_prop: np.ndarray | None = None,
           n_gold: np.ndarray | None = None, scores_for_f1: Any = None,
           groups: Mapping[str, Any] | None = None, f1_threshold: float = 0.5) -> dict[str, float]:
    """All document metrics at once: P@k, nDCG@k, RP@k, R@k (+ PSP@k, PSnDCG@k, microF1, label groups).

    Args:
        Y: CSR (n, L) gold labels.
        top: TopK or int array (n, k) of predicted label ids.
        ks: cut-offs.
        inv_prop: optional float (L,) inverse propensities (from the training labels) for PSP/PSnDCG.
        n_gold: optional int (n,) gold counts including labels unseen in training (misses).
        scores_for_f1: optional scores (n, k) aligned with ``top`` (or the TopK itself) to add "microF1".
        groups: optional {name: label ids}, e.g. :func:`label_groups` of the training labels.
        f1_threshold: score threshold of "microF1".

    Returns:
        {"P@1": ..., "nDCG@3": ..., "PSP@5": ..., "RP@5": ..., "R@5": ..., "n_docs": n, ...}; metric
        values are fractions in [0, 1], "n_docs" an int.
    """
    acc = MetricAccumulator(ks, inv_prop=inv_prop, f1_threshold=f1_threshold, groups=groups)
    return acc.update(Y, top, n_gold=n_gold, scores=scores_for_f1).result()


_KEY = re.compile(r"^(?:(?P<group>[^:]+):)?(?P<metric>[^@]+)(?:@(?P<k>\d+))?$")


def format_report(metrics: Mapping[str, float]) -> str:
    """A small aligned table of a :func:`report` dict, metric values in percent.

    Args:
        metrics: dict from :func:`report` / :meth:`MetricAccumulator.result`.

    Returns:
        Multi-line text: one row per metric (and group), one column per k; counts as integers.
    """
    rows: dict[tuple[str, str], dict[str, float]] = {}
    counts: list[tuple[str, float]] = []
    ks: set[int] = set()
    for key, value in metrics.items():
        m = _KEY.match(key)
        if key.endswith("n_docs") or m is None:
            counts.append((key, value))
            continue
        k = m["k"] or ""
        if k:
            ks.add(int(k))
        rows.setdefault((m["group"] or "", m["metric"]), {})[k] = value
    cols = [str(k) for k in sorted(ks)] + ([""] if any("" in r for r in rows.values()) else [])
    width = max([len(f"{g}:{m}" if g else m) for g, m in rows] + [6])
    head = " " * width + "".join(f"{'@' + c if c else 'value':>9}" for c in cols)
    lines = [head]
    for (g, m), vals in rows.items():
        cells = "".join(f"{_cell(vals.get(c)):>9}" for c in cols)
        lines.append(f"{(f'{g}:{m}' if g else m):<{width}}{cells}")
    lines += [f"{key:<{width}}{int(v):>9d}" for key, v in counts]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return "n/a" if np.isnan(value) else f"{100 * value:.2f}"
