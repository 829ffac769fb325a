"""The in-memory container of one split: texts and/or sparse features, label matrix, label index."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.errors import ConfigError, DataError


@dataclass
class Dataset:
    """One split of a multi-label dataset.

    Attributes:
        texts: raw documents, or None for sparse-only data (XMLRepository format).
        Y: CSR (n, L) float32, sorted indices, in the label space of ``label_index``.
        label_index: names <-> ids; shared by all splits of one load (built from train).
        X: optional precomputed sparse features CSR (n, F) float32 (XMLRepository format).
        hierarchy: optional child -> parent label edges.
        unseen: int32 (n,): gold labels of each document unknown to ``label_index`` (counted as misses).
        unseen_labels: name -> count of those unknown labels (for the evaluation report).
        name: dataset name (folder), split: split name.
        label_descriptions: optional label id name -> human-readable text (e.g. EuroVoc names).
    """

    Y: sp.csr_matrix
    label_index: LabelIndex
    texts: list[str] | None = None
    X: sp.csr_matrix | None = None
    hierarchy: Hierarchy | None = None
    unseen: np.ndarray | None = None
    unseen_labels: dict[str, int] = field(default_factory=dict)
    name: str = ""
    split: str = ""
    label_descriptions: dict[str, str] | None = None

    def __post_init__(self) -> None:
        n = self.Y.shape[0]
        if self.unseen is None:
            self.unseen = np.zeros(n, dtype=np.int32)
        if self.Y.shape[1] != len(self.label_index):
            raise DataError(
                f"Y has {self.Y.shape[1]} label columns but the label index has {len(self.label_index)}"
            )
        for what, m in (("texts", self.texts), ("X", self.X), ("unseen", self.unseen)):
            rows = None if m is None else (m.shape[0] if hasattr(m, "shape") else len(m))
            if rows is not None and rows != n:
                raise DataError(f"{what} has {rows} rows but Y has {n} (one row per document)")

    def __len__(self) -> int:
        return self.Y.shape[0]

    @property
    def n_labels(self) -> int:
        return len(self.label_index)

    @property
    def label_names(self) -> list[str]:
        return self.label_index.names

    def subset(self, rows: np.ndarray, split: str | None = None) -> Dataset:
        """Rows ``rows`` as a new Dataset sharing the label index."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        return Dataset(
            Y=self.Y[rows],
            label_index=self.label_index,
            texts=[self.texts[i] for i in rows] if self.texts is not None else None,
            X=self.X[rows] if self.X is not None else None,
            hierarchy=self.hierarchy,
            unseen=self.unseen[rows],
            unseen_labels={},
            name=self.name,
            split=split or self.split,
            label_descriptions=self.label_descriptions,
        )

    def n_gold(self) -> np.ndarray:
        """Gold labels per document including those unseen in training (int64 (n,))."""
        return np.diff(self.Y.indptr).astype(np.int64) + self.unseen.astype(np.int64)


def validation_split(data: Dataset, fraction: float = 0.1, seed: int = 0, max_docs: int | None = None):
    """Seeded (train, valid) split taken from the training data; never touches the test split.

    Args:
        data: the training split.
        fraction: share of documents held out (at least 1, at most n - 1).
        seed: RNG seed; the same seed gives the same split.
        max_docs: cap on the number of validation documents.

    Returns:
        (train, valid) Datasets.
    """
    train_rows, valid_rows = holdout_rows(len(data), fraction, seed, max_docs)
    return data.subset(train_rows, split="train"), data.subset(valid_rows, split="valid")


def holdout_rows(n: int, fraction: float, seed: int = 0, max_docs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows), sorted, of :func:`validation_split` on ``n`` training documents. With the
    same ``n`` and ``seed`` a smaller hold-out is a subset of a larger one (both are prefixes of one
    permutation)."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), but is {fraction}")
    if n < 2:
        raise DataError(f"cannot split {n} document(s) into train and validation; need at least 2")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_valid = max(1, int(round(n * fraction)))
    if max_docs is not None:
        n_valid = min(n_valid, max_docs)
    n_valid = min(n_valid, n - 1)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
