"""Loading datasets: layout auto-detection, ``load``, ``find_datasets`` and the bundled sample.

Layouts (``detect_layout`` returns the name):

- ``shared``: ``{split}.texts.txt[.gz]`` + ``{split}.labels.txt[.gz]`` (space-separated labels on the matching
  line).
- ``attentionxml``: ``{split}_texts.txt`` + ``{split}_labels.txt`` (``{split}_raw_texts.txt`` when there is no
  ``_texts.txt``; AttentionXML's ``*.npy`` files are ignored).
- ``pecos``: ``X.{trn,tst}.txt`` raw texts + ``Y.{trn,tst}.txt`` (comma-separated label ids) or
  ``Y.{trn,tst}.npz`` (scipy CSR); ``output-items.txt`` (one label text per id) when present.
- ``xmlrepo``: XMLRepository sparse files ``train.txt`` / ``test.txt`` or ``*_train.txt`` / ``*_test.txt``.
- ``jsonl``: ``{split}.jsonl[.gz]``, one ``{"text": ..., "labels": [...]}`` per line.

Any layout may sit next to ``hierarchy.tsv[.gz]`` (``child<TAB>parent``) and ``label_names.tsv[.gz]``
(``id<TAB>name<TAB>alt names`` with an optional header), which fill ``Dataset.hierarchy`` and
``Dataset.label_descriptions``.

Which files make a split in each layout, and ``detect_layout``, live in :mod:`xmtc.data.layouts`; this module
reads the splits and re-exports the layout names other modules use.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.data import readers
from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.data.layouts import (  # noqa: F401 (re-exported)
    _LOOKED_FOR,
    LAYOUTS,
    SPLIT_ALIASES,
    _available,
    _first,
    _split_files,
    _split_of_file,
    canonical_split,
    detect_layout,
)
from xmtc.data.split import Dataset
from xmtc.errors import DataError


class UnseenLabelsWarning(UserWarning):
    """Gold labels of an evaluation split that the label index (built from train) does not know."""


@dataclass
class _Raw:
    """One split as read from disk, before label encoding."""

    n_docs: int
    texts: list[str] | None = None
    labels: list[list[str]] | None = None  # label names per document
    label_indptr: np.ndarray | None = None  # id-based labels (sparse files, .npz): int64 (n + 1,)
    label_ids: np.ndarray | None = None  # int64 (nnz,)
    X: sp.csr_matrix | None = None
    n_labels: int = 0  # size of the label id space stated by the files (0 when unknown)


def _read(files: dict[str, Path], layout: str, max_docs: int | None, labels_only: bool = False) -> _Raw:
    if "sparse" in files:
        sf = readers.read_sparse(files["sparse"], max_docs)
        return _Raw(
            len(sf.label_indptr) - 1,
            label_indptr=sf.label_indptr,
            label_ids=sf.label_ids,
            X=None if labels_only else sf.X,
            n_labels=sf.n_labels,
        )
    if "jsonl" in files:
        texts, labels = readers.read_jsonl(files["jsonl"], max_docs)
        return _Raw(len(texts), texts=None if labels_only else texts, labels=labels)
    texts = None if labels_only else readers.read_texts(files["texts"], max_docs)
    if "labels_npz" in files:
        Y = readers.read_npz_labels(files["labels_npz"])
        Y = Y[:max_docs] if max_docs is not None else Y
        Y.eliminate_zeros()
        Y.sort_indices()
        n = Y.shape[0]
        raw = _Raw(
            n,
            label_indptr=Y.indptr.astype(np.int64),
            label_ids=Y.indices.astype(np.int64),
            n_labels=Y.shape[1],
        )
    else:
        labels = readers.read_label_lines(files["labels"], max_docs, commas=layout == "pecos")
        n = len(labels)
        raw = _Raw(n, labels=labels)
    if texts is not None:
        readers.check_same_length(files["texts"], len(texts), files.get("labels_npz", files.get("labels")), n)
        raw.texts = texts
    return raw


def _encode(raw: _Raw, index: LabelIndex) -> tuple[sp.csr_matrix, np.ndarray, dict[str, int]]:
    """Label matrix CSR (n, L) float32, unseen per doc int32 (n,), unseen counts by name."""
    if raw.labels is not None:
        return index.encode(raw.labels)
    n, ids = raw.n_docs, raw.label_ids
    table = np.array(
        [index.get(str(i)) for i in range(int(ids.max()) + 1 if ids.size else 0)], dtype=np.int64
    )
    mapped = table[ids] if ids.size else ids
    rows = np.repeat(np.arange(n), np.diff(raw.label_indptr))
    known = mapped >= 0
    unseen = np.bincount(rows[~known], minlength=n).astype(np.int32)
    names, counts = np.unique(ids[~known], return_counts=True)
    Y = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (rows[known], mapped[known])), shape=(n, len(index))
    )
    Y.sum_duplicates()
    Y.data[:] = 1.0
    return Y, unseen, {str(k): int(c) for k, c in zip(names, counts, strict=True)}


def _build_index(raw: _Raw) -> LabelIndex:
    if raw.labels is None:
        return LabelIndex([str(i) for i in range(raw.n_labels)])
    return LabelIndex.build(raw.labels, extra=(str(i) for i in range(raw.n_labels)))


def _extras(folder: Path, layout: str) -> tuple[Hierarchy | None, dict[str, str] | None, int]:
    h = _first(folder, ["hierarchy.tsv"])
    names = _first(folder, ["label_names.tsv"])
    descriptions = readers.read_label_names(names) if names else None
    n_items = 0
    items = _first(folder, ["output-items.txt"]) if layout == "pecos" else None
    if items is not None:
        lines = readers.read_lines(items)
        n_items = len(lines)
        descriptions = {**{str(i): t for i, t in enumerate(lines)}, **(descriptions or {})}
    return (readers.read_hierarchy(h) if h else None), descriptions, n_items


def load(
    path: str | Path,
    splits: Sequence[str] | str = ("train", "test"),
    *,
    label_index: LabelIndex | None = None,
    max_docs: int | None = None,
) -> tuple[Dataset, ...]:
    """Load splits of a dataset folder in any supported layout (see the module docstring).

    The label index is built from the train split's labels (for sparse/npz data: all ids ``0..n_labels-1``)
    and shared by every split; gold labels unknown to it are counted in ``Dataset.unseen`` /
    ``unseen_labels`` and reported with an :class:`UnseenLabelsWarning`, never dropped silently. Train labels
    are read even when ``"train"`` is not among ``splits``.

    Args:
        path: a dataset folder, or a single ``.jsonl`` / XMLRepository sparse ``.txt`` file (then one Dataset
            is returned, its split named after the file, and ``splits`` is ignored).
        splits: split names; aliases ``dev``/``val`` -> ``valid``, ``tst`` -> ``test``, ``trn`` -> ``train``.
        label_index: the label index of a trained model; when given it is used for all splits.
        max_docs: read only the first ``max_docs`` documents of each split (quick runs).

    Returns:
        One :class:`Dataset` per requested split, in order.

    Raises:
        DataError: missing path, file or split; malformed lines; empty documents; line-count mismatches.
    """
    if isinstance(splits, str):
        splits = (splits,)
    if not splits:
        raise DataError("splits is empty; ask for at least one split, e.g. ('train', 'test')")
    if max_docs is not None and max_docs < 1:
        raise DataError(f"max_docs must be positive, but is {max_docs}")
    path = Path(path).expanduser()
    if not path.exists():
        siblings = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
        close = difflib.get_close_matches(path.name, siblings, n=1)
        hint = f" (did you mean {str(path.parent / close[0])!r}?)" if close else ""
        raise DataError(
            f"{path}: no such file or directory{hint}; expected a dataset folder in one of these layouts: "
            f"{_LOOKED_FOR}"
        )
    layout = detect_layout(path)
    folder = path if path.is_dir() else path.parent
    hierarchy, descriptions, n_items = _extras(folder, layout)
    raws: dict[str, _Raw] = {}
    if path.is_file():
        canon = [_split_of_file(path)]
        raws[canon[0]] = _read({layout if layout == "jsonl" else "sparse": path}, layout, max_docs)
        name = path.name.removesuffix(".gz")
    else:
        canon = [canonical_split(s) for s in splits]
        name = path.name
        for s in dict.fromkeys(canon):
            files = _split_files(path, layout, s)
            if files is None:
                avail = ", ".join(_available(path, layout)) or "none"
                hint = "; carve one from train with xmtc.data.validation_split" if s == "valid" else ""
                raise DataError(f"{path}: no split {s!r} in this {layout} dataset (available: {avail}){hint}")
            raws[s] = _read(files, layout, max_docs)
    for raw in raws.values():
        raw.n_labels = max(raw.n_labels, n_items)
    built_from = None
    if label_index is None:
        built_from = "train" if "train" in raws else None
        train = raws.get("train")
        if train is None and path.is_dir() and (files := _split_files(path, layout, "train")):
            train = _read(files, layout, max_docs, labels_only=True)
            train.n_labels = max(train.n_labels, n_items)
            built_from = "train"
        if train is None:
            built_from = canon[0]
            train = raws[built_from]
        if path.is_dir() and built_from != "train":
            warnings.warn(
                f"{path}: no train split; the label index is built from split {built_from!r}",
                UserWarning,
                stacklevel=2,
            )
        label_index = _build_index(train)
    n_features = max((r.X.shape[1] for r in raws.values() if r.X is not None), default=0)
    out = {}
    for s, raw in raws.items():
        Y, unseen, unseen_labels = _encode(raw, label_index)
        if unseen_labels:
            examples = ", ".join(sorted(unseen_labels, key=unseen_labels.get, reverse=True)[:5])
            why = f" (unseen in {built_from})" if built_from else ""
            warnings.warn(
                f"{name}/{s}: {int(unseen.sum())} gold labels in {int((unseen > 0).sum())} of {raw.n_docs} "
                f"documents ({len(unseen_labels)} distinct, e.g. {examples}) are not in the label index"
                f"{why}; they count as misses (Dataset.unseen)",
                UnseenLabelsWarning,
                stacklevel=2,
            )
        X = raw.X
        if X is not None and X.shape[1] < n_features:
            X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
        out[s] = Dataset(
            Y=Y,
            label_index=label_index,
            texts=raw.texts,
            X=X,
            hierarchy=hierarchy,
            unseen=unseen,
            unseen_labels=unseen_labels,
            name=name,
            split=s,
            label_descriptions=descriptions,
        )
    return tuple(out[s] for s in canon)


def _count_docs(files: dict[str, Path]) -> int | None:
    if "sparse" in files:
        try:
            return int(readers.read_lines(files["sparse"], 1)[0].split()[0])
        except (DataError, IndexError, ValueError):
            return None
    if "labels_npz" in files:
        try:
            with np.load(files["labels_npz"], allow_pickle=False) as f:
                return int(f["shape"][0])
        except Exception:  # noqa: BLE001  (a cheap count is best effort only)
            return None
    return readers.count_lines(files.get("labels", files.get("jsonl")))


def find_datasets(root: str | Path, *, max_depth: int = 2) -> list[dict]:
    """Dataset folders under ``root`` (``root`` itself included, ``max_depth`` levels of subfolders).

    Returns:
        One dict per folder: ``name``, ``path``, ``layout``, ``splits`` ({split: number of documents, or None
        when counting would be slow}). Folders that hold only part of a layout are listed with ``layout`` None
        and an ``error`` saying what is missing.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    found: list[dict] = []

    def visit(folder: Path, depth: int) -> None:
        try:
            layout = detect_layout(folder)
        except DataError as e:
            if "no dataset found" not in str(e):
                found.append(
                    {"name": folder.name, "path": str(folder), "layout": None, "splits": {}, "error": str(e)}
                )
                return
            layout = None
        if layout is not None:
            splits = {s: _count_docs(_split_files(folder, layout, s)) for s in _available(folder, layout)}
            found.append({"name": folder.name, "path": str(folder), "layout": layout, "splits": splits})
            return
        if depth < max_depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                visit(child, depth + 1)

    visit(root, 0)
    return found


def bundled_path(name: str = "eurlex-mini") -> Path:
    """Folder of a dataset shipped inside the package (default: ``eurlex-mini``, see its README.md)."""
    base = Path(__file__).resolve().parent.parent / "datasets"
    path = base / name
    if not path.is_dir():
        have = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        raise DataError(f"no bundled dataset {name!r} in {base}; available: {', '.join(have) or 'none'}")
    return path
