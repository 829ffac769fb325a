"""The model contract: ``XMTCModel`` (fit -> self, predict -> TopK, save/load a folder), ``TopK``, and the
table of registered implementations (``MODELS``, ``@register``, :func:`load_model`).

Every model module imports ``register`` from here, never from :mod:`xmtc.registry`: the registry is the layer
above, which imports the built-in models (:mod:`xmtc.models.catalog`) on first use, so the imports run one way.

A saved model is a folder: ``meta.json`` (model name, format and library versions, SHA-256 of every state
file), ``config.json``, ``label_index.json``, an optional ``decision.json`` (the decision rule for label sets,
:func:`save_decision`) and the model's own state files (safetensors, ``.npz`` read with
``allow_pickle=False``, JSON). Loading never unpickles and refuses a folder whose files were changed.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmtc.config import Config
from xmtc.data.labels import LabelIndex
from xmtc.data.split import Dataset
from xmtc.errors import ConfigError, ModelLoadError, XMTCError
from xmtc.models.folder import (  # noqa: F401  (re-exported: the model contract's folder helpers)
    FORMAT_VERSION,
    INCOMPLETE,
    SAVING_MARKER,
    _incomplete,
    _json_type,
    _previous_files,
    _sha256,
    _versions,
    folder_files,
    load_arrays,
    load_sparse,
    read_meta,
    save_arrays,
    save_sparse,
    verify_files,
)

if TYPE_CHECKING:
    from xmtc.decision import LabelSets


@dataclass
class TopK:
    """Top-k predictions: ``indices`` int32 (n, k) label ids (-1 pads rows with fewer than k labels) and
    ``scores`` float32 (n, k), each row sorted by decreasing score."""

    indices: np.ndarray
    scores: np.ndarray
    n_labels: int

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if self.indices.shape != self.scores.shape or self.indices.ndim != 2:
            raise ValueError(f"indices {self.indices.shape} and scores {self.scores.shape} must be equal 2-D shapes")

    def __len__(self) -> int:
        return self.indices.shape[0]

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def to_csr(self) -> sp.csr_matrix:
        """CSR (n, n_labels) with the scores at the predicted ids (padding dropped)."""
        n, k = self.indices.shape
        mask = self.indices >= 0
        rows = np.repeat(np.arange(n), k).reshape(n, k)[mask]
        return sp.csr_matrix((self.scores[mask], (rows, self.indices[mask])), shape=(n, self.n_labels))

    @classmethod
    def from_scores(cls, scores: np.ndarray, k: int) -> TopK:
        """Top-k of a dense score matrix (n, L)."""
        scores = np.asarray(scores, dtype=np.float32)
        n, n_labels = scores.shape
        kk = min(k, n_labels)
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
        val = np.take_along_axis(part_scores, order, axis=1)
        return cls(*_pad(idx, val, k), n_labels=n_labels)

    @classmethod
    def from_csr(cls, scores: sp.csr_matrix, k: int) -> TopK:
        """Top-k of each row of a sparse score matrix (rows with fewer entries are padded with -1)."""
        scores = sp.csr_matrix(scores)
        n = scores.shape[0]
        idx = np.full((n, k), -1, dtype=np.int32)
        val = np.full((n, k), -np.inf, dtype=np.float32)
        for r in range(n):
            lo, hi = scores.indptr[r], scores.indptr[r + 1]
            if hi == lo:
                continue
            cols, data = scores.indices[lo:hi], scores.data[lo:hi]
            order = np.argsort(-data, kind="stable")[:k]
            idx[r, : len(order)] = cols[order]
            val[r, : len(order)] = data[order]
        return cls(idx, val, n_labels=scores.shape[1])


def _pad(idx: np.ndarray, val: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if idx.shape[1] >= k:
        return idx, val
    n = idx.shape[0]
    pad_i = np.full((n, k - idx.shape[1]), -1, dtype=idx.dtype)
    pad_v = np.full((n, k - idx.shape[1]), -np.inf, dtype=val.dtype)
    return np.hstack([idx, pad_i]), np.hstack([val, pad_v])


def check_k(k: int) -> None:
    """Raise a clear error unless ``k`` is a positive integer."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise XMTCError(f"k must be a positive integer, but is {k!r}")


class XMTCModel:
    """Base class of every model.

    Subclasses set ``Config`` (a :class:`~xmtc.config.Config` subclass), are decorated with
    ``@register(name)`` and implement ``fit``, ``_predict``, ``_save_state`` and ``_load_state``. The
    constructor only stores the config; fitted state ends in ``_``.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[Config]] = Config
    decision_: Any = None  # decision rule for label sets (xmtc.decision), saved as decision.json
    decision_info_: dict[str, Any] | None = None  # how it was tuned (metric, validation documents, scores)

    def __init__(self, config: Config | None = None):
        config = config if config is not None else self.Config()
        if not isinstance(config, self.Config):
            raise ConfigError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.label_index_: LabelIndex | None = None

    # ----------------------------------------------------------------- training / prediction
    def fit(self, train: Dataset, valid: Dataset | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False) -> XMTCModel:
        """Train on ``train``; ``valid`` (taken from train, never the test split) drives early stopping.

        Args:
            train: training split.
            valid: validation split; models that need one split it off ``train`` with the config seed when None.
            run_dir: folder for checkpoints and ``metrics.jsonl``; enables ``resume``.
            resume: continue from the last checkpoint in ``run_dir``.

        Returns:
            self
        """
        raise NotImplementedError

    def predict(self, data: Dataset | Sequence[str], k: int = 5) -> TopK:
        """Top-``k`` labels for each document (raw texts or a Dataset)."""
        check_k(k)
        self._check_fitted()
        return self._predict(data, k)

    def _predict(self, data: Dataset | Sequence[str], k: int) -> TopK:
        raise NotImplementedError

    def predict_sets(self, data: Dataset | Sequence[str], rule: Any = None) -> LabelSets:
        """The label set of each document chosen by ``rule`` (default: the saved rule, see ``xmtc tune``) from
        the top ``rule.depth`` candidates: a :class:`~xmtc.decision.LabelSets` (ids and scores per document)."""
        from xmtc.decision import NO_RULE, to_sets

        rule = rule if rule is not None else self.decision_
        if rule is None:
            raise XMTCError(NO_RULE)
        return to_sets(self.predict(data, k=rule.depth), rule)

    def explain(self, text: str, label: str | int) -> tuple[list[str], np.ndarray]:
        """Per-token attention weights of ``text`` for ``label`` (models with label attention only).

        Returns:
            (tokens, weights float32 (len(tokens),)).
        """
        raise XMTCError(f"model {self.name!r} has no per-label attention to explain")

    @property
    def supports_explain(self) -> bool:
        return type(self).explain is not XMTCModel.explain

    def _check_fitted(self) -> None:
        if self.label_index_ is None:
            raise XMTCError(f"{type(self).__name__} is not fitted yet: call fit() or load a saved model")

    @staticmethod
    def texts_of(data: Dataset | Sequence[str]) -> list[str]:
        """The raw texts of ``data``; a clear error for sparse-only datasets."""
        if isinstance(data, Dataset):
            if data.texts is None:
                raise XMTCError(f"dataset {data.name!r} has no raw texts (sparse features only); "
                                "use a sparse model such as 'parabel'")
            return data.texts
        if isinstance(data, str):
            raise XMTCError("predict expects a list of texts, not a single string")
        return list(data)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the model folder ``path`` (created if needed). Returns the path.

        A marker file (:data:`SAVING_MARKER`) exists while the files are written and ``meta.json`` is replaced
        atomically last, so a save that is killed half way leaves a folder that :meth:`load` reports as
        incompletely written (not as tampered with). Files an earlier save into the same folder wrote and this
        one does not are removed (every file of a model folder must be covered by ``meta.json``).
        """
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        old_files = _previous_files(path)
        marker = path / SAVING_MARKER
        marker.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}) + "\n", encoding="utf-8")
        self.config.to_json(path / "config.json")
        self.label_index_.to_json(path / "label_index.json")
        written = [*(self._save_state(path) or []), *_write_decision(self, path)]
        files = list(dict.fromkeys(["config.json", "label_index.json", *map(str, written)]))
        for stale in old_files - set(files):
            with contextlib.suppress(OSError):
                (path / stale).unlink()
        meta = {
            "model": self.name,
            "format": FORMAT_VERSION,
            "versions": _versions(),
            "n_labels": len(self.label_index_),
            "sha256": {f: _sha256(path / f) for f in files},
        }
        tmp = path / f".meta.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path / "meta.json")
        marker.unlink()
        return path

    @classmethod
    def load(cls, path: str | Path) -> XMTCModel:
        """Rebuild from a folder written by :meth:`save`; verifies the format version and that every file of
        the folder is covered by an unchanged checksum in ``meta.json``."""
        path = Path(path)
        meta = read_meta(path)
        if meta.get("model") != cls.name:
            raise ModelLoadError(f"{path}: holds a {meta.get('model')!r} model, not {cls.name!r}")
        verify_files(path, meta)
        config = cls.Config.from_json(path / "config.json")
        model = cls(config)
        model.label_index_ = LabelIndex.from_json(path / "label_index.json")
        if len(model.label_index_) != meta.get("n_labels"):
            raise ModelLoadError(f"{path}: label_index.json has {len(model.label_index_)} labels, "
                                 f"meta.json says {meta.get('n_labels')}")
        model._load_state(path)
        model.decision_, model.decision_info_ = _read_decision(path)
        return model

    def _save_state(self, path: Path) -> list[str]:
        """Write fitted state into ``path``; return the file names written (relative)."""
        raise NotImplementedError

    def _load_state(self, path: Path) -> None:
        """Read the state written by :meth:`_save_state`; check shapes against the config."""
        raise NotImplementedError


# --------------------------------------------------------------------------- decision.json (label sets, issue 16)
def _write_decision(model: XMTCModel, path: Path) -> list[str]:
    """Write ``decision.json`` for ``model.decision_`` during :meth:`XMTCModel.save` (no rule: no file)."""
    if model.decision_ is None:
        return []
    from xmtc.decision import DECISION_FILE, decision_payload

    payload = decision_payload(model.decision_, model.decision_info_)
    (path / DECISION_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return [DECISION_FILE]


def save_decision(path: str | Path, rule: Any, tuning: dict[str, Any] | None = None) -> Path:
    """Add (or replace) the decision rule of the saved model folder ``path``: writes ``decision.json`` and
    records its SHA-256 in the checksum map of ``meta.json`` (replaced atomically, the save marker around both,
    like :meth:`XMTCModel.save`). Returns the file written."""
    from xmtc.decision import DECISION_FILE, decision_payload

    path = Path(path)
    meta = read_meta(path)
    marker = path / SAVING_MARKER
    marker.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}) + "\n", encoding="utf-8")
    f = path / DECISION_FILE
    f.write_text(json.dumps(decision_payload(rule, tuning), indent=2) + "\n", encoding="utf-8")
    meta["sha256"][DECISION_FILE] = _sha256(f)
    tmp = path / f".meta.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path / "meta.json")
    marker.unlink()
    return f


def _read_decision(path: Path) -> tuple[Any, dict[str, Any] | None]:
    """(rule, tuning info) from ``decision.json`` of a verified model folder, (None, None) when it has none."""
    from xmtc.decision import DECISION_FILE, parse_decision

    f = path / DECISION_FILE
    if not f.is_file():
        return None, None
    try:
        return parse_decision(json.loads(f.read_text(encoding="utf-8")), str(f))
    except (ValueError, XMTCError) as e:
        raise ModelLoadError(f"{f}: invalid decision rule ({e})") from None


# --------------------------------------------------------------------------- the table of registered models
MODELS: dict[str, type[XMTCModel]] = {}


def register(name: str):
    """Class decorator: ``@register("attentionxml")`` adds the model class to :data:`MODELS`."""

    def wrap(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        MODELS[name] = cls
        return cls

    return wrap


def model_class(name: str) -> type[XMTCModel]:
    """The class registered as ``name``; unknown names raise with a close match and the list."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def load_model(path: str | Path) -> XMTCModel:
    """Load a saved model folder by the model name in its ``meta.json``. Never unpickles anything.

    ``path`` may also be a run folder written by ``xmtc train`` (the model sits in ``path/model``). The model's
    class must be registered (:func:`xmtc.registry.load` registers the built-in ones first).
    """
    path = Path(path)
    if not (path / "meta.json").is_file() and (path / "model").is_dir():
        path = path / "model"
    meta = read_meta(path)
    name = meta.get("model")
    if not isinstance(name, str):
        raise ModelLoadError(f"{path / 'meta.json'}: missing 'model' entry (the model name)")
    return model_class(name).load(path)
