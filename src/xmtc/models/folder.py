"""Model folders on disk: meta.json (format version, library versions, the SHA-256 of every file), the checks
that refuse a changed, incomplete or half-written folder, and the array files (.npz read with
allow_pickle=False). Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import ModelLoadError

FORMAT_VERSION = 1


SAVING_MARKER = ".saving"  # exists in a model folder while save() writes it


INCOMPLETE = ("the model folder looks incompletely written (a save was interrupted?); re-save it or re-run "
              "training with --resume")


def _incomplete(path: Path, detail: str) -> ModelLoadError:
    return ModelLoadError(f"{path}: {INCOMPLETE} ({detail})")


def read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` of a model folder, checked for its shape, a compatible format version and a checksum map.

    Raises:
        ModelLoadError: no or invalid ``meta.json`` (a folder with model files but no ``meta.json``, or with
            the marker of a save in progress, is reported as incompletely written).
    """
    path = Path(path)
    f = path / "meta.json"
    interrupted = (path / SAVING_MARKER).is_file()
    if not f.is_file():
        if interrupted or any((path / name).is_file() for name in ("config.json", "label_index.json")):
            raise _incomplete(path, "it has model files but no meta.json")
        raise ModelLoadError(f"{path}: not an xmtc model folder (no meta.json)")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if interrupted:
            raise _incomplete(path, f"meta.json is unreadable: {e}") from None
        raise ModelLoadError(f"{f}: invalid JSON ({getattr(e, 'msg', e)})") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{f}: must be a JSON object with 'model', 'format' and 'sha256', but is a "
                             f"{_json_type(meta)}; re-save the model")
    fmt = meta.get("format")
    if fmt != FORMAT_VERSION:
        versions = meta.get("versions")
        xmtc_version = versions.get("xmtc", "?") if isinstance(versions, dict) else "?"
        raise ModelLoadError(f"{path}: model folder format {fmt!r} is not supported by this xmtc "
                             f"(expects {FORMAT_VERSION}); retrain or use the xmtc version that wrote it "
                             f"({xmtc_version})")
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or not digests:
        shown = "missing" if digests is None and "sha256" not in meta else json.dumps(digests)[:40]
        raise ModelLoadError(f"{f}: 'sha256' must map every file of the model folder to its SHA-256, but is "
                             f"{shown}; refusing to load a model whose files cannot be verified")
    bad = [k for k, v in digests.items()
           if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v)]
    if bad:
        raise ModelLoadError(f"{f}: the checksum of {bad[0]} is not a SHA-256 hex digest "
                             f"({json.dumps(digests[bad[0]])[:40]}); refusing to load")
    unsafe = [k for k in digests if Path(k).is_absolute() or ".." in Path(k).parts or k in ("", "meta.json")]
    if unsafe:
        raise ModelLoadError(f"{f}: 'sha256' lists {unsafe[0]!r}, which is not a file inside the model folder")
    return meta


def folder_files(path: Path) -> set[str]:
    """Relative POSIX paths of every file under the model folder ``path`` except ``meta.json`` and the marker
    of a save in progress."""
    out = set()
    for f in Path(path).rglob("*"):
        if f.is_file() or f.is_symlink():
            rel = f.relative_to(path).as_posix()
            if rel not in ("meta.json", SAVING_MARKER):
                out.add(rel)
    return out


def verify_files(path: Path, meta: dict[str, Any]) -> None:
    """Check that the checksum map of ``meta`` (from :func:`read_meta`) covers exactly the files of ``path``
    and that every file is unchanged.

    Raises:
        ModelLoadError: a listed file is missing, a file is not covered, or a checksum differs; when the folder
            holds the marker of an interrupted save (or a listed file is missing), the message says that the
            folder looks incompletely written and how to recover.
    """
    path = Path(path)
    digests: dict[str, str] = meta["sha256"]
    interrupted = (path / SAVING_MARKER).is_file()
    present = folder_files(path)
    missing = sorted(set(digests) - present)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _incomplete(path, f"file {missing[0]}{more} listed in meta.json is missing")
    extra = sorted(present - set(digests))
    if extra:
        shown = ", ".join(extra[:5]) + (f" (and {len(extra) - 5} more)" if len(extra) > 5 else "")
        if interrupted:
            raise _incomplete(path, f"files not in meta.json: {shown}")
        raise ModelLoadError(f"{path}: files not covered by the checksums in meta.json: {shown}; a model folder "
                             "holds only the files its save wrote (remove them, or re-save the model)")
    for fname in sorted(digests):
        f = path / fname
        if _sha256(f) != digests[fname]:
            if interrupted:
                raise _incomplete(path, f"{fname} differs from its checksum in meta.json")
            raise ModelLoadError(f"{f}: contents changed since the model was saved (checksum mismatch); "
                                 "refusing to load a tampered or corrupted model (re-save it or re-run training)")


def _previous_files(path: Path) -> set[str]:
    """Files the checksum map of an earlier save into ``path`` lists (empty when there is none)."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        digests = meta.get("sha256") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return set()
    if not isinstance(digests, dict):
        return set()
    return {k for k in digests if isinstance(k, str) and k and not Path(k).is_absolute()
            and ".." not in Path(k).parts and k != "meta.json"}


def _json_type(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from xmtc._version import __version__

    out = {"xmtc": __version__, "numpy": np.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def save_arrays(path: Path, name: str, arrays: dict[str, np.ndarray]) -> str:
    """Write numpy arrays as ``name`` (.npz, no pickled objects). Returns the file name."""
    for key, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {key!r} has dtype object; only numeric arrays can be saved")
    np.savez(path / name, **arrays)
    return name


def load_arrays(path: Path, name: str) -> dict[str, np.ndarray]:
    """Read an .npz written by :func:`save_arrays` (``allow_pickle=False``)."""
    f = path / name
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{f}: cannot read arrays ({e})") from None


def save_sparse(path: Path, name: str, m: sp.spmatrix) -> str:
    m = sp.csr_matrix(m)
    return save_arrays(path, name, {"data": m.data, "indices": m.indices, "indptr": m.indptr,
                                    "shape": np.asarray(m.shape, dtype=np.int64)})


def load_sparse(path: Path, name: str) -> sp.csr_matrix:
    a = load_arrays(path, name)
    return sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=tuple(a["shape"]))
