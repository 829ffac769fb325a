"""The one result schema of every JSON file in ``benchmarks/results/``: build rows, validate files.

A result file is one JSON object::

    {"command": "python -m benchmarks.run ...",   # how the file was made, as typed from the repository root
     "date": "2026-11-21",                          # YYYY-MM-DD (a time may follow)
     "machine": {...} | null,                       # common.machine_info(); null where it was not recorded
     "rows": [ROW, ...],                            # at least one
     ...}                                           # optional extra keys (versions, configs, histories, ...)

and every ROW holds at least (null where not measured)::

    model           str    the row's name (registered model and its own overrides, or a peer's name)
    kind            str    "single" (one xmtc model), "ensemble" (a combination of models) or "peer"
    dataset         str    the dataset folder name, e.g. "eurlex57k" ("synthetic" for generated data)
    n_train         int    training documents the model was fitted on
    n_test          int    test documents evaluated
    seed            int    the model's seed (null: not recorded or not seedable)
    P@1 P@3 P@5 nDCG@5 PSP@5   float  percent (0..100) on the test documents
    train_s         float  training wall seconds
    train_cpu_s     float  training CPU seconds (all threads of the process)
    predict_docs_s  float  test documents per second of prediction wall time
    peak_rss_mib    float  peak resident memory of the process that trained the model, MiB

Other row keys (nDCG@3, PSP@1, PSP@3, n_valid, n_labels, config, ...) are allowed; metric keys among
:data:`ALL_METRICS` must also be percent.

    python -m benchmarks.schema FILE...     # validate files; exit 1 and list the problems if any
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5")
ALL_METRICS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5")
TIMINGS = ("train_s", "train_cpu_s", "predict_docs_s", "peak_rss_mib")
ROW_KEYS = ("model", "kind", "dataset", "n_train", "n_test", "seed", *METRICS, *TIMINGS)
TOP_KEYS = ("command", "date", "machine", "rows")
KINDS = ("single", "ensemble", "peer")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class SchemaError(ValueError):
    """A result file that is not in the schema (the message lists every problem)."""


def make_row(model: str, kind: str, dataset: str, **fields: Any) -> dict[str, Any]:
    """A result row: the required keys in their order (missing ones None), then the other ``fields``."""
    row: dict[str, Any] = {"model": model, "kind": kind, "dataset": dataset}
    for key in ROW_KEYS[3:]:
        row[key] = fields.pop(key, None)
    for key in ALL_METRICS:  # the optional metrics next to the required ones
        if key in fields:
            row[key] = fields.pop(key)
    row.update(fields)
    return row


def percent_metrics(report: Mapping[str, float], keys: Iterable[str] = ALL_METRICS) -> dict[str, float]:
    """``xmtc.metrics.report`` fractions as percent, rounded to 2 decimals."""
    return {k: round(100.0 * float(report[k]), 2) for k in keys if k in report}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def validate_row(row: Any, where: str = "row") -> list[str]:
    """The problems of one row (empty when it is in the schema)."""
    if not isinstance(row, dict):
        return [f"{where}: not an object"]
    errors = [f"{where}: missing key {k!r}" for k in ROW_KEYS if k not in row]
    for key in ("model", "dataset"):
        if key in row and not (isinstance(row[key], str) and row[key]):
            errors.append(f"{where}: {key} must be a non-empty string, got {row[key]!r}")
    if "kind" in row and row["kind"] not in KINDS:
        errors.append(f"{where}: kind must be one of {KINDS}, got {row['kind']!r}")
    for key in ("n_train", "n_test", "seed"):
        v = row.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and (key == "seed" or v >= 0)):
            errors.append(f"{where}: {key} must be a non-negative integer or null, got {v!r}")
    for key in ALL_METRICS:
        v = row.get(key)
        if v is not None and not (_is_number(v) and 0.0 <= v <= 100.0):
            errors.append(f"{where}: {key} must be percent in [0, 100] or null, got {v!r}")
    values = [row.get(k) for k in METRICS]
    if all(_is_number(v) for v in values) and max(values) <= 1.0 and max(values) > 0.0:
        errors.append(f"{where}: {', '.join(METRICS)} are all <= 1: fractions instead of percent?")
    for key in TIMINGS:
        v = row.get(key)
        if v is not None and not (_is_number(v) and v >= 0):
            errors.append(f"{where}: {key} must be a non-negative number or null, got {v!r}")
    return errors


def validate(obj: Any) -> list[str]:
    """The problems of one result object (empty when it is in the schema)."""
    if not isinstance(obj, dict):
        return ["top level: not an object"]
    errors = [f"top level: missing key {k!r}" for k in TOP_KEYS if k not in obj]
    if "command" in obj and not (isinstance(obj["command"], str) and obj["command"]):
        errors.append("command must be a non-empty string")
    if "date" in obj and not (isinstance(obj["date"], str) and _DATE.match(obj["date"])):
        errors.append(f"date must start with YYYY-MM-DD, got {obj['date']!r}")
    if "machine" in obj and obj["machine"] is not None and not isinstance(obj["machine"], dict):
        errors.append("machine must be an object or null")
    rows = obj.get("rows")
    if "rows" in obj and not (isinstance(rows, list) and rows):
        errors.append("rows must be a non-empty list")
    elif isinstance(rows, list):
        for i, row in enumerate(rows):
            errors += validate_row(row, f"rows[{i}]")
    return errors


def load(path: str | Path) -> dict[str, Any]:
    """Read a result file and check it; raises :class:`SchemaError` listing every problem."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SchemaError(f"{path}: {e}") from None
    errors = validate(obj)
    if errors:
        raise SchemaError(f"{path}: not in the result schema:\n  " + "\n  ".join(errors))
    return obj


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    bad = 0
    for p in paths:
        try:
            obj = load(p)
            print(f"{p}: ok ({len(obj['rows'])} rows)")
        except SchemaError as e:
            bad += 1
            print(e, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
