"""Sparse tree baselines: Parabel- and Bonsai-like partitioned label trees (omikuji) on TF-IDF features.

Parabel (Prabhu et al., 2018) and Bonsai (Khandagale et al., 2019) are not re-implemented here: both models
drive `omikuji <https://github.com/tomtung/omikuji>`_ (Rust), which trains a forest of label trees built by
(balanced) k-means over label centroids, with a liblinear one-vs-rest classifier per node.

* ``parabel``: balanced 2-means, ``max_depth`` 20, 3 trees, squared-hinge liblinear with C = 1, beam 10
  (omikuji's defaults, which match Parabel).
* ``bonsai``: unbalanced (regular) 100-means, ``max_depth`` 3: shallow and wide trees (omikuji's README).

Features: when the training :class:`~xmtc.data.Dataset` carries precomputed sparse features ``X``
(XMLRepository data) they are used as they are; otherwise a :class:`~xmtc.features.tfidf.TfidfFeaturizer` is
fitted on the training texts. omikuji reads training data only from a file in the XMLRepository text format,
so ``fit`` writes one to a temporary folder (vectorised, see :func:`write_xmlrepo`).

Scores: omikuji returns, per label, the product of the node scores ``exp(-max(0, 1 - w.x)^2)`` along the tree
path, averaged over the trees: numbers in (0, 1] that behave like probabilities (what the AttentionXML
consensus ensemble needs, see :mod:`xmtc.models.ensemble`).

Persistence: ``omikuji/`` holds omikuji's own format, ``settings.json`` plus one ``tree*.cbor`` file per tree
(Rust serde JSON + CBOR: plain data, no code is run on loading), next to the TF-IDF vocabulary/idf files and
``sparse_state.json``. The SHA-256 of every file is checked by :meth:`XMTCModel.load`.

Reproducibility: omikuji has no seed. It draws random numbers from Rust's ``thread_rng()`` (seeded by the
operating system) in two places: the k-means initialisation of the label tree (only when a node has more than
``min_branch_size`` labels) and the example order of its coordinate-descent liblinear solvers, reshuffled at
every pass. So two trainings on the same data differ slightly: with the default ``linear_eps`` 0.1 and
``linear_max_iter`` 20, scores differ by about 0.01-0.04 and low-ranked labels swap. Each node classifier
solves a strictly convex problem with a unique optimum, so when no clustering happens and the solver is run to
convergence (``linear_eps=1e-6, linear_max_iter=5000``, as in :meth:`tiny_config`) repeated trainings agree
up to float32 rounding (about 1e-6). Prediction is deterministic: a fitted or saved model always returns the
same top-k. ``seed`` is kept for the shared config contract and recorded, but it cannot reach omikuji.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.config import Config, check, doc_field
from xmtc.data.split import Dataset
from xmtc.errors import DataError, ModelLoadError, XMTCError
from xmtc.models.base import TopK, XMTCModel, register

_STATE_FILE = "sparse_state.json"
_OMIKUJI_DIR = "omikuji"
_TFIDF_PREFIX = "tfidf"


@dataclass
class OmikujiConfig(Config):
    """Settings shared by the omikuji-backed tree models (TF-IDF features + omikuji hyper-parameters)."""

    seed: int = doc_field(0, "recorded for the config contract; omikuji's randomness cannot be seeded")
    n_threads: int = doc_field(0, "omikuji worker threads for training and prediction (0: all cores)")
    tfidf_max_features: int = doc_field(200000, "TF-IDF vocabulary size cap (most frequent terms kept)")
    tfidf_min_df: int = doc_field(2, "TF-IDF: ignore terms found in fewer training documents")
    tfidf_ngram_max: int = doc_field(1, "TF-IDF: longest word n-gram (1: unigrams only)")
    tfidf_sublinear_tf: bool = doc_field(True, "TF-IDF: use 1 + log(tf) instead of raw term counts")
    n_trees: int = doc_field(3, "number of label trees in the forest (scores are averaged over trees)")
    cluster_k: int = doc_field(2, "children per tree node (k of the label k-means)")
    cluster_balanced: bool = doc_field(True, "balanced k-means (Parabel) instead of regular k-means "
                                             "(Bonsai)")
    cluster_eps: float = doc_field(1e-4, "k-means convergence threshold on the mean cosine similarity")
    cluster_min_size: int = doc_field(2, "clusters with fewer labels are dissolved into the others")
    max_depth: int = doc_field(20, "maximum tree depth")
    min_branch_size: int = doc_field(100, "a node with at most this many labels becomes a leaf")
    collapse_every_n_layers: int = doc_field(0, "collapse this many adjacent layers into one (wider trees)")
    centroid_threshold: float = doc_field(0.0, "prune label-centroid entries below this value")
    linear_c: float = doc_field(1.0, "liblinear cost C of the node classifiers")
    linear_loss: str = doc_field("hinge", "node classifier loss: 'hinge' (squared hinge, Parabel) or 'log'")
    linear_eps: float = doc_field(0.1, "liblinear stopping tolerance")
    linear_max_iter: int = doc_field(20, "liblinear maximum iterations per classifier")
    linear_weight_threshold: float = doc_field(0.1, "prune classifier weights with |w| below this value")
    beam_size: int = doc_field(10, "beam width of the tree search at prediction")
    max_sparse_density: float = doc_field(0.1, "densify weight vectors denser than this for faster "
                                               "prediction (0 keeps all sparse)")
    verbose: bool = doc_field(False, "show omikuji's log lines and progress bars (hidden by default)")

    def validate(self) -> None:
        check(self.n_threads >= 0, f"n_threads must be >= 0, but is {self.n_threads}")
        check(self.tfidf_max_features > 0,
              f"tfidf_max_features must be positive, but is {self.tfidf_max_features}")
        check(self.tfidf_min_df >= 1, f"tfidf_min_df must be >= 1, but is {self.tfidf_min_df}")
        check(self.tfidf_ngram_max >= 1, f"tfidf_ngram_max must be >= 1, but is {self.tfidf_ngram_max}")
        check(self.n_trees > 0, f"n_trees must be positive, but is {self.n_trees}")
        check(self.cluster_k >= 2, f"cluster_k must be >= 2, but is {self.cluster_k}")
        check(self.cluster_eps > 0, f"cluster_eps must be positive, but is {self.cluster_eps}")
        check(self.cluster_min_size > 0, f"cluster_min_size must be positive, but is {self.cluster_min_size}")
        check(self.max_depth > 0, f"max_depth must be positive, but is {self.max_depth}")
        check(self.min_branch_size >= 2, f"min_branch_size must be >= 2, but is {self.min_branch_size}")
        check(self.collapse_every_n_layers >= 0,
              f"collapse_every_n_layers must be >= 0, but is {self.collapse_every_n_layers}")
        check(self.centroid_threshold >= 0,
              f"centroid_threshold must be >= 0, but is {self.centroid_threshold}")
        check(self.linear_c > 0, f"linear_c must be positive, but is {self.linear_c}")
        check(self.linear_loss in ("hinge", "log"),
              f"linear_loss must be 'hinge' or 'log', but is {self.linear_loss!r}")
        check(self.linear_eps > 0, f"linear_eps must be positive, but is {self.linear_eps}")
        check(self.linear_max_iter > 0, f"linear_max_iter must be positive, but is {self.linear_max_iter}")
        check(self.linear_weight_threshold >= 0,
              f"linear_weight_threshold must be >= 0, but is {self.linear_weight_threshold}")
        check(self.beam_size > 0, f"beam_size must be positive, but is {self.beam_size}")
        check(0 <= self.max_sparse_density <= 1,
              f"max_sparse_density must be in [0, 1], but is {self.max_sparse_density}")

    def hyper_param(self):
        """omikuji's ``HyperParam`` struct filled from this config."""
        import omikuji

        hp = omikuji.Model.default_hyper_param()
        hp.n_trees = self.n_trees
        hp.min_branch_size = self.min_branch_size
        hp.max_depth = self.max_depth
        hp.centroid_threshold = self.centroid_threshold
        hp.collapse_every_n_layers = self.collapse_every_n_layers
        hp.linear_eps = self.linear_eps
        hp.linear_c = self.linear_c
        hp.linear_weight_threshold = self.linear_weight_threshold
        hp.linear_max_iter = self.linear_max_iter
        loss = omikuji.LossType.HINGE if self.linear_loss == "hinge" else omikuji.LossType.LOG
        hp.linear_loss_type = loss.value
        hp.cluster_k = self.cluster_k
        hp.cluster_balanced = self.cluster_balanced
        hp.cluster_eps = self.cluster_eps
        hp.cluster_min_size = self.cluster_min_size
        return hp


@dataclass
class ParabelConfig(OmikujiConfig):
    """Parabel: balanced 2-means trees, depth up to 20, 3 trees (omikuji's defaults)."""


@dataclass
class BonsaiConfig(OmikujiConfig):
    """Bonsai: shallow and wide trees from regular (unbalanced) 100-means, depth 3 (omikuji's README)."""

    cluster_k: int = doc_field(100, "children per tree node (k of the label k-means)")
    cluster_balanced: bool = doc_field(False, "balanced k-means (Parabel) instead of regular k-means "
                                              "(Bonsai)")
    max_depth: int = doc_field(3, "maximum tree depth")


# --------------------------------------------------------------------------- XMLRepository writer
_DIGIT_TRIPLES = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)  # (1000, 3)
_TRIPLES = _DIGIT_TRIPLES.view(np.dtype((np.void, 3))).ravel()  # (1000,) 3-byte records "000".."999"
_POW10 = 10.0 ** np.arange(-64, 64)  # _POW10[e + 64] == 10**e


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative integers below ``10**width``, zero-padded: uint8 (n, width)."""
    groups = -(-width // 3)
    values = values.astype(np.uint32 if width <= 9 else np.uint64)  # unsigned division is the fast one
    out = np.empty((len(values), groups), dtype=_TRIPLES.dtype)  # (n, groups) 3-digit records
    for g in range(groups - 1, -1, -1):
        out[:, g] = _TRIPLES[values % 1000]
        values = values // 1000
    return out.view(np.uint8).reshape(len(out), 3 * groups)[:, 3 * groups - width:]


def _float_tokens(values: np.ndarray) -> np.ndarray:
    """``+123456789e-08``-style ASCII of float32 values (9 significant digits: exact round trip), (n, 14)."""
    v = values.astype(np.float64)
    av = np.abs(v)
    nz = av > 0
    exp = np.zeros(len(v), dtype=np.int64)
    exp[nz] = np.floor(np.log10(av[nz])).astype(np.int64) - 8
    mant = np.rint(av / _POW10[exp + 64])  # in [1e8, 1e9) up to log10 rounding, 0 for zeros
    high = mant >= 1e9
    exp[high] += 1
    mant[high] = np.rint(av[high] / _POW10[exp[high] + 64])
    low = nz & (mant < 1e8)
    exp[low] -= 1
    mant[low] = np.rint(av[low] / _POW10[exp[low] + 64])
    out = np.empty((len(v), 14), dtype=np.uint8)
    out[:, 0] = np.where(v < 0, ord("-"), ord("+"))
    out[:, 1:10] = _digits(mant, 9)
    out[:, 10] = ord("e")
    out[:, 11] = np.where(exp < 0, ord("-"), ord("+"))
    out[:, 12:14] = _digits(np.abs(exp), 2)
    return out


def write_xmlrepo(path: str | Path, X: sp.csr_matrix, Y: sp.csr_matrix, chunk_nnz: int = 1 << 20) -> None:
    """Write features and labels in the Extreme Classification Repository text format.

    Header ``n_docs n_features n_labels``, then per document ``l1,l2, f1:v1 f2:v2 ...``. Every number is
    written with a fixed width (zero-padded integers, ``+123456789e-08`` floats: float32 values round-trip
    exactly), so all tokens of a chunk are formatted by numpy at once; Python only joins each document's two
    byte slices. A trailing comma after the labels is accepted by omikuji (empty label tokens are skipped).

    Args:
        path: output file.
        X: CSR (n, F) features (finite values).
        Y: CSR (n, L) binary labels.
        chunk_nnz: about how many non-zeros are formatted per chunk (bounds memory).
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    Y = sp.csr_matrix(Y)
    X.sort_indices()
    Y.sort_indices()
    n, n_features = X.shape
    n_labels = Y.shape[1]
    if Y.shape[0] != n:
        raise DataError(f"features have {n} rows but labels have {Y.shape[0]}")
    if not np.all(np.isfinite(X.data)):
        raise DataError("features contain NaN or infinite values")
    wl = len(str(max(n_labels - 1, 0)))
    wf = len(str(max(n_features - 1, 0)))
    label_slot, feat_slot = wl + 1, 1 + wf + 1 + 14  # "ddd," and " ddd:+123456789e-08"
    nnz_cum = np.cumsum(np.diff(Y.indptr) + np.diff(X.indptr))  # (n,)
    with open(path, "wb") as fh:
        fh.write(f"{n} {n_features} {n_labels}\n".encode())
        lo = 0
        while lo < n:
            base = nnz_cum[lo - 1] if lo > 0 else 0
            hi = min(n, max(lo + 1, int(np.searchsorted(nnz_cum, base + chunk_nnz, side="right"))))
            lab = Y.indices[Y.indptr[lo]:Y.indptr[hi]]
            tok = np.empty((len(lab), label_slot), dtype=np.uint8)  # (labels in chunk, wl + 1)
            tok[:, :wl] = _digits(lab, wl)
            tok[:, wl] = ord(",")
            lab_bytes = memoryview(tok.tobytes())
            idx = X.indices[X.indptr[lo]:X.indptr[hi]]
            tok = np.empty((len(idx), feat_slot), dtype=np.uint8)  # (non-zeros in chunk, feat_slot)
            tok[:, 0] = ord(" ")
            tok[:, 1:1 + wf] = _digits(idx, wf)
            tok[:, 1 + wf] = ord(":")
            tok[:, 2 + wf:] = _float_tokens(X.data[X.indptr[lo]:X.indptr[hi]])
            feat_bytes = memoryview(tok.tobytes())
            lab_off = ((Y.indptr[lo:hi + 1] - Y.indptr[lo]) * label_slot).tolist()
            feat_off = ((X.indptr[lo:hi + 1] - X.indptr[lo]) * feat_slot).tolist()
            pieces: list = []
            for r in range(hi - lo):  # one line: labels, features, newline
                pieces += (lab_bytes[lab_off[r]:lab_off[r + 1]], feat_bytes[feat_off[r]:feat_off[r + 1]],
                           b"\n")
            fh.write(b"".join(pieces))
            lo = hi


# --------------------------------------------------------------------------- omikuji prediction
def omikuji_predict(model, X: sp.csr_matrix, k: int, beam_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of every row of ``X`` with an omikuji model.

    Calls omikuji's C entry point once per document on views of the CSR arrays (the public
    ``Model.predict`` builds Python lists of ``(feature, value)`` pairs for every document instead).

    Returns:
        (indices int32 (n, k) padded with -1, scores float32 (n, k) padded with -inf).
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    X.sum_duplicates()
    n = X.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.full((n, k), -np.inf, dtype=np.float32)
    try:
        from omikuji._libomikuji import ffi, lib

        model_ptr, pool = model._model_ptr, model._thread_pool.ptr
    except (ImportError, AttributeError):  # pragma: no cover - other omikuji versions: public API
        for r in range(n):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            pairs = model.predict(list(zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist(), strict=True)),
                                  beam_size=beam_size, top_k=k)
            for j, (label, score) in enumerate(pairs):
                out_idx[r, j], out_val[r, j] = label, score
        return out_idx, out_val
    indices = np.ascontiguousarray(X.indices, dtype=np.uint32)
    data = np.ascontiguousarray(X.data, dtype=np.float32)
    if len(indices) == 0:  # from_buffer needs a non-empty buffer
        indices, data = np.zeros(1, dtype=np.uint32), np.zeros(1, dtype=np.float32)
    idx_buf = ffi.from_buffer("uint32_t[]", indices)
    val_buf = ffi.from_buffer("float[]", data)
    lab_out = ffi.new("uint32_t[]", k)
    score_out = ffi.new("float[]", k)
    lab_view = np.frombuffer(ffi.buffer(lab_out), dtype=np.uint32)  # (k,) views of the output buffers
    score_view = np.frombuffer(ffi.buffer(score_out), dtype=np.float32)
    indptr = X.indptr.tolist()
    for r in range(n):
        lo, hi = indptr[r], indptr[r + 1]
        got = lib.omikuji_predict(model_ptr, beam_size, hi - lo, idx_buf + lo, val_buf + lo, k,
                                  lab_out, score_out, pool)
        out_idx[r, :got] = lab_view[:got]
        out_val[r, :got] = score_view[:got]
    return out_idx, out_val


@contextlib.contextmanager
def _omikuji_output(verbose: bool, what: str):
    """Hide omikuji's log and progress output (written by Rust straight to file descriptors 1 and 2).

    The output goes to a temporary file instead; when omikuji fails (``RuntimeError``), its last lines are put
    into the raised :class:`XMTCError`. While this is active, anything else the process writes to fds 1/2 is
    hidden too. With ``verbose`` nothing is redirected.
    """
    saved = None
    if not verbose:
        try:
            saved = [os.dup(1), os.dup(2)]
        except OSError:  # no standard file descriptors (e.g. a daemon): nothing to hide
            saved = None
    if saved is None:
        try:
            yield
        except RuntimeError as e:
            raise XMTCError(f"omikuji failed while {what}: {e}") from None
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log = tempfile.TemporaryFile()
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        failure = None
        try:
            yield
        except RuntimeError as e:
            failure = e
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        if failure is not None:
            log.seek(0)
            text = log.read().decode(errors="replace").replace("\r", "\n")
            detail = "; ".join([ln for ln in text.splitlines() if ln.strip()][-5:])
            said = f" (omikuji said: {detail})" if detail else ""
            raise XMTCError(f"omikuji failed while {what}: {failure}{said}")
    finally:
        os.close(saved[0])
        os.close(saved[1])
        log.close()


# --------------------------------------------------------------------------- the models
class _OmikujiTreeModel(XMTCModel):
    """Shared implementation of ``parabel`` and ``bonsai`` (they differ only in config defaults)."""

    Config = OmikujiConfig

    @classmethod
    def tiny_config(cls) -> OmikujiConfig:
        """A fast config for tiny test data whose node classifiers are solved to convergence, so that repeated
        trainings agree up to float32 rounding (see the module docstring on reproducibility)."""
        return cls.Config(n_trees=2, linear_eps=1e-6, linear_max_iter=5000)

    def __init__(self, config: OmikujiConfig | None = None):
        super().__init__(config)
        self.model_ = None  # omikuji.Model
        self.featurizer_ = None  # TfidfFeaturizer, or None when trained on the dataset's X
        self.n_features_: int = 0

    def fit(self, train: Dataset, valid: Dataset | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False) -> _OmikujiTreeModel:
        """Fit TF-IDF (unless ``train.X`` is given) and train the omikuji forest.

        Args:
            train: training split (texts, or sparse features ``X``).
            valid: unused: the trees are trained in one pass, without early stopping.
            run_dir: unused (the temporary training file goes to the system temp folder).
            resume: unused (training is a single call into omikuji).

        Returns:
            self
        """
        import omikuji

        cfg = self.config
        if len(train) == 0:
            raise DataError(f"dataset {train.name!r} ({train.split or 'train'}) has no documents")
        if train.Y.nnz == 0:
            raise DataError(f"dataset {train.name!r} ({train.split or 'train'}) has no labels to learn")
        if train.X is not None:
            self.featurizer_ = None
            X = sp.csr_matrix(train.X, dtype=np.float32)
        else:
            from xmtc.features.tfidf import TfidfFeaturizer

            self.featurizer_ = TfidfFeaturizer(max_features=cfg.tfidf_max_features, min_df=cfg.tfidf_min_df,
                                               ngram_max=cfg.tfidf_ngram_max,
                                               sublinear_tf=cfg.tfidf_sublinear_tf)
            X = self.featurizer_.fit_transform(self.texts_of(train))
        if X.shape[0] != len(train):
            raise DataError(f"dataset {train.name!r}: X has {X.shape[0]} rows but Y has {len(train)}")
        if X.nnz == 0:
            raise DataError(f"dataset {train.name!r}: every document has an empty feature vector")
        with tempfile.TemporaryDirectory(prefix="xmtc-omikuji-") as tmp:
            data_file = os.path.join(tmp, "train.txt")
            write_xmlrepo(data_file, X, train.Y)
            with _omikuji_output(cfg.verbose, "training"):
                self.model_ = omikuji.Model.train_on_data(data_file, cfg.hyper_param(),
                                                          n_threads=cfg.n_threads)
        self._prepare_prediction()
        self.n_features_ = int(X.shape[1])
        self.label_index_ = train.label_index
        return self

    def _prepare_prediction(self) -> None:
        with _omikuji_output(self.config.verbose, "preparing the model for prediction"):
            if self.config.max_sparse_density > 0:
                self.model_.densify_weights(self.config.max_sparse_density, n_threads=self.config.n_threads)
            self.model_.init_prediction_thread_pool(self.config.n_threads)

    def features(self, data: Dataset | Sequence[str]) -> sp.csr_matrix:
        """The sparse feature matrix the forest sees for ``data`` (TF-IDF of the texts, or ``data.X``)."""
        self._check_fitted()
        if self.featurizer_ is None:
            X = data.X if isinstance(data, Dataset) else None
            if X is None:
                raise XMTCError(f"this {self.name} model was trained on precomputed sparse features (X); "
                                "predict needs a Dataset with X, not raw texts")
        else:
            X = self.featurizer_.transform(self.texts_of(data))
        X = sp.csr_matrix(X, dtype=np.float32)
        if X.shape[1] > self.n_features_:
            used = X.indices.max(initial=-1) + 1
            if used > self.n_features_:
                raise DataError(f"features have {X.shape[1]} columns (highest used id {used - 1}) but the "
                                f"model was trained on {self.n_features_}")
            X = X[:, : self.n_features_]
        return X

    def _predict(self, data: Dataset | Sequence[str], k: int) -> TopK:
        X = self.features(data)
        idx, val = omikuji_predict(self.model_, X, k, self.config.beam_size)
        return TopK(idx, val, n_labels=len(self.label_index_))

    def _save_state(self, path: Path) -> list[str]:
        out = path / _OMIKUJI_DIR
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():  # a stale tree file from an earlier save would confuse omikuji
            if old.is_file():
                old.unlink()
        with _omikuji_output(self.config.verbose, "saving"):
            self.model_.save(str(out))
        files = sorted(f"{_OMIKUJI_DIR}/{f.name}" for f in out.iterdir() if f.is_file())
        if self.featurizer_ is not None:
            files += list(self.featurizer_.save(path, _TFIDF_PREFIX))
        state = {"n_features": self.n_features_, "features": "tfidf" if self.featurizer_ is not None else "X",
                 "omikuji_format": "settings.json + tree*.cbor (serde JSON/CBOR)"}
        (path / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return [*files, _STATE_FILE]

    def _load_state(self, path: Path) -> None:
        import omikuji

        try:
            state = json.loads((path / _STATE_FILE).read_text(encoding="utf-8"))
            n_features, kind = int(state["n_features"]), state["features"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{path / _STATE_FILE}: unreadable sparse model state ({e})") from None
        try:
            with _omikuji_output(self.config.verbose, "loading"):
                self.model_ = omikuji.Model.load(str(path / _OMIKUJI_DIR))
        except XMTCError as e:
            raise ModelLoadError(f"{path / _OMIKUJI_DIR}: cannot load the omikuji model ({e})") from None
        if self.model_.n_features != n_features:
            raise ModelLoadError(f"{path}: omikuji model expects {self.model_.n_features} features, "
                                 f"{_STATE_FILE} says {n_features}")
        if self.model_.n_trees != self.config.n_trees:
            raise ModelLoadError(f"{path}: omikuji model has {self.model_.n_trees} trees, "
                                 f"config.json says n_trees={self.config.n_trees}")
        self.n_features_ = n_features
        if kind == "tfidf":
            from xmtc.features.tfidf import TfidfFeaturizer

            self.featurizer_ = TfidfFeaturizer.load(path, _TFIDF_PREFIX)
        else:
            self.featurizer_ = None
        self._prepare_prediction()


@register("parabel")
class ParabelModel(_OmikujiTreeModel):
    """Parabel-like forest of balanced binary label trees (omikuji). See the module docstring."""

    Config = ParabelConfig


@register("bonsai")
class BonsaiModel(_OmikujiTreeModel):
    """Bonsai-like forest of shallow, wide, unbalanced label trees (omikuji). See the module docstring."""

    Config = BonsaiConfig
