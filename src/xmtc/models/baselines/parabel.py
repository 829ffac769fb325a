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

import json
import os
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
from xmtc.models.baselines.omikuji_io import (
    omikuji_output,
    omikuji_predict,
    write_xmlrepo,
)

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
        check(0 <= self.seed < 2**32, f"seed must be in 0..{2**32 - 1}, but is {self.seed}")
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
            with omikuji_output(cfg.verbose, "training"):
                self.model_ = omikuji.Model.train_on_data(data_file, cfg.hyper_param(),
                                                          n_threads=cfg.n_threads)
        self._prepare_prediction()
        self.n_features_ = int(X.shape[1])
        self.label_index_ = train.label_index
        return self

    def _prepare_prediction(self) -> None:
        with omikuji_output(self.config.verbose, "preparing the model for prediction"):
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
        with omikuji_output(self.config.verbose, "saving"):
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
            with omikuji_output(self.config.verbose, "loading"):
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
