"""TF-IDF features over the xmtc tokenizer, persisted as a JSON vocabulary + an ``.npz`` of idf weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from xmtc.errors import DataError, ModelLoadError
from xmtc.text.tokenizer import tokenize

_FORMAT = "xmtc-tfidf"
_VERSION = 1


class TfidfFeaturizer:
    """Bag-of-words TF-IDF vectors (CSR float32, rows L2-normalised).

    Weights follow scikit-learn's ``TfidfVectorizer`` defaults: ``tf = 1 + ln(count)`` when
    ``sublinear_tf`` (else the raw count), ``idf = ln((1 + n) / (1 + df)) + 1`` (smoothed), then L2 row
    normalisation; a document without known terms gives an all-zero row. Tokens come from
    :func:`xmtc.text.tokenize`, so every model sees the same words. Only the term list and the idf vector are
    saved (no pickle).

    Args:
        max_features: keep the this many most frequent terms (by corpus count; None: all).
        min_df: drop terms that occur in fewer documents than this.
        ngram_max: use word n-grams for n = 1..ngram_max (terms of n-grams are joined by a space).
        sublinear_tf: use ``1 + ln(count)`` instead of the raw count.

    Attributes:
        vocabulary_: term -> column (terms in alphabetical column order), set by :meth:`fit`.
        idf_: float64 (F,) idf weight of each column.
    """

    def __init__(self, max_features: int | None = 200000, min_df: int = 2, ngram_max: int = 1,
                 sublinear_tf: bool = True):
        if max_features is not None and max_features < 1:
            raise ValueError(f"max_features must be positive or None, but is {max_features}")
        if min_df < 1:
            raise ValueError(f"min_df must be at least 1, but is {min_df}")
        if ngram_max < 1:
            raise ValueError(f"ngram_max must be at least 1, but is {ngram_max}")
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_max = ngram_max
        self.sublinear_tf = sublinear_tf
        self.vocabulary_: dict[str, int] | None = None
        self.idf_: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Number of columns F (after :meth:`fit`)."""
        self._check_fitted()
        return len(self.vocabulary_)

    @property
    def terms(self) -> list[str]:
        """Term of each column."""
        self._check_fitted()
        terms = [""] * len(self.vocabulary_)
        for t, j in self.vocabulary_.items():
            terms[j] = t
        return terms

    def _counter(self, vocabulary: dict[str, int] | None = None) -> CountVectorizer:
        return CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                               ngram_range=(1, self.ngram_max), dtype=np.float32, vocabulary=vocabulary,
                               min_df=1 if vocabulary else self.min_df,
                               max_features=None if vocabulary else self.max_features)

    def fit(self, texts: Sequence[str]) -> TfidfFeaturizer:
        """Learn the terms and idf weights of ``texts``. Returns self."""
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """:meth:`fit` then :meth:`transform` on the same texts (tokenizes once)."""
        texts = _as_texts(texts)
        counter = self._counter()
        try:
            counts = counter.fit_transform(texts)
        except ValueError as e:  # empty vocabulary / everything pruned
            raise DataError(f"TF-IDF: no terms left from {len(texts)} documents with min_df={self.min_df} "
                            f"({e})") from None
        counts = sp.csr_matrix(counts, dtype=np.float32)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self.vocabulary_ = {t: int(j) for t, j in counter.vocabulary_.items()}
        self.idf_ = np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0
        return self._weight(counts)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF of ``texts``: CSR float32 (n, F), sorted indices, rows L2-normalised (zero rows for
        documents without known terms)."""
        self._check_fitted()
        texts = _as_texts(texts)
        counts = sp.csr_matrix(self._counter(self.vocabulary_).transform(texts), dtype=np.float32)
        return self._weight(counts)

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        x = counts.astype(np.float32)
        x.sort_indices()
        if self.sublinear_tf:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= self.idf_.astype(np.float32)[x.indices]
        x = normalize(x, norm="l2", copy=False).astype(np.float32)
        x.sort_indices()
        return x

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, prefix: str = "tfidf") -> list[str]:
        """Write ``{prefix}.vocab.json`` (settings + terms) and ``{prefix}.idf.npz`` into the folder ``path``.

        Returns:
            The file names written (relative to ``path``).
        """
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        vocab_name, idf_name = f"{prefix}.vocab.json", f"{prefix}.idf.npz"
        payload = {"format": _FORMAT, "version": _VERSION, "max_features": self.max_features,
                   "min_df": self.min_df, "ngram_max": self.ngram_max, "sublinear_tf": self.sublinear_tf,
                   "terms": self.terms}
        (path / vocab_name).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
        np.savez(path / idf_name, idf=self.idf_)
        return [vocab_name, idf_name]

    @classmethod
    def load(cls, path: str | Path, prefix: str = "tfidf") -> TfidfFeaturizer:
        """Read a featurizer written by :meth:`save`; transforms exactly as the saved one did."""
        path = Path(path)
        vocab_file, idf_file = path / f"{prefix}.vocab.json", path / f"{prefix}.idf.npz"
        try:
            payload = json.loads(vocab_file.read_text(encoding="utf-8"))
            with np.load(idf_file, allow_pickle=False) as z:
                idf = np.asarray(z["idf"], dtype=np.float64)
        except FileNotFoundError as e:
            raise ModelLoadError(f"{e.filename}: TF-IDF file missing") from None
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"{path}: cannot read TF-IDF files {vocab_file.name}/{idf_file.name} "
                                 f"({e})") from None
        if (not isinstance(payload, dict) or payload.get("format") != _FORMAT
                or payload.get("version") != _VERSION):
            raise ModelLoadError(f"{vocab_file}: not an xmtc TF-IDF vocabulary of version {_VERSION}")
        terms = payload["terms"]
        if len(terms) != len(idf) or idf.ndim != 1:
            raise ModelLoadError(f"{path}: {vocab_file.name} has {len(terms)} terms but {idf_file.name} has "
                                 f"{idf.shape} idf weights")
        obj = cls(payload["max_features"], payload["min_df"], payload["ngram_max"], payload["sublinear_tf"])
        obj.vocabulary_ = {t: j for j, t in enumerate(terms)}
        if len(obj.vocabulary_) != len(terms):
            raise ModelLoadError(f"{vocab_file}: duplicate terms")
        obj.idf_ = idf
        return obj

    def _check_fitted(self) -> None:
        if self.vocabulary_ is None or self.idf_ is None:
            raise RuntimeError("TfidfFeaturizer is not fitted: call fit() or load()")


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, not a single string")
    return list(texts)
