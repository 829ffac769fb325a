"""Combining the top-k predictions of several models: score averaging and the AttentionXML consensus.

* :func:`average_topk`: weighted mean of the members' scores over the union of their candidates; a label
  missing from a member's top-k counts as score 0 for that member.
* :func:`consensus_topk`: AttentionXML's consensus ensemble (You et al., 2019, Eq. 9),
  ``P(x, l) = 1 - (1 - P0(x, l)) * (1 - P1(x, l))``, for probability scores in [0, 1] (missing = 0).
  :func:`consensus_many` applies the same rule to any number of members, ``1 - prod_i (1 - P_i)``.
* :func:`align_topk`: re-expresses a model's predictions in another label index (by label name).

The combinators are vectorised over documents: the members' (n, k_i) candidate arrays are concatenated, sorted
by label id within each row, duplicates are merged with a cumulative sum, and the k best are selected per row.

The registered model ``ensemble`` combines saved models. Its config lists the member model folders; it trains
nothing (``fit`` only loads and checks the members). Saving writes ``config.json`` (the members as given) and
``members.json``: each member's path *relative to the ensemble folder* (absolute when no relative path exists,
e.g. another drive), its absolute path at saving time, and the SHA-256 of the member's ``meta.json``. Loading
resolves the relative path against the ensemble folder first (an ensemble folder and its members can be moved
together), then falls back to the recorded absolute path (the ensemble folder alone was copied elsewhere), and
refuses a member whose ``meta.json`` (which itself pins the hashes of all the member's files) changed since
the ensemble was saved. The ``members`` list in ``config.json`` is kept as the user gave it, for information.

Members must be models of the same task: each member shares at least half of its labels with member 0, and
those are at least half of member 0's labels (:func:`check_label_overlap`); ``allow_disjoint_labels=true``
combines members over the union of their labels anyway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmtc.config import Config, check, doc_field
from xmtc.data.labels import LabelIndex
from xmtc.data.split import Dataset
from xmtc.decision_rules import CalibratedRule
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import TopK, XMTCModel, _sha256, check_k, load_model, register

_MEMBERS_FILE = "members.json"
MIN_LABEL_OVERLAP = 0.5  # share of its labels each member must have in common with member 0 (both ways)


# --------------------------------------------------------------------------- combinators
def _stack(tops: Sequence[TopK], values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate candidate ids (n, sum k_i) and per-member values; padding gets id -1 and value 0."""
    if not tops:
        raise XMTCError("an ensemble needs at least one prediction")
    n, n_labels = len(tops[0]), tops[0].n_labels
    for i, t in enumerate(tops):
        if len(t) != n:
            raise XMTCError(f"prediction {i} has {len(t)} documents, prediction 0 has {n}")
        if t.n_labels != n_labels:
            raise XMTCError(f"prediction {i} is over {t.n_labels} labels, prediction 0 over {n_labels}")
    idx = np.concatenate([t.indices for t in tops], axis=1).astype(np.int64)  # (n, M)
    val = np.concatenate(values, axis=1).astype(np.float64)  # (n, M)
    val[idx < 0] = 0.0
    return idx, val


def _merge_topk(idx: np.ndarray, val: np.ndarray, k: int, n_labels: int, finish) -> TopK:
    """Sum ``val`` over equal ids within each row, map the sums with ``finish``, keep the top ``k``.

    Args:
        idx: int64 (n, M) candidate label ids, -1 for none.
        val: float64 (n, M) contributions to be summed per (row, id).
        k: labels kept per row.
        n_labels: size of the label space.
        finish: maps the per-(row, id) sums to the final scores (vectorised).
    """
    n, m = idx.shape
    if m == 0:
        return TopK(np.full((n, k), -1), np.full((n, k), -np.inf), n_labels=n_labels)
    order = np.argsort(idx, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)  # (n, M) ids ascending per row
    val = np.take_along_axis(val, order, axis=1)
    csum = np.cumsum(val, axis=1)  # (n, M)
    last = np.ones((n, m), dtype=bool)  # last position of each run of equal ids
    last[:, :-1] = idx[:, 1:] != idx[:, :-1]
    first = np.ones((n, m), dtype=bool)
    first[:, 1:] = idx[:, 1:] != idx[:, :-1]
    # sum of a run = csum at its end - csum just before its start; written at the run's last position
    before = np.where(first, csum - val, 0.0)
    start_csum = np.maximum.accumulate(np.where(first, np.arange(m), -1), axis=1)  # (n, M) run start column
    run_sum = csum - np.take_along_axis(before, start_csum, axis=1)
    score = np.where(last & (idx >= 0), finish(run_sum), -np.inf)  # (n, M), one finite entry per label
    kk = min(k, m)
    # best first; ties broken by smaller label id (ids are ascending, the sort is stable)
    best = np.argsort(-score, axis=1, kind="stable")[:, :kk]
    top_idx = np.take_along_axis(idx, best, axis=1)
    top_val = np.take_along_axis(score, best, axis=1)
    top_idx[~np.isfinite(top_val)] = -1
    if kk < k:
        top_idx = np.hstack([top_idx, np.full((n, k - kk), -1)])
        top_val = np.hstack([top_val, np.full((n, k - kk), -np.inf)])
    return TopK(top_idx, top_val, n_labels=n_labels)


def average_topk(tops: Sequence[TopK], k: int, weights: Sequence[float] | None = None) -> TopK:
    """Weighted average of scores over the union of the members' candidates (a missing label scores 0).

    ``score(x, l) = sum_i w_i * s_i(x, l) / sum_i w_i`` where ``s_i(x, l) = 0`` when label ``l`` is not in
    member ``i``'s top-k for ``x``.

    Args:
        tops: the members' predictions on the same documents and label space.
        k: labels kept per document.
        weights: non-negative member weights with a positive sum (default: equal).

    Returns:
        TopK (n, k) sorted by decreasing averaged score.
    """
    check_k(k)
    if weights is None:
        weights = [1.0] * len(tops)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(tops),):
        raise XMTCError(f"got {len(w)} weights for {len(tops)} predictions")
    if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise XMTCError(f"weights must be finite, non-negative and not all zero, but are {list(weights)}")
    w = w / w.sum()
    values = [np.where(t.indices >= 0, t.scores, 0.0) * wi for t, wi in zip(tops, w, strict=True)]
    idx, val = _stack(tops, values)
    return _merge_topk(idx, val, k, tops[0].n_labels, finish=lambda s: s)


def _check_probabilities(tops: Sequence[TopK]) -> None:
    for i, t in enumerate(tops):
        s = t.scores[t.indices >= 0]
        if s.size and (s.min() < 0 or s.max() > 1 or not np.isfinite(s).all()):
            raise XMTCError(f"consensus needs probability scores in [0, 1], but prediction {i} has scores in "
                            f"[{s.min():.4g}, {s.max():.4g}]; use method 'average' for such models")


def consensus_many(tops: Sequence[TopK], k: int) -> TopK:
    """Consensus of any number of members: ``P = 1 - prod_i (1 - P_i)`` (missing = 0).

    Computed as ``-expm1(sum_i log1p(-P_i))``; ``P_i`` is clipped to ``1 - 1e-12`` first so that a
    certain member (``P_i = 1``) keeps the result at 1 up to rounding.

    Raises:
        XMTCError: when a member's scores are not probabilities in [0, 1].
    """
    check_k(k)
    _check_probabilities(tops)
    values = [np.log1p(-np.minimum(np.where(t.indices >= 0, t.scores, 0.0).astype(np.float64), 1 - 1e-12))
              for t in tops]
    idx, val = _stack(tops, values)
    return _merge_topk(idx, val, k, tops[0].n_labels, finish=lambda s: -np.expm1(s))


def consensus_topk(top_a: TopK, top_b: TopK, k: int) -> TopK:
    """AttentionXML Eq. 9: ``P(x, l) = 1 - (1 - P0(x, l)) * (1 - P1(x, l))`` over the union of candidates.

    A label outside one model's top-k gets probability 0 from that model, so its consensus score is the
    other model's probability.

    Args:
        top_a: predictions of the first model (probabilities in [0, 1]).
        top_b: predictions of the second model on the same documents.
        k: labels kept per document.

    Returns:
        TopK (n, k) sorted by decreasing consensus probability.
    """
    return consensus_many([top_a, top_b], k)


def align_topk(top: TopK, names: Sequence[str], target: LabelIndex) -> TopK:
    """Re-express predictions made over the label names ``names`` in the label ids of ``target``.

    Models trained on different subsets of a dataset have different label indexes; their predictions must
    share one index before they are combined or scored. Labels unknown to ``target`` are dropped; each row
    keeps its order and its padding (-1 / -inf) moves to the end, so the result is a valid TopK of the same
    width. When ``names`` equals ``target.names`` the prediction is returned as it is.

    Args:
        top: predictions (n, k) whose ids index ``names``.
        names: the label names of the predicting model (``model.label_index_.names``).
        target: the label index to express the predictions in (e.g. the evaluation data's).

    Returns:
        TopK (n, k) over ``len(target)`` labels.
    """
    names = list(names)
    if top.n_labels != len(names):
        raise XMTCError(f"predictions over {top.n_labels} labels cannot be read with {len(names)} label names")
    if names == target.names:
        return top
    label_map = np.asarray([target.get(n) for n in names], dtype=np.int64)  # source id -> target id or -1
    idx = np.where(top.indices >= 0, label_map[np.maximum(top.indices, 0)], -1)  # (n, k)
    score = np.where(idx >= 0, top.scores, -np.inf)
    order = np.argsort(idx < 0, axis=1, kind="stable")  # kept entries first, in their order
    return TopK(np.take_along_axis(idx, order, axis=1), np.take_along_axis(score, order, axis=1),
                n_labels=len(target))


# --------------------------------------------------------------------------- the registered model
@dataclass
class EnsembleConfig(Config):
    """An ensemble of saved models (member folders) combined per document."""

    members: list[str] = doc_field([], "member model folders (absolute, or relative to the working folder)")
    method: str = doc_field("average", "'average' (weighted mean score) or 'consensus' (1 - prod(1 - P_i))")
    weights: list[float] | None = doc_field(None, "per-member weights for 'average' (default: equal)")
    member_k: int = doc_field(50, "candidates taken from each member before combining (at least the asked k)")
    allow_disjoint_labels: bool = doc_field(
        False, "combine members whose label sets overlap little, over the union of their labels (false: each "
        f"member must share at least {MIN_LABEL_OVERLAP:.0%} of its labels with member 0, and those must be at "
        f"least {MIN_LABEL_OVERLAP:.0%} of member 0's labels)")
    calibrated: bool = doc_field(False, "map each member's scores through its own saved calibration (xmtc tune "
                                        "--calibrate, fitted on its validation documents) before combining")
    seed: int = doc_field(0, "unused (nothing random); kept for the shared config contract")

    def validate(self) -> None:
        check(isinstance(self.members, list) and all(isinstance(m, str) and m for m in self.members),
              f"members must be a list of model folder paths, but is {self.members!r}")
        check(self.method in ("average", "consensus"),
              f"method must be 'average' or 'consensus', but is {self.method!r}")
        check(self.member_k > 0, f"member_k must be positive, but is {self.member_k}")
        if self.weights is not None:
            check(len(self.weights) == len(self.members),
                  f"weights must have one entry per member ({len(self.members)}), "
                  f"but has {len(self.weights)}")
            check(all(w >= 0 for w in self.weights) and sum(self.weights) > 0,
                  f"weights must be non-negative and not all zero, but are {self.weights}")
            check(self.method == "average", "weights are only used by method 'average'")


@register("ensemble")
class EnsembleModel(XMTCModel):
    """Combines the predictions of saved models (see the module docstring for the folder format)."""

    Config = EnsembleConfig

    def __init__(self, config: EnsembleConfig | None = None):
        super().__init__(config)
        self.members_: list[XMTCModel] = []
        self.member_paths_: list[Path] = []
        self.label_maps_: list[np.ndarray] = []  # member label id -> ensemble label id

    def fit(self, train: Dataset | None = None, valid: Dataset | None = None, *,
            run_dir: str | Path | None = None, resume: bool = False) -> EnsembleModel:
        """Load the member folders listed in the config (nothing is trained).

        Args:
            train: optional; when given, its label index must be covered by the members' labels.
            valid: unused.
            run_dir: unused.
            resume: unused.

        Returns:
            self
        """
        if not self.config.members:
            raise XMTCError("ensemble: config.members is empty; list the saved model folders to combine")
        self._attach([Path(m).expanduser().resolve() for m in self.config.members])
        if train is not None:
            missing = [n for n in train.label_index.names if n not in self.label_index_]
            if missing:
                raise XMTCError(f"ensemble: {len(missing)} training labels are unknown to every member, "
                                f"e.g. {missing[:3]}")
        return self

    def _attach(self, paths: list[Path], digests: list[str] | None = None) -> None:
        members = []
        for i, p in enumerate(paths):
            if not (p / "meta.json").is_file():
                raise ModelLoadError(f"ensemble member {i}: {p} is not an xmtc model folder (no meta.json)")
            if digests is not None and _sha256(p / "meta.json") != digests[i]:
                raise ModelLoadError(f"ensemble member {i}: {p} changed since the ensemble was saved "
                                     "(meta.json checksum mismatch)")
            members.append(load_model(p))
            if self.config.calibrated and not isinstance(members[-1].decision_, CalibratedRule):
                raise XMTCError(f"ensemble member {i}: {p} has no saved score calibration, but calibrated=true; "
                                f"run xmtc tune {p} --calibrate isotonic (or platt) first")
        if not self.config.allow_disjoint_labels:
            check_label_overlap([m.label_index_.names for m in members], paths)
        # the ensemble's label space: the first member's labels, then labels only later members know
        names = list(members[0].label_index_.names)
        seen = set(names)
        for m in members[1:]:
            for name in m.label_index_.names:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        index = LabelIndex(names)
        self.label_maps_ = [np.asarray([index.id(n) for n in m.label_index_.names], dtype=np.int64)
                            for m in members]
        self.members_, self.member_paths_, self.label_index_ = members, paths, index

    def _predict(self, data: Dataset | Sequence[str], k: int) -> TopK:
        member_k = max(k, self.config.member_k)
        tops = []
        for m, label_map in zip(self.members_, self.label_maps_, strict=True):
            t = m.predict(data, k=member_k)
            scores = m.decision_.calibrate(t).scores if self.config.calibrated else t.scores
            idx = np.where(t.indices >= 0, label_map[np.maximum(t.indices, 0)], -1)  # into the ensemble's ids
            tops.append(TopK(idx, scores, n_labels=len(self.label_index_)))
        if self.config.method == "consensus":
            return consensus_many(tops, k)
        return average_topk(tops, k, self.config.weights)

    def _save_state(self, path: Path) -> list[str]:
        path = path.resolve()
        entries = []
        for p in self.member_paths_:
            try:
                stored = os.path.relpath(p, path)
            except ValueError:  # no relative path (e.g. another drive on Windows)
                stored = str(p)
            entries.append({"path": stored, "absolute_path": str(p), "meta_sha256": _sha256(p / "meta.json")})
        payload = {"method": self.config.method, "members": entries}
        (path / _MEMBERS_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return [_MEMBERS_FILE]

    def _load_state(self, path: Path) -> None:
        f = path / _MEMBERS_FILE
        try:
            entries = json.loads(f.read_text(encoding="utf-8"))["members"]
            paths = [_member_path(path, e["path"], e.get("absolute_path")) for e in entries]
            digests = [str(e["meta_sha256"]) for e in entries]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{f}: unreadable ensemble member list ({e})") from None
        if not paths:
            raise ModelLoadError(f"{f}: the ensemble has no members")
        saved_names = self.label_index_.names
        self._attach(paths, digests)
        if self.label_index_.names != saved_names:
            raise ModelLoadError(f"{path}: the members' labels no longer match label_index.json")


def label_overlap(a: Sequence[str], b: Sequence[str]) -> tuple[int, float, float]:
    """(shared labels, share of ``a``'s labels that ``b`` knows, share of ``b``'s labels that ``a`` knows)."""
    shared = len(set(a) & set(b))
    return shared, shared / max(len(set(a)), 1), shared / max(len(set(b)), 1)


def check_label_overlap(label_sets: Sequence[Sequence[str]], paths: Sequence[str | Path] | None = None,
                        min_overlap: float = MIN_LABEL_OVERLAP) -> None:
    """Refuse members whose labels overlap too little to be averaged (members of unrelated tasks).

    Rule: every member ``i >= 1`` shares at least ``min_overlap`` of its own labels with member 0, and those
    shared labels are at least ``min_overlap`` of member 0's labels. Averaging a 4,271-label EUR-Lex model with
    a 28-label emotions model passes neither: a label one member does not know scores 0 there, so the result
    mixes two unrelated rankings.

    Raises:
        XMTCError: names the first failing member, the figures, and ``allow_disjoint_labels``.
    """
    def name(i: int) -> str:
        return f"member {i}" + (f" ({paths[i]})" if paths is not None else "")

    ref = label_sets[0]
    for i, labels in enumerate(label_sets[1:], start=1):
        shared, own_share, ref_share = label_overlap(labels, ref)
        if own_share < min_overlap or ref_share < min_overlap:
            n_own, n_ref = len(set(labels)), len(set(ref))
            raise XMTCError(
                f"ensemble: {name(i)} shares {shared:,} of its {n_own:,} labels ({own_share:.0%}) with {name(0)}, "
                f"which has {n_ref:,} labels ({ref_share:.0%} of them shared); members must share at least "
                f"{min_overlap:.0%} of their labels both ways, or their averaged scores mix unrelated tasks. "
                "To combine them over the union of their labels anyway, set allow_disjoint_labels=true "
                "(xmtc ensemble --allow-label-union)"
            )


def _member_path(folder: Path, stored: str, absolute: str | None) -> Path:
    """A member's folder: ``stored`` resolved against the ensemble folder (they moved together), else the
    absolute path recorded at saving (the ensemble folder alone was copied elsewhere)."""
    rel = (folder / stored).resolve()
    if (rel / "meta.json").is_file() or not absolute:
        return rel
    return Path(absolute)
