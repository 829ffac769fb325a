"""Decision rules: their kinds, ``decision.json`` and applying them to ranked candidates (:mod:`xmtc.decision`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmtc.errors import XMTCError

if TYPE_CHECKING:
    from xmtc.models.base import TopK

METRICS = ("micro-F1", "macro-F1", "example-F1")
NO_RULE = "no decision rule: run xmtc tune RUN --data DIR"
NEVER = float(np.finfo(np.float32).max)  # a per-label threshold that no score reaches (label never predicted)


# ----------------------------------------------------------------------------------------------- rules
def _int(d: dict, key: str, lo: int = 1) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise XMTCError(f"decision rule: {key!r} must be an integer >= {lo}, but is {v!r}")
    return v


def _float(d: dict, key: str) -> float:
    v = d.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
        raise XMTCError(f"decision rule: {key!r} must be a finite number, but is {v!r}")
    return float(v)


def _bool(d: dict, key: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise XMTCError(f"decision rule: {key!r} must be true or false, but is {v!r}")
    return v


def _arrays(top: Any) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(top.indices)
    scores = np.asarray(top.scores, dtype=np.float32)
    if idx.ndim != 2 or idx.shape != scores.shape:
        raise XMTCError(f"candidates must be (n, k) ids and scores, got {idx.shape} and {scores.shape}")
    return idx, scores


def _keep_first(mask: np.ndarray, idx: np.ndarray, at_least_one: bool) -> np.ndarray:
    if at_least_one and idx.shape[1]:
        mask[:, 0] |= idx[:, 0] >= 0
    return mask


def _columns(idx: np.ndarray, k: int) -> np.ndarray:
    return np.arange(idx.shape[1])[None, :] < k


@dataclass(frozen=True)
class TopKRule:
    """The ``k`` best labels of each document."""

    k: int
    kind: ClassVar[str] = "topk"

    @property
    def depth(self) -> int:
        """Candidates per document the rule needs (``model.predict(texts, k=depth)``)."""
        return self.k

    def select(self, top: Any) -> np.ndarray:
        """Bool (n, k') mask of the chosen candidates of ``top`` (padding never chosen)."""
        idx, _ = _arrays(top)
        return (idx >= 0) & _columns(idx, self.k)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.kind, "k": self.k}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TopKRule:
        return cls(k=_int(d, "k"))

    def describe(self) -> str:
        return f"top-{self.k}"


@dataclass(frozen=True)
class ThresholdRule:
    """Every candidate among the top ``depth`` whose score is at least ``threshold``."""

    threshold: float
    depth: int
    at_least_one: bool = False
    kind: ClassVar[str] = "threshold"

    def select(self, top: Any) -> np.ndarray:
        idx, scores = _arrays(top)
        mask = (idx >= 0) & (scores >= np.float32(self.threshold)) & _columns(idx, self.depth)
        return _keep_first(mask, idx, self.at_least_one)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.kind, "threshold": self.threshold, "depth": self.depth,
                "at_least_one": self.at_least_one}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThresholdRule:
        return cls(threshold=_float(d, "threshold"), depth=_int(d, "depth"), at_least_one=_bool(d, "at_least_one"))

    def describe(self) -> str:
        return f"score >= {self.threshold:.4g}" + (" (at least one)" if self.at_least_one else "")


@dataclass(frozen=True)
class TopKThresholdRule:
    """At most ``k`` labels, each with a score of at least ``threshold`` (Annif's limit + threshold)."""

    k: int
    threshold: float
    at_least_one: bool = False
    kind: ClassVar[str] = "topk_threshold"

    @property
    def depth(self) -> int:
        return self.k

    def select(self, top: Any) -> np.ndarray:
        idx, scores = _arrays(top)
        mask = (idx >= 0) & (scores >= np.float32(self.threshold)) & _columns(idx, self.k)
        return _keep_first(mask, idx, self.at_least_one)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.kind, "k": self.k, "threshold": self.threshold, "at_least_one": self.at_least_one}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TopKThresholdRule:
        return cls(k=_int(d, "k"), threshold=_float(d, "threshold"), at_least_one=_bool(d, "at_least_one"))

    def describe(self) -> str:
        return f"top-{self.k} with score >= {self.threshold:.4g}" + (" (at least one)" if self.at_least_one else "")


@dataclass(frozen=True)
class LabelThresholdRule:
    """Per-label thresholds (``labels[i]`` needs ``thresholds[i]``), the global ``threshold`` for the other
    labels (those with fewer than ``min_positives`` validation documents), among the top ``k`` of ``depth``."""

    threshold: float
    depth: int
    k: int
    n_labels: int
    labels: tuple[int, ...] = field(default_factory=tuple)
    thresholds: tuple[float, ...] = field(default_factory=tuple)
    at_least_one: bool = False
    min_positives: int = 5
    kind: ClassVar[str] = "label_thresholds"

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.thresholds):
            raise XMTCError(f"decision rule: {len(self.labels)} labels but {len(self.thresholds)} thresholds")
        if self.labels and (min(self.labels) < 0 or max(self.labels) >= self.n_labels):
            raise XMTCError(f"decision rule: label ids must be in 0..{self.n_labels - 1}")

    def threshold_vector(self) -> np.ndarray:
        """float32 (n_labels,): the threshold of every label."""
        t = np.full(self.n_labels, self.threshold, dtype=np.float32)
        t[np.asarray(self.labels, dtype=np.int64)] = np.asarray(self.thresholds, dtype=np.float32)
        return t

    def select(self, top: Any) -> np.ndarray:
        idx, scores = _arrays(top)
        if getattr(top, "n_labels", self.n_labels) != self.n_labels:
            raise XMTCError(f"the rule's per-label thresholds are over {self.n_labels} labels, the predictions "
                            f"over {top.n_labels}")
        thr = self.threshold_vector()[np.maximum(idx, 0)]
        mask = (idx >= 0) & (scores >= thr) & _columns(idx, min(self.k, self.depth))
        return _keep_first(mask, idx, self.at_least_one)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.kind, "threshold": self.threshold, "depth": self.depth, "k": self.k,
                "n_labels": self.n_labels, "at_least_one": self.at_least_one, "min_positives": self.min_positives,
                "labels": list(self.labels), "thresholds": list(self.thresholds)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelThresholdRule:
        labels, thresholds = d.get("labels", []), d.get("thresholds", [])
        if not isinstance(labels, list) or not isinstance(thresholds, list):
            raise XMTCError("decision rule: 'labels' and 'thresholds' must be lists")
        labels = tuple(_int({"label": v}, "label", lo=0) for v in labels)
        thresholds = tuple(_float({"threshold": v}, "threshold") for v in thresholds)
        return cls(threshold=_float(d, "threshold"), depth=_int(d, "depth"), k=_int(d, "k"),
                   n_labels=_int(d, "n_labels"), labels=labels, thresholds=thresholds,
                   at_least_one=_bool(d, "at_least_one"), min_positives=_int(d, "min_positives", lo=0))

    def describe(self) -> str:
        limit = f"top-{self.k}, " if self.k < self.depth else ""
        return (f"{limit}{len(self.labels)} per-label thresholds, the others score >= {self.threshold:.4g}"
                + (" (at least one)" if self.at_least_one else ""))


@dataclass
class _Cands:
    """Candidates (ids, scores) with a label count: what a rule's ``select`` reads, like a TopK."""

    indices: np.ndarray
    scores: np.ndarray
    n_labels: int


@dataclass(frozen=True)
class CalibratedRule:
    """``base`` applied to calibrated scores (``calibrator.transform``, see :mod:`xmtc.calibration`): the map is
    monotone, so a document's order is kept; thresholds and the scores of the sets are on the calibrated scale."""

    base: Any
    calibrator: Any
    kind: ClassVar[str] = "calibrated"

    @property
    def depth(self) -> int:
        return self.base.depth

    def calibrate(self, top: Any) -> _Cands:
        """The candidates of ``top`` with calibrated scores (padding keeps its id -1)."""
        idx, scores = _arrays(top)
        return _Cands(idx, self.calibrator.transform(scores), int(getattr(top, "n_labels", 0)))

    def select(self, top: Any) -> np.ndarray:
        return self.base.select(self.calibrate(top))

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.kind, "calibration": self.calibrator.to_dict(), "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibratedRule:
        from xmtc.calibration import calibrator_from_dict

        base = d.get("base")
        if isinstance(base, dict) and base.get("rule") == cls.kind:
            raise XMTCError("decision rule: a calibrated rule cannot wrap another calibrated rule")
        return cls(rule_from_dict(base), calibrator_from_dict(d.get("calibration")))

    def describe(self) -> str:
        return f"{self.base.describe()}, on scores calibrated by {self.calibrator.describe()}"


Rule = TopKRule | ThresholdRule | TopKThresholdRule | LabelThresholdRule | CalibratedRule
RULES: dict[str, type] = {c.kind: c for c in (TopKRule, ThresholdRule, TopKThresholdRule, LabelThresholdRule)}
ALL_RULES: dict[str, type] = {**RULES, CalibratedRule.kind: CalibratedRule}


def rule_from_dict(d: Any) -> Rule:
    """The rule written by ``rule.to_dict()`` (its ``"rule"`` entry names the kind)."""
    if not isinstance(d, dict):
        raise XMTCError(f"decision rule: expected a JSON object, got {type(d).__name__}")
    kind = d.get("rule")
    if kind not in ALL_RULES:
        raise XMTCError(f"decision rule: unknown rule {kind!r} (known: {', '.join(ALL_RULES)})")
    return ALL_RULES[kind].from_dict(d)


# ----------------------------------------------------------------------------------------------- the file
DECISION_FILE = "decision.json"
DECISION_FORMAT = 1


def decision_payload(rule: Rule, tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object of ``decision.json``: ``{"format": 1, "rule": {...}, "tuning": {...}}``."""
    return {"format": DECISION_FORMAT, "rule": rule.to_dict(), "tuning": tuning or {}}


def parse_decision(payload: Any, source: str = DECISION_FILE) -> tuple[Rule, dict[str, Any]]:
    """(rule, tuning info) of a :func:`decision_payload` object; XMTCError naming ``source`` when invalid."""
    if not isinstance(payload, dict) or payload.get("format") != DECISION_FORMAT:
        raise XMTCError(f"{source}: not a decision rule file of format {DECISION_FORMAT}")
    try:
        rule = rule_from_dict(payload.get("rule"))
    except XMTCError as e:
        raise XMTCError(f"{source}: {e}") from None
    tuning = payload.get("tuning")
    return rule, tuning if isinstance(tuning, dict) else {}


# ----------------------------------------------------------------------------------------------- applying
@dataclass
class LabelSets:
    """One label set per document: ``indices[i]`` int32 label ids, ``scores[i]`` float32 (decreasing)."""

    indices: list[np.ndarray]
    scores: list[np.ndarray]
    n_labels: int

    def __len__(self) -> int:
        return len(self.indices)

    def to_csr(self) -> sp.csr_matrix:
        """CSR (n, n_labels) holding the scores of the chosen labels."""
        lens = np.asarray([len(i) for i in self.indices], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lens)])
        cols = np.concatenate(self.indices) if self.indices else np.zeros(0, np.int32)
        vals = np.concatenate(self.scores) if self.scores else np.zeros(0, np.float32)
        return sp.csr_matrix((vals, cols, indptr), shape=(len(self.indices), self.n_labels))

    def names(self, label_names: Sequence[str]) -> list[list[str]]:
        """The label names of each set."""
        return [[label_names[i] for i in ids] for ids in self.indices]


def rule_scores(rule: Rule, top: TopK) -> np.ndarray:
    """float32 (n, k): the scores ``rule`` compares, those of ``top`` or, for a calibrated rule, calibrated."""
    return rule.calibrate(top).scores if isinstance(rule, CalibratedRule) else _arrays(top)[1]


def to_sets(top: TopK, rule: Rule) -> LabelSets:
    """Apply ``rule`` to the candidates ``top``: the chosen label ids and their scores (calibrated ones for a
    calibrated rule), per document."""
    idx, scores = _arrays(top)[0], rule_scores(rule, top)
    mask = rule.select(top)
    return LabelSets([idx[i][mask[i]].astype(np.int32) for i in range(idx.shape[0])],
                     [scores[i][mask[i]] for i in range(idx.shape[0])], int(top.n_labels))


def apply(rule: Rule, top: TopK) -> list[np.ndarray]:
    """The label-id set (int32 array) chosen by ``rule`` for each document of ``top``."""
    return to_sets(top, rule).indices


def apply_csr(rule: Rule, top: TopK) -> sp.csr_matrix:
    """The chosen sets as a CSR (n, n_labels) of their scores."""
    return to_sets(top, rule).to_csr()


