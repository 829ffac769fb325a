"""Print a markdown table of the rows of result files (any file in the schema of :mod:`benchmarks.schema`).

    python -m benchmarks.table benchmarks/results/peers_eurlex57k.json benchmarks/results/maacf_*.json
    python -m benchmarks.table FILE... --columns model,dataset,P@1,P@5,PSP@5,train_cpu_s --where kind=peer
    python -m benchmarks.table FILE... --sort P@1
    python -m benchmarks.table FILE... --stages      # one row per training stage: CPU s per epoch, best valid
    python -m benchmarks.table FILE... --fusion      # one row per score fusion: the weight validation chose

Columns are row keys (``file`` is the result file's name); a column that is empty in every row is left out
unless it was named with ``--columns``. Metrics print with 2 decimals, seconds with 1, docs/s and MiB as
integers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.schema import ALL_METRICS, SchemaError, load  # noqa: E402

DEFAULT_COLUMNS = ("model", "kind", "dataset", "n_train", "n_test", "P@1", "P@3", "P@5", "nDCG@5", "PSP@5",
                   "train_s", "train_cpu_s", "predict_docs_s", "peak_rss_mib")
_FORMATS = {**{m: ".2f" for m in ALL_METRICS}, "train_s": ".1f", "train_cpu_s": ".1f", "predict_docs_s": ".0f",
            "peak_rss_mib": ".0f", "best_valid": ".2f", "stage_cpu_s": ".1f", "stage_wall_s": ".1f",
            "cpu_s_per_epoch": ".1f", "valid_w0": ".2f", "valid_chosen": ".2f", "valid_inf": ".2f"}


def cell(key: str, value: Any) -> str:
    """One table cell: formatted numbers, compact JSON for objects, empty for None."""
    if value is None:
        return ""
    if isinstance(value, float) and key in _FORMATS:
        return format(value, _FORMATS[key])
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value).replace("|", "\\|")


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str], keep_empty: bool = False) -> str:
    """A GitHub markdown table of ``rows`` (numbers right-aligned)."""
    if not keep_empty:
        columns = [c for c in columns if c == "model" or any(r.get(c) is not None for r in rows)]
    numeric = [all(isinstance(r.get(c), int | float) or r.get(c) is None for r in rows) and c != "model"
               for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def read_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of every file (checked against the schema), each with ``file`` set to the file name."""
    rows = []
    for p in paths:
        rows += [{**r, "file": Path(p).name} for r in load(p)["rows"]]
    return rows


STAGE_COLUMNS = ("model", "stage", "epochs_run", "best_epoch", "best_valid", "stage_cpu_s", "cpu_s_per_epoch",
                 "stage_wall_s", "file")


def _epochs_trained(stage: dict[str, Any], command: str) -> int | None:
    """Epochs a stage trained in the recorded process: a ``--resume`` run's CPU seconds cover only the epochs
    after its checkpoint (``epochs_resumed``; files written before that key: unknown, so None)."""
    epochs = stage.get("epochs_run")
    if epochs is None:
        return None
    if "epochs_resumed" in stage:
        return epochs - stage["epochs_resumed"]
    return None if "--resume" in command.split() else epochs


def read_stages(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per training stage of every run (``runs[i].stages`` of a file): the stage's epochs, its best
    validation score (the run's own ``select_metric``, in %), its CPU seconds and CPU seconds per epoch."""
    rows = []
    for p in paths:
        data = load(p)
        for run in data.get("runs", []):
            for stage, st in (run.get("stages") or {}).items():
                cpu, epochs = st.get("stage_cpu_s"), st.get("epochs_run")
                trained = _epochs_trained(st, data.get("command", ""))
                best = st.get("best_valid")
                rows.append({"model": run.get("label", run.get("name")), "stage": stage, "epochs_run": epochs,
                             "best_epoch": st.get("best_epoch"),
                             "best_valid": None if best is None else round(100 * best, 2),
                             "stage_cpu_s": cpu, "stage_wall_s": st.get("stage_wall_s"),
                             "cpu_s_per_epoch": round(cpu / trained, 1) if cpu is not None and trained else None,
                             "file": Path(p).name})
    return rows


FUSION_COLUMNS = ("model", "fusion", "weight", "valid_w0", "valid_chosen", "valid_inf", "file")


def read_fusions(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per score fusion of every run (``runs[i].stats_valid``: MAACF+'s ``fusion_validation`` with its
    shortlist, TReaderXML's ``teacher_fusion_validation`` with its teacher): the weight chosen on validation and
    the validation score (the first one recorded, P@1, in %) of the network alone (w = 0), of the chosen weight
    and of the other part alone (w = inf)."""
    rows = []
    for p in paths:
        for run in load(p).get("runs", []):
            stats = run.get("stats_valid") or {}
            for key, scores in stats.items():
                if not key.endswith("fusion_validation") or not isinstance(scores, dict):
                    continue
                prefix = key[: -len("fusion_validation")]
                weight = stats.get(prefix + "fusion_weight")
                first = {w: v[0] for w, v in scores.items() if isinstance(v, list) and v}
                rows.append({"model": run.get("label", run.get("name")), "fusion": prefix.rstrip("_") or "shortlist",
                             "weight": weight, "valid_w0": first.get("0.0"), "valid_chosen": first.get(str(weight)),
                             "valid_inf": first.get("inf"), "file": Path(p).name})
    return rows


def _where(rows: list[dict[str, Any]], conditions: Sequence[str]) -> list[dict[str, Any]]:
    for cond in conditions:
        key, _, value = cond.partition("=")
        rows = [r for r in rows if str(r.get(key)) == value]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="result files in the schema")
    p.add_argument("--columns", default=None, help=f"comma-separated row keys (default {','.join(DEFAULT_COLUMNS)})")
    p.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE", help="keep rows whose KEY prints as VALUE")
    p.add_argument("--sort", default=None, metavar="KEY", help="sort by KEY, largest first")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--stages", action="store_true", help="one row per training stage of each run (columns "
                      f"{','.join(STAGE_COLUMNS)}) instead of the result rows")
    view.add_argument("--fusion", action="store_true", help="one row per score fusion of each run, the weight "
                      f"chosen on validation and its validation P@1 (columns {','.join(FUSION_COLUMNS)})")
    args = p.parse_args(argv)
    reader = read_stages if args.stages else read_fusions if args.fusion else read_rows
    try:
        rows = _where(reader(args.files), args.where)
    except SchemaError as e:
        print(e, file=sys.stderr)
        return 1
    if args.sort:
        def key(r: dict[str, Any]) -> tuple:
            v = r.get(args.sort)
            return (v is not None, v if isinstance(v, int | float) else -float("inf"), str(v))

        rows.sort(key=key, reverse=True)
    default = STAGE_COLUMNS if args.stages else FUSION_COLUMNS if args.fusion else DEFAULT_COLUMNS
    columns = args.columns.split(",") if args.columns else list(default)
    print(markdown(rows, columns, keep_empty=args.columns is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
