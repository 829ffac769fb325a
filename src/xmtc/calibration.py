"""Score calibration (issue 16): a monotone map from a model's scores to probabilities, fitted on validation.

A decision rule compares scores with thresholds, so it serves best when a score means the same across documents
and across models. Each model's score is documented in docs/MODELS.md ("Scores and decision rules"); these maps
turn it into an estimate of ``P(label is gold | score)``, fitted on the (score, is-gold) pairs of the validation
documents' top-k candidates:

* :class:`IsotonicCalibrator`: isotonic regression (pool-adjacent-violators), stored as the block end points and
  block means; new scores are interpolated linearly between block centres (monotone, non-decreasing).
* :class:`PlattCalibrator`: Platt scaling, ``sigmoid(a * z + b)`` with ``z = logit(score)`` for scores in
  ``[0, 1]`` (``z = score`` otherwise), ``a, b`` by Newton's method on the log-loss.

Both are monotone, so they never change the order of one document's candidates; they change which candidates
pass a threshold across documents, the scores a user sees, and how members of an ensemble add up
(``ensemble`` with ``calibrated=true``). ``xmtc tune --calibrate isotonic|platt`` fits one and stores it with the
rule (:class:`xmtc.decision.CalibratedRule`); :func:`fit` is the Python entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xmtc.errors import XMTCError

__all__ = ["CALIBRATIONS", "IsotonicCalibrator", "PlattCalibrator", "calibrator_from_dict", "fit", "pairs"]

CALIBRATIONS = ("none", "isotonic", "platt")
_EPS = 1e-6


def pairs(Y: Any, top: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64, hits float64) of every filled top-k candidate of ``top`` against the gold ``Y``."""
    from xmtc.set_metrics import candidate_hits

    idx = np.asarray(top.indices, dtype=np.int64)
    keep = idx >= 0
    hits = candidate_hits(Y, idx)[keep].astype(np.float64)
    return np.asarray(top.scores, dtype=np.float64)[keep], hits


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Piecewise-linear monotone map through ``(x[i], y[i])`` (block centres and block hit rates)."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: str = "isotonic"

    def transform(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        out = np.interp(s, np.asarray(self.x), np.asarray(self.y))
        return np.where(np.isfinite(s), out, 0.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicCalibrator:
        x, y = d.get("x"), d.get("y")
        if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or not x:
            raise XMTCError("isotonic calibration: 'x' and 'y' must be non-empty lists of the same length")
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya)) and np.all(np.diff(xa) >= 0)
                and np.all(np.diff(ya) >= 0)):
            raise XMTCError("isotonic calibration: 'x' and 'y' must be finite and non-decreasing")
        return cls(tuple(float(v) for v in xa), tuple(float(v) for v in ya))

    def describe(self) -> str:
        return f"isotonic ({len(self.x)} points)"

    @classmethod
    def fit(cls, scores: np.ndarray, hits: np.ndarray) -> IsotonicCalibrator:
        order = np.argsort(scores, kind="stable")
        s, h = scores[order], hits[order]
        # pool equal scores first: one block per distinct score
        uniq, start = np.unique(s, return_index=True)
        w = np.diff(np.append(start, len(s))).astype(np.float64)
        v = np.add.reduceat(h, start) / w
        lo, hi = uniq.copy(), uniq.copy()
        # pool adjacent violators (a stack of blocks: mean, weight, score range)
        means, weights, los, his = [], [], [], []
        for i in range(len(uniq)):
            m, wt, a, b = v[i], w[i], lo[i], hi[i]
            while means and means[-1] >= m:
                pm, pw = means.pop(), weights.pop()
                m = (pm * pw + m * wt) / (pw + wt)
                wt += pw
                a = los.pop()
                his.pop()
            means.append(m)
            weights.append(wt)
            los.append(a)
            his.append(b)
        x = [(a + b) / 2 for a, b in zip(los, his, strict=True)]
        return cls(tuple(float(t) for t in x), tuple(float(t) for t in means))


@dataclass(frozen=True)
class PlattCalibrator:
    """``sigmoid(a * z + b)``, ``z = logit(clip(score))`` when ``logit`` (scores in [0, 1]) else ``z = score``."""

    a: float
    b: float
    logit: bool = True
    kind: str = "platt"

    def _z(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isfinite(s), s, 0.0 if self.logit else -1e9)
        if self.logit:
            s = np.clip(s, _EPS, 1 - _EPS)
            return np.log(s) - np.log1p(-s)
        return s

    def transform(self, scores: Any) -> np.ndarray:
        t = np.clip(self.a * self._z(scores) + self.b, -60, 60)
        return (1.0 / (1.0 + np.exp(-t))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "logit": self.logit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        a, b, logit = d.get("a"), d.get("b"), d.get("logit", True)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (a, b)):
            raise XMTCError(f"platt calibration: 'a' and 'b' must be finite numbers, got {a!r}, {b!r}")
        if not isinstance(logit, bool):
            raise XMTCError(f"platt calibration: 'logit' must be true or false, got {logit!r}")
        return cls(float(a), float(b), logit)

    def describe(self) -> str:
        z = "logit(score)" if self.logit else "score"
        return f"platt: sigmoid({self.a:.4g} * {z} + {self.b:.4g})"

    @classmethod
    def fit(cls, scores: np.ndarray, hits: np.ndarray) -> PlattCalibrator:
        logit = bool(scores.size and scores.min() >= 0.0 and scores.max() <= 1.0)
        z = cls(1.0, 0.0, logit)._z(scores)
        a, b = 1.0, 0.0
        for _ in range(100):  # Newton's method on the mean log-loss (convex in a, b)
            p = 1.0 / (1.0 + np.exp(-np.clip(a * z + b, -60, 60)))
            r, q = p - hits, np.maximum(p * (1 - p), 1e-12)
            g = np.array([np.mean(r * z), np.mean(r)])
            H = np.array([[np.mean(q * z * z), np.mean(q * z)], [np.mean(q * z), np.mean(q)]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(H, g)
            a, b = a - step[0], b - step[1]
            if np.max(np.abs(step)) < 1e-9:
                break
        return cls(float(a), float(b), logit)


Calibrator = IsotonicCalibrator | PlattCalibrator
_KINDS: dict[str, Any] = {"isotonic": IsotonicCalibrator, "platt": PlattCalibrator}


def fit(kind: str, Y: Any, top: Any) -> Calibrator:
    """Fit a calibrator of ``kind`` ('isotonic' or 'platt') on the top-k candidates ``top`` of documents whose
    gold labels are ``Y`` (validation documents: never the test split)."""
    if kind not in _KINDS:
        raise XMTCError(f"calibration must be one of {', '.join(_KINDS)}, but is {kind!r}")
    scores, hits = pairs(Y, top)
    if scores.size == 0:
        raise XMTCError("calibration needs at least one candidate label, but the predictions hold none")
    if hits.min() == hits.max():
        raise XMTCError(f"calibration needs both gold and non-gold candidates, but all {scores.size} are "
                        f"{'gold' if hits[0] else 'non-gold'}")
    return _KINDS[kind].fit(scores, hits)


def calibrator_from_dict(d: Any) -> Calibrator:
    """The calibrator written by ``calibrator.to_dict()``."""
    if not isinstance(d, dict) or d.get("kind") not in _KINDS:
        kind = d.get("kind") if isinstance(d, dict) else d
        raise XMTCError(f"calibration: unknown kind {kind!r} (known: {', '.join(_KINDS)})")
    return _KINDS[d["kind"]].from_dict(d)
