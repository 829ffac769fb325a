"""Guards of the ``xmtc`` command line: what it checks before it trains, predicts or evaluates, so that every
user error is one ``error: ...`` line and no output is lost or misaligned.

* :func:`expand_set_pairs`: ``--set a=1 b=2`` (several pairs after one ``--set``) means ``--set a=1 --set b=2``;
* :func:`check_out_folder`: ``--out`` must be a folder (or not exist yet), never an existing file;
* :class:`AtomicOutput`: ``predict --output`` writes a temporary file in the same folder and renames it only
  once every input line was predicted, so an error leaves an existing output file intact; the input file
  itself (also through a symlink or a hard link) is refused as output;
* :func:`train_fingerprint` / :func:`check_same_training_data`: ``run.json`` records what the run was trained
  on, and ``--resume`` refuses data that changed since the checkpoint; :func:`checkpoint_mismatch` turns
  torch's ``size mismatch`` of a checkpoint into the same message;
* :func:`unknown_label_share` / :func:`check_known_labels`: ``evaluate`` on data whose gold labels are mostly
  unknown to the model is an error (the metrics would be meaningless), not all-zero metrics;
* :func:`check_text_argument`: text given on the command line must be valid UTF-8;
* :func:`validation_note`: what ``train`` says about validation (models without early stopping use none).

This module never imports :mod:`xmtc.cli` (the CLI imports it).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from xmtc.errors import ConfigError, DataError, XMTCError

__all__ = [
    "MAX_UNKNOWN_SHARE", "AtomicOutput", "check_known_labels", "check_out_folder", "check_same_training_data",
    "check_text_argument", "check_train_inputs", "checkpoint_mismatch", "expand_set_pairs", "run_provenance",
    "train_fingerprint", "unknown_label_share", "uses_validation", "validation_note",
]

#: ``evaluate`` refuses data on which more than this share of the gold label occurrences is unknown to the model.
MAX_UNKNOWN_SHARE = 0.5

_SET_OPTIONS = ("--set", "-s")


# --------------------------------------------------------------------------------------------- arguments
def expand_set_pairs(argv: list[str]) -> list[str]:
    """``train --set a=1 b=2`` -> ``train --set a=1 --set b=2``: bare ``key=value`` words right after a
    ``--set`` pair get their own ``--set`` (``train`` has no positional arguments, so they cannot mean anything
    else). Other commands and words after ``--`` are left alone."""
    if not argv or argv[0] != "train":
        return list(argv)
    out: list[str] = []
    state = "normal"  # "value": the next word is the value of --set; "pairs": key=value words may follow
    for i, word in enumerate(argv):
        if word == "--":
            return out + argv[i:]
        if state == "value":
            out.append(word)
            state = "pairs"
            continue
        if state == "pairs" and not word.startswith("-") and "=" in word:
            out += ["--set", word]
            continue
        state = "normal"
        out.append(word)
        if word in _SET_OPTIONS:
            state = "value"
        elif word.startswith("--set=") or (word.startswith("-s") and not word.startswith("--") and len(word) > 2):
            state = "pairs"
    return out


def check_out_folder(out: Path, option: str = "--out") -> None:
    """``out`` must be a folder or not exist yet (``--out`` naming an existing file is refused)."""
    if out.exists() and not out.is_dir():
        raise XMTCError(f"{option} {out} is an existing file, not a folder; name a new folder for the run")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise XMTCError(f"{option} {out}: {parent} is a file, not a folder")


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text_argument(text: str, option: str) -> None:
    """Text from the command line must be valid UTF-8: Python hands undecodable bytes over as lone surrogates
    (``$'\\xff'`` arrives as ``'\\udcff'``), which could not be written to any UTF-8 file."""
    m = _SURROGATE.search(text)
    if m is None:
        return
    ch = ord(m.group())
    what = f"byte 0x{ch - 0xDC00:02x}" if 0xDC80 <= ch <= 0xDCFF else f"lone surrogate U+{ch:04X}"
    raise DataError(f"{option}: not valid UTF-8 ({what} at character {m.start() + 1}); give the text in "
                    "UTF-8, or put it in a UTF-8 file and use --input")


# --------------------------------------------------------------------------------------------- predict --output
class AtomicOutput:
    """A text file written through a temporary sibling and renamed over ``path`` by :meth:`commit`.

    :meth:`discard` (on any error) removes the temporary file, so an existing ``path`` stays as it was. A
    symlink ``path`` keeps pointing where it did: the file it points to is replaced.

    Raises:
        XMTCError: ``path`` is the input file (also through a symlink or hard link), a folder, or in a folder
            that does not exist.
    """

    def __init__(self, path: Path, input_path: str | None = None, option: str = "--output"):
        path = Path(path).expanduser()
        target = path.resolve()
        if input_path not in (None, "-"):
            source = Path(input_path).expanduser()
            same = target == source.resolve() or (target.exists() and os.path.samefile(target, source))
            if source.exists() and same:
                raise XMTCError(f"{option} {path} is the input file; writing it would destroy the input: name "
                                "another output file")
        if target.is_dir():
            raise XMTCError(f"{option} {path} is a folder; name a file")
        if not target.parent.is_dir():
            raise XMTCError(f"{option} {path}: the folder {target.parent} does not exist")
        self.path, self.target = path, target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self.tmp = Path(tmp)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def write(self, text: str) -> int:
        return self._fh.write(text)

    def flush(self) -> None:
        self._fh.flush()

    def commit(self) -> None:
        """Close the temporary file and rename it over the target (keeping the target's permissions)."""
        self._fh.close()
        try:
            mode = self.target.stat().st_mode & 0o7777 if self.target.exists() else 0o666 & ~_umask()
            os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.target)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file; the target is untouched."""
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------- train / resume
def train_fingerprint(ds) -> dict[str, Any]:
    """What a run was trained on (recorded in ``run.json`` as ``train_data``): documents, labels and a sha256 of
    the label names, the texts (or sparse features) and the label matrix."""
    h = hashlib.sha256()
    h.update("\n".join(ds.label_index.names).encode("utf-8", "surrogatepass"))
    Y = ds.Y.tocsr()
    for a in (Y.indptr, Y.indices):
        h.update(a.astype("int64").tobytes())
    if ds.texts is not None:
        for t in ds.texts:
            h.update(t.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
    X = getattr(ds, "X", None)
    if X is not None:
        import scipy.sparse as sp

        X = sp.csr_matrix(X)
        for a in (X.indptr.astype("int64"), X.indices.astype("int64"), X.data.astype("float32")):
            h.update(a.tobytes())
    return {"docs": len(ds), "labels": int(ds.n_labels), "sha256": h.hexdigest()}


def check_same_training_data(run: dict[str, Any], current: dict[str, Any], out: Path) -> None:
    """``--resume``: refuse training data that differs from the data the checkpoint was trained on."""
    recorded = run.get("train_data")
    if not isinstance(recorded, dict) or recorded == current:
        return
    what = []
    if recorded.get("docs") != current["docs"]:
        what.append(f"{recorded.get('docs')} -> {current['docs']} training documents")
    if recorded.get("labels") != current["labels"]:
        what.append(f"{recorded.get('labels')} -> {current['labels']} labels")
    detail = ", ".join(what) or "same sizes, different contents"
    raise DataError(f"--resume: the training data of {run.get('data')} changed since the checkpoint in {out} "
                    f"({detail}); start a new run with another --out (or restore the data)")


def checkpoint_mismatch(error: BaseException, out: Path) -> XMTCError | None:
    """The user error for a checkpoint that does not fit the model rebuilt on ``--resume`` (torch's
    ``RuntimeError: ... size mismatch for ...``), or None for any other error."""
    text = str(error)
    if "size mismatch" not in text and "Error(s) in loading state_dict" not in text:
        return None
    m = re.search(r"size mismatch for ([\w.]+): copying a param with shape (torch\.Size\(\[[^\]]*\]\)) from "
                  r"checkpoint, the shape in current model is (torch\.Size\(\[[^\]]*\]\))", text)
    detail = f"; {m.group(1)}: {m.group(2)} in the checkpoint, {m.group(3)} now" if m else ""
    return ConfigError(f"--resume: the checkpoint in {out} does not fit the model built now: the data or the "
                       f"config changed since the checkpoint{detail}; start a new run with another --out")


def check_train_inputs(model: str, model_cls, train) -> None:
    """Refuse a training split the model cannot read (sparse features only, for a model that reads texts)
    before anything is written to the run folder."""
    if train.texts is not None:
        return
    from xmtc.models.deep import DeepTextModel

    if issubclass(model_cls, DeepTextModel):
        raise DataError(f"{train.name}/{train.split or 'train'} has sparse features only (no raw texts), which "
                        f"the {model} model cannot read; train a sparse model such as 'parabel' on it, or use "
                        "a dataset with texts")


def run_provenance(cfg, previous: dict[str, Any] | None, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What ``run.json`` records about where the config and the data came from: ``preset_fields`` (field ->
    the selector that filled it, e.g. ``"preset=fast"``), ``explicit_fields`` (the fields the user set) and
    ``train_data`` (:func:`train_fingerprint`). A resumed run keeps what its first start recorded."""
    if previous is not None:  # --resume: cfg was rebuilt from run.json (every field explicit): keep the record
        out = {key: previous[key] for key in ("preset_fields", "explicit_fields") if key in previous}
        out["train_data"] = previous.get("train_data", fingerprint)
        return out
    return {"preset_fields": cfg.preset_fields(), "explicit_fields": cfg.explicit_fields(),
            "train_data": fingerprint}


def uses_validation(model_cls) -> bool:
    """Whether a model uses a validation split (early stopping): the deep models, whose configs have
    ``valid_fraction``; the label-tree baselines train in one pass without one."""
    return "valid_fraction" in model_cls.Config.field_names()


def validation_note(model: str, model_cls, vname: str | None, valid_ds) -> str:
    """What ``train`` prints after ``validation:``."""
    if not uses_validation(model_cls):
        unused = f"; dataset split '{vname}' ({len(valid_ds)} docs) is not used" if valid_ds is not None else ""
        return f"none ({model} trains without early stopping){unused}"
    if valid_ds is not None:
        return f"dataset split '{vname}' ({len(valid_ds)} docs)"
    return "held out from train by the model (its seed)"


# --------------------------------------------------------------------------------------------- evaluate
def unknown_label_share(ds, model=None):
    """:class:`~xmtc.data.labels.UnknownGold` of a split (loaded with ``model``'s label index when given):
    ``.unknown``, ``.total``, ``.share`` of the gold label occurrences unknown to the model."""
    from xmtc.data import unknown_gold_labels

    return unknown_gold_labels(ds, model.label_index_ if model is not None else None)


def check_known_labels(ds, model, max_share: float = MAX_UNKNOWN_SHARE) -> None:
    """Refuse to evaluate on ``ds`` when more than ``max_share`` of its gold label occurrences are unknown to
    ``model``: the metrics would be (near) zero for a reason that has nothing to do with the model."""
    u = unknown_label_share(ds, model)
    if u.share <= max_share:
        return
    ours = ", ".join(repr(n) for n in model.label_index_.names[:3])
    raise DataError(f"{u.message(f'{ds.name}/{ds.split}')} Not evaluated: with more than {max_share:.0%} of the "
                    f"gold labels unknown the metrics would only measure the label mismatch; evaluate on data "
                    f"labelled like the model's training data (its labels are e.g. {ours})")
