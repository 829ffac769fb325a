"""Low-level readers of dataset files.

Every reader reads ``.gz`` files transparently, and every malformed input raises :class:`DataError` with the
file, the 1-based line and the offending value. Nothing is skipped silently: an empty document, a line-count
mismatch or a bad ``feature:value`` pair stops the load with a message that says how to fix the file.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.data import lines
from xmtc.data.labels import Hierarchy
from xmtc.errors import DataError

_LABELS_RE = re.compile(r"\d{1,18}(?:,\d{1,18})*")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN_RE = re.compile(r"\d{1,18}:" + _NUMBER)
_FEATS_RE = re.compile(r"(?:\d{1,18}:" + _NUMBER + r"(?:[ \t]+|$))*")
_CHUNK_LINES = 20_000


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_raw(path: Path, max_lines: int | None = None) -> bytes:
    """Bytes of ``path`` (decompressed when it ends in ``.gz``), at most ``max_lines`` lines."""
    return lines.read_bytes(path, max_lines)


def read_lines(path: Path, max_lines: int | None = None) -> list[str]:
    """UTF-8 lines of ``path`` without line ends, split by the project's one rule (:mod:`xmtc.data.lines`):
    on ``\n`` only, a trailing ``\r`` stripped, a lone ``\r`` kept; a final newline adds no line.

    Raises:
        DataError: the file is missing, unreadable, a broken gzip stream, or not valid UTF-8 (names the line).
    """
    return lines.read_lines(path, max_lines)


def check_documents(path: Path, texts: list[str], first_line: int = 1) -> None:
    """Raise on the first empty or whitespace-only document (no document is skipped silently)."""
    if not texts:
        raise DataError(f"{path}: no documents (the file is empty)")
    for i, t in enumerate(texts):
        if not t or t.isspace():
            raise DataError(
                f"{path}:{i + first_line}: empty document (blank line); remove it together with its labels "
                f"line, or give it a text"
            )


def read_texts(path: Path, max_lines: int | None = None) -> list[str]:
    """One document per line; empty lines are errors."""
    texts = read_lines(path, max_lines)
    check_documents(path, texts)
    return texts


def read_label_lines(path: Path, max_lines: int | None = None, *, commas: bool = False) -> list[list[str]]:
    """Labels of one document per line, separated by whitespace (and by commas when ``commas``).

    An empty line is a document without gold labels.
    """
    lines = read_lines(path, max_lines)
    if commas:
        return [s.replace(",", " ").split() for s in lines]
    return [s.split() for s in lines]


def check_same_length(texts_path: Path, n_texts: int, labels_path: Path, n_labels: int) -> None:
    """Raise when a texts file and its labels file have different numbers of lines."""
    if n_texts != n_labels:
        first = min(n_texts, n_labels) + 1
        longer = texts_path if n_texts > n_labels else labels_path
        raise DataError(
            f"line-count mismatch: {texts_path} has {n_texts} documents but {labels_path} has {n_labels} "
            f"label lines; {longer}:{first} has no partner line (one labels line per document)"
        )


@dataclass
class SparseFile:
    """Contents of one XMLRepository sparse file.

    Attributes:
        X: CSR (n, n_features) float32 with sorted indices.
        label_indptr: int64 (n + 1,) row pointers into ``label_ids``.
        label_ids: int64 (nnz,) label ids of each document, in file order.
        n_labels: the header's label count (all ids are below it).
    """

    X: sp.csr_matrix
    label_indptr: np.ndarray
    label_ids: np.ndarray
    n_labels: int


def read_sparse(path: Path, max_docs: int | None = None) -> SparseFile:
    """Read the XMLRepository format: a header ``n_docs n_features n_labels``, then one line per document
    ``l1,l2,... f:v f:v ...`` (labels may be empty; feature ids are 0-based).

    Raises:
        DataError: bad header, wrong number of lines, a malformed label list or ``f:v`` pair, a feature id
            ``>= n_features`` or a label id ``>= n_labels`` (each names the line and the value).
    """
    lines = read_lines(path, None if max_docs is None else max_docs + 1)
    if not lines:
        raise DataError(f"{path}: empty file; expected a header line 'n_docs n_features n_labels'")
    header = lines[0].split()
    if len(header) != 3 or not all(h.isascii() and h.isdigit() and len(h) <= 18 for h in header):
        raise DataError(
            f"{path}:1: header must be 'n_docs n_features n_labels' (three non-negative integers), "
            f"but is {lines[0][:80]!r}"
        )
    n_docs, n_features, n_labels = (int(h) for h in header)
    body = lines[1:]
    expected = n_docs if max_docs is None else min(n_docs, max_docs)
    if len(body) != expected:
        raise DataError(
            f"{path}: header says {n_docs} documents but {len(body)} lines follow it"
            + (f" (reading the first {max_docs})" if max_docs is not None else "")
        )
    label_parts: list[str] = []
    feat_parts: list[str] = []
    n_lab = np.zeros(len(body), dtype=np.int64)
    n_feat = np.zeros(len(body), dtype=np.int64)
    for i, line in enumerate(body):
        s = line.strip()
        if not s:
            continue  # a document without labels and features
        head, *rest = s.split(None, 1)
        if ":" in head:
            labels, feats = "", s
        else:
            labels, feats = head, (rest[0] if rest else "")
        if labels:
            if not _LABELS_RE.fullmatch(labels):
                raise DataError(
                    f"{path}:{i + 2}: bad label list {labels[:60]!r}; expected comma-separated non-negative "
                    f"integer label ids like '3,17' (or nothing) before the features"
                )
            label_parts.append(labels)
            n_lab[i] = labels.count(",") + 1
        if feats:
            if not _FEATS_RE.fullmatch(feats):
                bad = next((t for t in feats.split() if not _TOKEN_RE.fullmatch(t)), feats[:60])
                raise DataError(
                    f"{path}:{i + 2}: bad feature {bad[:60]!r}; expected 'feature_id:value' pairs like "
                    f"'12:0.5' separated by spaces"
                )
            feat_parts.append(feats)
            n_feat[i] = feats.count(":")
    label_indptr = np.concatenate([[0], np.cumsum(n_lab)])
    label_ids = _parse_ints(label_parts, ",")
    _check_range(path, label_ids, label_indptr, n_labels, "label id", "n_labels")
    indptr = np.concatenate([[0], np.cumsum(n_feat)])
    fids, vals = _parse_pairs(feat_parts)
    _check_range(path, fids, indptr, n_features, "feature id", "n_features")
    if not np.all(np.isfinite(vals)):
        row = int(np.searchsorted(indptr, int(np.flatnonzero(~np.isfinite(vals))[0]), side="right")) - 1
        raise DataError(f"{path}:{row + 2}: feature value out of float32 range")
    X = sp.csr_matrix(
        (vals, fids.astype(np.int32 if n_features < 2**31 else np.int64), indptr),
        shape=(len(body), n_features),
    )
    X.sum_duplicates()
    return SparseFile(X=X, label_indptr=label_indptr, label_ids=label_ids, n_labels=n_labels)


def _parse_ints(parts: list[str], sep: str) -> np.ndarray:
    out = []
    for start in range(0, len(parts), _CHUNK_LINES):
        chunk = sep.join(parts[start : start + _CHUNK_LINES])
        out.append(np.array(chunk.split(sep), dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _parse_pairs(parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Feature ids int64 (nnz,) and values float32 (nnz,) of regex-validated ``f:v`` strings."""
    fids, vals = [], []
    for start in range(0, len(parts), _CHUNK_LINES):
        chunk = " ".join(parts[start : start + _CHUNK_LINES]).replace(":", " ")
        flat = np.fromstring(chunk, dtype=np.float64, sep=" ")  # (2 * nnz,): id, value, id, value, ...
        ids = flat[0::2]
        if ids.size and ids.max() >= 2**53:  # float64 would round such ids: parse them exactly
            ids = np.array(chunk.split()[0::2], dtype=np.int64)
        fids.append(ids.astype(np.int64))
        with np.errstate(over="ignore"):
            vals.append(flat[1::2].astype(np.float32))
    if not fids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(fids), np.concatenate(vals)


def _check_range(path: Path, ids: np.ndarray, indptr: np.ndarray, limit: int, what: str, field: str) -> None:
    bad = np.flatnonzero(ids >= limit)
    if bad.size:
        row = int(np.searchsorted(indptr, int(bad[0]), side="right")) - 1
        raise DataError(
            f"{path}:{row + 2}: {what} {int(ids[bad[0]])} is out of range; the header says {field} = {limit} "
            f"(ids are 0-based)"
        )


def read_jsonl(path: Path, max_docs: int | None = None) -> tuple[list[str], list[list[str]]]:
    """One JSON object per line: ``{"text": "...", "labels": ["a", "b"]}`` (other keys are ignored).

    Returns:
        (texts, label_lists); integer labels become strings.
    """
    lines = read_lines(path, max_docs)
    if not lines:
        raise DataError(f"{path}: no documents (the file is empty)")
    texts: list[str] = []
    labels: list[list[str]] = []
    for i, line in enumerate(lines, start=1):
        where = f"{path}:{i}"
        if not line.strip():
            raise DataError(
                f"{where}: empty line; each line must be one JSON object with 'text' and 'labels'"
            )
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno}): {line[:80]!r}") from None
        except RecursionError:
            raise DataError(f"{where}: invalid JSON (nested too deeply): {line[:80]!r}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object with 'text' and 'labels', got {line[:80]!r}")
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(f"{where}: 'text' must be a string, but is {_short(text)}")
        if not text.strip():
            raise DataError(f"{where}: empty document ('text' is blank); remove the line or give it a text")
        labs = obj.get("labels")
        if not isinstance(labs, list):
            raise DataError(f"{where}: 'labels' must be a list of label names, but is {_short(labs)}")
        names = []
        for lab in labs:
            if isinstance(lab, bool) or not isinstance(lab, (str, int)):
                raise DataError(
                    f"{where}: each label must be a string or an integer, but one is {_short(lab)}"
                )
            name = str(lab)
            if not name or any(c.isspace() for c in name):
                raise DataError(f"{where}: label {name!r} is empty or contains whitespace")
            names.append(name)
        texts.append(text)
        labels.append(names)
    return texts, labels


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "missing"
    return text if len(text) <= 60 else text[:57] + "..."


def read_hierarchy(path: Path) -> Hierarchy:
    """``child<TAB>parent`` edges, one a line (blank lines and ``#`` comments are skipped)."""
    edges = []
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{path}:{i}: expected 'child<TAB>parent', got {line[:80]!r}")
        edges.append((fields[0].strip(), fields[1].strip()))
    return Hierarchy(edges)


def read_label_names(path: Path) -> dict[str, str]:
    """``id<TAB>name[<TAB>alt names]`` rows (an optional header starting with ``id<TAB>``) -> {id: name}."""
    names: dict[str, str] = {}
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip() or (i == 1 and line.lower().startswith("id\t")):
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip():
            raise DataError(f"{path}:{i}: expected 'id<TAB>name[<TAB>alternative names]', got {line[:80]!r}")
        names[fields[0].strip()] = fields[1].strip()
    return names


def read_npz_labels(path: Path) -> sp.csr_matrix:
    """A scipy sparse label matrix saved with ``scipy.sparse.save_npz`` (read without pickle)."""
    try:
        Y = sp.csr_matrix(sp.load_npz(path))  # scipy reads .npz with allow_pickle=False
    except Exception as e:  # noqa: BLE001  (np.load and scipy raise many types on corrupt input)
        raise DataError(
            f"{path}: cannot read the sparse label matrix ({type(e).__name__}: {str(e)[:200]}); "
            f"expected a file written by scipy.sparse.save_npz"
        ) from None
    Y.sum_duplicates()
    return Y


def count_lines(path: Path, max_bytes: int = 64 << 20) -> int | None:
    """Number of lines in ``path`` (decompressed), or None when the file is larger than ``max_bytes``."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        n, last = 0, b"\n"
        with _open(path) as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    except (OSError, EOFError, zlib.error):
        return None
