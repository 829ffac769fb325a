"""Dataset layouts: which files make a split in each layout, and ``detect_layout``.

Layouts (``detect_layout`` returns the name; the files of each are listed in :mod:`xmtc.data.io`):
``shared``, ``attentionxml``, ``pecos``, ``xmlrepo`` (XMLRepository sparse files, recognised by their header
``n_docs n_features n_labels``) and ``jsonl``. Split names have aliases (``dev``/``val`` -> ``valid``, ``tst``
-> ``test``, ``trn`` -> ``train``). Reading the files is :mod:`xmtc.data.io`'s (and :mod:`xmtc.data.readers`').
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from xmtc.errors import DataError

LAYOUTS = ("shared", "attentionxml", "pecos", "xmlrepo", "jsonl")
SPLIT_ALIASES = {"train": ("train", "trn"), "valid": ("valid", "dev", "val"), "test": ("test", "tst")}
_LOOKED_FOR = (
    "shared ({split}.texts.txt[.gz] + {split}.labels.txt[.gz]), "
    "AttentionXML (train_texts.txt + train_labels.txt), "
    "pecos (X.trn.txt + Y.trn.txt or Y.trn.npz), "
    "XMLRepository sparse (train.txt or *_train.txt with header 'n_docs n_features n_labels'), "
    "JSONL (train.jsonl)"
)


def canonical_split(name: str) -> str:
    """``dev``/``val`` -> ``valid``, ``tst`` -> ``test``, ``trn`` -> ``train``; other names are kept."""
    for canon, aliases in SPLIT_ALIASES.items():
        if name in aliases:
            return canon
    return name


def _aliases(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(canonical_split(split), (split,))


def _first(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    return None


def _sparse_header_problem(path: Path) -> str | None:
    """None when line 1 of ``path`` is an XMLRepository header ``n_docs n_features n_labels``, else what it
    is instead (for the error message)."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.readline(256)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        return f"cannot be read ({e})"
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    head = raw.split()
    if len(head) == 3 and all(h.isdigit() for h in head):
        return None
    if not raw.strip():
        return "line 1 is empty" if raw else "the file is empty"
    shown = raw.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
    return f"line 1 is {shown[:60]!r}" + (" ..." if len(shown) > 60 else "")


def _looks_sparse(path: Path) -> bool:
    return _sparse_header_problem(path) is None


def _bad_sparse_header(path: Path, problem: str, hint: str = "") -> DataError:
    return DataError(
        f"{path}:1: expected the XMLRepository sparse header 'n_docs n_features n_labels' (three non-negative "
        f"integers, e.g. '15449 5000 3956'), but {problem}{hint}"
    )


def _sparse_candidates(folder: Path) -> list[Path]:
    """Files of ``folder`` named like XMLRepository sparse files (``train.txt``, ``*_test.txt``, ...)."""
    names = [s for aliases in SPLIT_ALIASES.values() for s in aliases]
    cands = [folder / f"{s}{sfx}" for s in names for sfx in (".txt", ".txt.gz")]
    cands += sorted(p for s in names for sfx in (".txt", ".txt.gz") for p in folder.glob(f"*_{s}{sfx}"))
    return [p for p in cands if p.is_file()]


def _pair(folder: Path, split: str, texts: list[str], labels: list[str]) -> dict[str, Path] | None:
    t, y = _first(folder, texts), _first(folder, labels)
    if t is None and y is None:
        return None
    if t is None or y is None:
        have, want = (t, labels[0]) if t is not None else (y, texts[0])
        raise DataError(f"{folder}: found {have.name} but no {want}[.gz] for split {split!r}")
    return {"texts": t, "labels": y}


def _split_files(folder: Path, layout: str, split: str) -> dict[str, Path] | None:
    """Files of ``split`` in ``folder`` for ``layout``; None when the split is absent."""
    a = _aliases(split)
    if layout == "shared":
        return _pair(folder, split, [f"{s}.texts.txt" for s in a], [f"{s}.labels.txt" for s in a])
    if layout == "attentionxml":
        texts = [f"{s}_texts.txt" for s in a] + [f"{s}_raw_texts.txt" for s in a]
        return _pair(folder, split, texts, [f"{s}_labels.txt" for s in a])
    if layout == "pecos":
        npz = next((folder / f"Y.{s}.npz" for s in a if (folder / f"Y.{s}.npz").is_file()), None)
        if npz is not None:
            texts = _first(folder, [f"X.{s}.txt" for s in a])
            if texts is None:
                raise DataError(
                    f"{folder}: found {npz.name} but no X.{a[-1]}.txt[.gz] (raw texts) for split {split!r}"
                )
            return {"texts": texts, "labels_npz": npz}
        return _pair(folder, split, [f"X.{s}.txt" for s in a], [f"Y.{s}.txt" for s in a])
    if layout == "xmlrepo":
        cands = [folder / f"{s}{sfx}" for s in a for sfx in (".txt", ".txt.gz")]
        cands += sorted(p for s in a for sfx in (".txt", ".txt.gz") for p in folder.glob(f"*_{s}{sfx}"))
        sparse = next((p for p in cands if p.is_file() and _looks_sparse(p)), None)
        return {"sparse": sparse} if sparse else None
    if layout == "jsonl":
        p = _first(folder, [f"{s}.jsonl" for s in a])
        return {"jsonl": p} if p else None
    raise DataError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def detect_layout(path: str | Path) -> str:
    """Name of the dataset layout of a folder (or of a single ``.jsonl`` / sparse ``.txt`` file).

    Raises:
        DataError: the path is missing, holds only part of a layout (names the missing file), or matches none
            (lists the layouts looked for and the files found).
    """
    path = Path(path)
    if path.is_file():
        name = path.name.removesuffix(".gz")
        if name.endswith(".jsonl"):
            return "jsonl"
        if name.endswith(".txt"):
            problem = _sparse_header_problem(path)
            if problem is None:
                return "xmlrepo"
            raise _bad_sparse_header(path, problem, "; a single .txt file must be a sparse file: for texts + "
                                     "labels files give their folder")
        raise DataError(
            f"{path}: a single file must be a .jsonl file or an XMLRepository sparse .txt file (header "
            f"'n_docs n_features n_labels'); for texts + labels files give their folder"
        )
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    for layout in LAYOUTS:
        if any(_split_files(path, layout, s) for s in SPLIT_ALIASES):
            return layout
    for cand in _sparse_candidates(path):  # named like a sparse file: say what is wrong with its header
        raise _bad_sparse_header(cand, _sparse_header_problem(cand) or "it is not one")
    files = sorted(p.name for p in path.iterdir())
    shown = ", ".join(files[:12]) + (f", ... ({len(files)} entries)" if len(files) > 12 else "")
    raise DataError(
        f"{path}: no dataset found; looked for {_LOOKED_FOR}; the folder holds: {shown or 'nothing'}"
    )


def _available(folder: Path, layout: str) -> list[str]:
    splits = [s for s in SPLIT_ALIASES if _split_files(folder, layout, s)]
    pattern = {"shared": "*.texts.txt*", "jsonl": "*.jsonl*"}.get(layout)
    if pattern:
        for p in sorted(folder.glob(pattern)):
            s = canonical_split(p.name.split(".")[0])
            if s not in splits and _split_files(folder, layout, s):
                splits.append(s)
    return splits


def _split_of_file(path: Path) -> str:
    stem = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    if canonical_split(stem) in SPLIT_ALIASES:
        return canonical_split(stem)
    last = stem.replace(".", "_").rsplit("_", 1)[-1]
    return canonical_split(last) if canonical_split(last) in SPLIT_ALIASES else stem
