"""Run folders: the layout ``xmtc train`` writes and the CLI, the server and the report read.

A *run folder* (``--out RUN`` of ``xmtc train``) holds

* ``run.json`` (:data:`RUN_FILE`): model name, data path, validation split, full config, ``status``
  (:data:`STATUS_TRAINING` while training, :data:`STATUS_DONE` once the model is saved), start time, xmtc
  version, ``preset_fields`` (config field -> the preset that filled it, e.g. ``"preset=fast"``),
  ``explicit_fields`` (the fields the user set), ``train_data`` (documents, labels and a sha256 of the
  training split: ``--resume`` refuses changed data) and, when done, ``train_seconds``, ``n_train``,
  ``n_valid``, ``n_labels``;
* ``model/`` (:data:`MODEL_DIR`): the saved model folder (``meta.json`` and weights, see
  :mod:`xmtc.models.base`);
* ``metrics.jsonl`` (:data:`METRICS_FILE`) and ``checkpoints/`` (:data:`CHECKPOINTS_DIR`): written by the
  training loop of deep models;
* ``test_report.json`` (:data:`TEST_REPORT`): the final test metrics.

Commands that take ``RUN`` also accept a model folder itself (:func:`model_dir`).

This module depends on :mod:`xmtc.errors` only: the CLI (:mod:`xmtc.cli`), the server (:mod:`xmtc.serve`) and
the report (:mod:`xmtc.report`) import it, never each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmtc.errors import ModelLoadError, XMTCError

__all__ = [
    "CHECKPOINTS_DIR", "METRICS_FILE", "MODEL_DIR", "MODEL_META", "RUN_FILE", "STATUS_DONE", "STATUS_TRAINING",
    "TEST_REPORT", "check_model_inputs", "is_finished", "model_dir", "read_run", "resolve_model_dir", "write_json",
]

RUN_FILE = "run.json"
MODEL_DIR = "model"
MODEL_META = "meta.json"
CHECKPOINTS_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TEST_REPORT = "test_report.json"

STATUS_TRAINING = "training"
STATUS_DONE = "done"


def model_dir(run: Path) -> Path:
    """The model folder of a run folder (``RUN/model``) or ``run`` itself when it is a model folder."""
    if (run / MODEL_META).is_file():
        return run
    if (run / MODEL_DIR / MODEL_META).is_file():
        return run / MODEL_DIR
    if not run.exists():
        raise ModelLoadError(f"{run}: no such run or model folder")
    if (run / RUN_FILE).is_file():
        raise ModelLoadError(f"{run}: the run has no saved model yet ({run / MODEL_DIR} is missing); "
                             f"finish it with: xmtc train --out {run} --model {_run_model(run)} --resume")
    raise ModelLoadError(f"{run}: not a run folder (no {RUN_FILE}) or model folder (no {MODEL_META})")


def _run_model(run: Path) -> str:
    """The model name recorded in ``run/run.json`` (``NAME`` when it cannot be read)."""
    try:
        name = json.loads((run / RUN_FILE).read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else "NAME"


def check_model_inputs(model, ds) -> None:
    """Refuse a dataset split whose inputs ``model`` cannot read: a split without raw texts (sparse features
    only) for a model that reads texts; the message says which model would fit.

    Raises:
        XMTCError: naming the split, the model and what to do instead.
    """
    if getattr(ds, "texts", None) is not None or not _reads_texts(model):
        return
    where = f"{ds.name}/{ds.split}" if getattr(ds, "split", None) else repr(ds.name)
    if getattr(model, "featurizer_", None) is not None:  # a label-tree model fitted on texts (TF-IDF)
        raise XMTCError(f"{where} has sparse features only (no raw texts), but this {model.name} model was "
                        f"trained on raw texts (its own TF-IDF features); evaluate it on data with texts, or "
                        f"train a {model.name} model on this dataset's features (xmtc train --model "
                        f"{model.name} --data ...)")
    raise XMTCError(f"{where} has sparse features only (no raw texts), which the {model.name} model cannot "
                    "read; train a sparse model such as 'parabel' on this dataset")


def _reads_texts(model) -> bool:
    members = getattr(model, "members_", None)
    if members:
        return any(_reads_texts(m) for m in members)
    if hasattr(model, "featurizer_"):
        return model.featurizer_ is not None
    return True


def resolve_model_dir(run: str | Path) -> Path:
    """The model folder of a run folder from ``xmtc train`` (``RUN/model``) or a model folder itself.

    Like :func:`model_dir`, for a ``str`` or a path starting with ``~``.

    Raises:
        ModelLoadError: neither a run with a saved model nor a model folder (the message says which).
    """
    return model_dir(Path(run).expanduser())


def read_run(out: Path) -> dict[str, Any] | None:
    """The ``run.json`` of run folder ``out`` as a dict, or None when there is none.

    Raises:
        XMTCError: the file is not valid JSON or lacks ``model`` / ``config``.
    """
    f = out / RUN_FILE
    if not f.is_file():
        return None
    try:
        run = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise XMTCError(f"{f}: invalid JSON ({e.msg}); the run folder is damaged") from None
    if not isinstance(run, dict) or "model" not in run or "config" not in run:
        raise XMTCError(f"{f}: not a run description (needs 'model' and 'config')")
    return run


def is_finished(out: Path, run: dict[str, Any] | None) -> bool:
    """Whether the run in ``out`` (its ``run.json`` dict, or None) is done and its model is saved."""
    return run is not None and run.get("status") == STATUS_DONE and (out / MODEL_DIR / MODEL_META).is_file()


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON atomically (through a ``.tmp`` sibling), e.g. ``run.json``."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
