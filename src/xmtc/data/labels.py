"""LabelIndex (label names <-> ids, frozen at training time) and label hierarchies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError


class LabelIndex:
    """Bijection between label names (strings) and ids ``0..L-1``.

    Built from the training labels (sorted by first appearance order is not stable across files, so names
    are sorted); frozen afterwards: encoding a label it does not know is counted, never silently added.
    """

    def __init__(self, names: Sequence[str]):
        self.names: list[str] = list(names)
        self._ids = dict(zip(self.names, range(len(self.names)), strict=True))
        if len(self._ids) != len(self.names):
            seen: set[str] = set()
            dup = next(n for n in self.names if n in seen or seen.add(n))
            raise DataError(f"label names must be unique, but {dup!r} occurs more than once")

    @classmethod
    def build(cls, label_lists: Iterable[Sequence[str]], extra: Iterable[str] = ()) -> LabelIndex:
        """Index of every label in ``label_lists`` (plus ``extra``), sorted for determinism."""
        seen: set[str] = set(extra)
        for labels in label_lists:
            seen.update(labels)
        return cls(sorted(seen, key=_natural_key))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._ids

    def id(self, name: str) -> int:
        """Id of ``name``; ``KeyError`` when unknown."""
        return self._ids[name]

    def get(self, name: str, default: int = -1) -> int:
        """Id of ``name``, or ``default`` when unknown."""
        return self._ids.get(name, default)

    def encode(
        self, label_lists: Sequence[Sequence[str]]
    ) -> tuple[sp.csr_matrix, np.ndarray, dict[str, int]]:
        """Label lists -> CSR (n, L) float32 with sorted indices.

        Returns:
            (Y, unseen_per_doc, unseen_counts): labels unknown to the index are left out of ``Y`` but counted
            per document (``unseen_per_doc``, int32 (n,)) and by name, so evaluation can count them as misses.
        """
        indptr = [0]
        indices: list[int] = []
        unseen_per_doc = np.zeros(len(label_lists), dtype=np.int32)
        unseen: dict[str, int] = {}
        for row, labels in enumerate(label_lists):
            ids = set()
            for name in labels:
                i = self._ids.get(name)
                if i is None:
                    unseen_per_doc[row] += 1
                    unseen[name] = unseen.get(name, 0) + 1
                else:
                    ids.add(i)
            indices.extend(sorted(ids))
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        Y = sp.csr_matrix(
            (data, np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
            shape=(len(label_lists), len(self.names)),
        )
        Y.has_sorted_indices = True
        return Y, unseen_per_doc, unseen

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> names."""
        return [self.names[int(i)] for i in ids]

    def to_json(self, path: str | Path) -> None:
        """Write ``{"labels": [names in id order]}``."""
        Path(path).write_text(json.dumps({"labels": self.names}, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> LabelIndex:
        """Read a file written by :meth:`to_json`; malformed files raise :class:`DataError`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = data["labels"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a label index file ({e})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{path}: 'labels' must be a list of strings")
        return cls(names)


@dataclass(frozen=True)
class UnknownGold:
    """Gold labels of an evaluation split that a model's label index does not know.

    Attributes:
        unknown: gold label occurrences unknown to the index (they count as misses).
        total: all gold label occurrences.
        share: ``unknown / total`` (0.0 when there are no gold labels).
        docs: documents with at least one gold label; ``docs_all_unknown``: those whose gold labels are all
            unknown (no model can score a hit on them).
        examples: up to 5 unknown label names, most frequent first (when known).
    """

    unknown: int
    total: int
    share: float
    docs: int
    docs_all_unknown: int
    examples: tuple[str, ...] = ()

    def message(self, what: str = "the evaluation data") -> str:
        """One line: ``'12,345 of 13,000 gold labels (95.0%) of ... are unknown to the model ...'``."""
        eg = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return (f"{self.unknown:,} of {self.total:,} gold labels ({self.share:.1%}) of {what} are unknown to the "
                f"model's label index{eg}; {self.docs_all_unknown:,} of {self.docs:,} documents have no known gold "
                "label. Is this the dataset the model was trained on?")


def unknown_gold_labels(data, index: LabelIndex | None = None) -> UnknownGold:
    """Count the gold labels of ``data`` unknown to ``index`` (default: the data's own index).

    Args:
        data: a :class:`~xmtc.data.split.Dataset` (its ``Y``, ``label_index``, ``unseen`` and
            ``unseen_labels`` are used; load it with ``label_index=model.label_index_`` and ``index`` can be
            left out), or a sequence of gold label-name lists.
        index: the model's label index (``model.label_index_``).

    Returns:
        :class:`UnknownGold`; ``.share`` is what a command compares with its threshold.
    """
    if isinstance(data, Sequence) and not hasattr(data, "Y"):
        if index is None:
            raise DataError("unknown_gold_labels: give the label index to check label-name lists against")
        counts: dict[str, int] = {}
        total = docs = all_unknown = 0
        for labels in data:
            miss = [n for n in labels if n not in index]
            total += len(labels)
            docs += bool(labels)
            all_unknown += bool(labels) and len(miss) == len(labels)
            for n in miss:
                counts[n] = counts.get(n, 0) + 1
        unknown = sum(counts.values())
        return UnknownGold(unknown, total, unknown / total if total else 0.0, docs, all_unknown,
                           tuple(sorted(counts, key=lambda n: -counts[n])[:5]))
    Y = sp.csr_matrix(data.Y)
    n = Y.shape[0]
    unseen = np.zeros(n, dtype=np.int64) if data.unseen is None else np.asarray(data.unseen, dtype=np.int64)
    known_per_doc = np.diff(Y.indptr).astype(np.int64)  # (n,) gold labels the data's index knows
    unknown_per_doc = unseen.copy()  # (n,) unknown to the data's index, so to any index built the same way
    names = dict(getattr(data, "unseen_labels", {}) or {})
    if index is not None and list(index.names) != list(data.label_index.names):
        missing = np.asarray([name not in index for name in data.label_index.names], dtype=bool)  # (L_data,)
        miss_entries = missing[Y.indices]  # (nnz,)
        rows = np.repeat(np.arange(n), np.diff(Y.indptr))
        unknown_per_doc += np.bincount(rows[miss_entries], minlength=n)
        for col, c in zip(*np.unique(Y.indices[miss_entries], return_counts=True), strict=True):
            names[data.label_index.names[col]] = names.get(data.label_index.names[col], 0) + int(c)
    total_per_doc = known_per_doc + unseen
    unknown, total = int(unknown_per_doc.sum()), int(total_per_doc.sum())
    if index is not None and names and sum(names.values()) >= unknown:
        # labels the data's own index did not know but the model's does are not unknown (in the totals; per
        # document they cannot be told apart and stay counted in docs_all_unknown)
        unknown -= sum(v for k, v in names.items() if k in index and k not in data.label_index)
    has_gold = total_per_doc > 0
    examples = tuple(k for k in sorted(names, key=lambda k: -names[k]) if index is None or k not in index)[:5]
    return UnknownGold(unknown, total, unknown / total if total else 0.0, int(has_gold.sum()),
                       int((has_gold & (unknown_per_doc == total_per_doc)).sum()), examples)


def _natural_key(name: str) -> tuple:
    """Sort numeric ids numerically and everything else lexically ('2' < '10' < 'a')."""
    # isascii(): int() rejects some str.isdigit() characters ('²'); the name breaks ties such as '7' vs '07'.
    return (0, int(name), name) if name.isascii() and name.isdigit() else (1, 0, name)


class Hierarchy:
    """Child -> parent edges between label names (a DAG: a child may have several parents)."""

    def __init__(self, edges: Sequence[tuple[str, str]]):
        self.edges = list(edges)
        self.parents: dict[str, list[str]] = {}
        for child, parent in self.edges:
            self.parents.setdefault(child, []).append(parent)

    def __len__(self) -> int:
        return len(self.edges)

    def parent_matrix(self, index: LabelIndex) -> sp.csr_matrix:
        """CSR (L, L) with 1 at (child, parent) for edges whose both ends are in ``index``."""
        rows, cols = [], []
        for child, parent in self.edges:
            c, p = index.get(child), index.get(parent)
            if c >= 0 and p >= 0 and c != p:
                rows.append(c)
                cols.append(p)
        m = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(index), len(index))
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m
