"""One-off: rewrite the result files of the old benchmark scripts in the result schema (:mod:`benchmarks.schema`).

The old scripts wrote five shapes (``row``, ``rows``, ``runs[].rows``, ``models``, ``results``). This moves
their result rows into ``rows`` (figures unchanged; fractions of the peers files become percent rounded to 2
decimals, the fractions are kept as ``metrics_fraction``) and keeps every other key of a file, so nothing is
lost. Files already in the schema are left alone, so a second run changes nothing.

    python -m benchmarks.convert_results benchmarks/results/*.json benchmarks/results/*/*.json
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.schema import ALL_METRICS, make_row, percent_metrics, validate  # noqa: E402


def _flag(command: str, flag: str) -> str | None:
    words = shlex.split(command)
    return words[words.index(flag) + 1] if flag in words else None


def _dataset(path: str | None) -> str:
    return Path(path.rstrip("/")).name if path else "unknown"


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ALL_METRICS if k in row}


def _rest(row: dict[str, Any], used: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used and k not in ALL_METRICS}


def _timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("train_s", "train_cpu_s", "predict_docs_s", "peak_rss_mib")}


def _single_script(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/attentionxml.py: one ``row`` plus stages, config, sizes and argv."""
    row = d.pop("row")
    command = "python benchmarks/attentionxml.py " + shlex.join(d["argv"])
    new = make_row(row["model"], "single", _dataset(d["data"]), n_train=d["n_train"], n_test=d["n_test"],
                   seed=d["config"].get("seed"), **_metrics(row), **_timing(row), n_valid=d["n_valid"],
                   n_labels=d["n_labels"], **_rest(row, ("model", "train_s", "train_cpu_s", "predict_docs_s",
                                                          "peak_rss_mib")))
    return {"command": command, "date": d.pop("date"), "machine": d.pop("machine"), "rows": [new], **d}


def _run_rows(entry: dict[str, Any], dataset: str, run: Any) -> list[dict[str, Any]]:
    rows = []
    for row in entry.pop("rows"):
        rows.append(make_row(row["model"], "single", dataset, n_train=entry.get("n_train"),
                             n_test=entry.get("n_test"), seed=entry.get("config", {}).get("seed"),
                             **_metrics(row), **_timing(row), n_valid=entry.get("n_valid"),
                             n_labels=entry.get("n_labels"), run=run,
                             **_rest(row, ("model", "train_s", "train_cpu_s", "predict_docs_s", "peak_rss_mib"))))
    return rows


def _runs(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/maacf.py and treaderxml.py: ``runs[i].rows``; each row gets ``run`` = i."""
    dataset = _dataset(_flag(d["command"], "--data"))
    rows = [r for i, entry in enumerate(d["runs"]) for r in _run_rows(entry, dataset, i)]
    return {"command": d.pop("command"), "date": d.pop("date"), "machine": d.pop("machine", None), "rows": rows,
            **d}


def _models(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/lightattention.py: ``models[name].rows``; each row gets ``run`` = name."""
    dataset = _dataset(_flag(d["command"], "--data"))
    rows = [r for name, entry in d["models"].items() for r in _run_rows(entry, dataset, name)]
    return {"command": d.pop("command"), "date": d.pop("date"), "machine": d.pop("machine", None), "rows": rows,
            **d}


def _peers(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/peers.py: ``results[]`` with fraction metrics."""
    info, dataset = d["data_info"], _dataset(d["data"])
    rows = []
    for r in d.pop("results"):
        method = r.pop("method")
        frac = r.pop("metrics", None)
        kind = "single" if method.startswith("xmtc-") else "peer"
        rows.append(make_row(method, kind, dataset, n_train=info["n_train"], n_test=info["n_test"], seed=None,
                             **(percent_metrics(frac) if frac else {}), train_s=r.pop("train_s", None),
                             predict_docs_s=r.pop("predict_docs_per_s", None),
                             peak_rss_mib=r.pop("peak_rss_mib", None), n_labels=info["n_labels"],
                             **r, metrics_fraction=frac))
    command = d.pop("command")
    command = command if command.startswith("python") else "python " + command
    return {"command": command, "date": d["machine"]["date"], "machine": d.pop("machine"), "rows": rows, **d}


def _scale(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/scale.py: one ``results`` entry per label count (only P@1 of the metrics)."""
    rows = []
    for r in d.pop("results"):
        preset = r.get("config", {}).get("preset", "fast")
        rows.append(make_row(f"attentionxml ({preset}), {r['labels']} labels", "single", "synthetic",
                             n_train=r.pop("n_train", None), n_test=r.pop("n_test", None),
                             seed=r.get("config", {}).get("seed"), **{"P@1": r.pop("P@1", None)},
                             train_s=r.pop("fit_s", None), train_cpu_s=r.pop("fit_cpu_s", None),
                             predict_docs_s=r.pop("predict_docs_s", None), peak_rss_mib=r.pop("peak_rss_mib", None),
                             **r))
    command = "python benchmarks/scale.py " + shlex.join(d["argv"])
    return {"command": command, "date": d.pop("date"), "machine": d.pop("machine"), "rows": rows, **d}


def _ensemble(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/ensemble.py: rows of deep models, averages, parabel, consensus (``kind`` becomes ``role``)."""
    seeds = {m["name"]: m.get("config", {}).get("seed") for m in d["deep_models"]}
    parabel = d["parabel"]
    rows = []
    for r in d.pop("rows"):
        role = r.pop("kind")
        name = r.pop("name")
        kind = "single" if role in ("deep", "parabel") else "ensemble"
        seed = seeds.get(name) if role == "deep" else (parabel.get("config", {}).get("seed") if role == "parabel"
                                                       else None)
        train_s = parabel.get("train_s") if role == "parabel" else None
        rows.append(make_row(name, kind, _dataset(d["data"]), n_train=d["n_train"], n_test=d["n_test"], seed=seed,
                             **_metrics(r), train_s=train_s, role=role,
                             **{k: v for k, v in r.items() if k not in ALL_METRICS}))
    command = "python benchmarks/ensemble.py " + shlex.join(d["argv"])
    return {"command": command, "date": d["machine"]["date"], "machine": d.pop("machine"), "rows": rows, **d}


def _shortlist(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/treaderxml.py --shortlist-grid: teacher shortlist recall rows (no P@k)."""
    dataset = _dataset(_flag(d["command"], "--data"))
    rows = [make_row(f"treaderxml teacher shortlist ({r['teacher labels']} teacher labels, {r['clusters']} "
                     "clusters)", "single", dataset, n_train=d["n_train"], n_test=d["n_test"], **r)
            for r in d.pop("rows")]
    return {"command": d.pop("command"), "date": d.pop("date"), "machine": d.pop("machine", None), "rows": rows,
            **d}


def _serve(d: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/serve_load.py: one load test; the serving figures stay at the top level."""
    dataset = _dataset(_flag(d["command"], "--data"))
    row = make_row(f"{d['model']} (xmtc serve, concurrency {d['concurrency']})", "single", dataset,
                   n_labels=d["n_labels"], requests=d["requests"], concurrency=d["concurrency"],
                   throughput_docs_s=d["throughput_texts_per_s"], latency_p50_ms=d["latency_ms"]["p50"],
                   latency_p99_ms=d["latency_ms"]["p99"], errors=d["errors"])
    machine = d.pop("machine")  # recorded as one line of text
    machine = {"description": machine} if isinstance(machine, str) else machine
    return {"command": d.pop("command"), "date": d.pop("date"), "machine": machine, "rows": [row], **d}


def convert(d: dict[str, Any], name: str) -> dict[str, Any]:
    """``d`` in the schema (unchanged when it already is)."""
    if not validate(d):
        return d
    if "row" in d:
        return _single_script(d)
    if "runs" in d:
        return _runs(d)
    if "models" in d:
        return _models(d)
    if "results" in d and "data_info" in d:
        return _peers(d)
    if "results" in d and name.startswith("scale"):
        return _scale(d)
    if "consensus_beats_parts" in d:
        return _ensemble(d)
    if "rows" in d and "teacher labels" in d["rows"][0]:
        return _shortlist(d)
    if "latency_ms" in d:
        return _serve(d)
    raise ValueError(f"{name}: unknown shape with keys {sorted(d)}")


def main(argv: list[str] | None = None) -> int:
    for p in map(Path, sys.argv[1:] if argv is None else argv):
        d = json.loads(p.read_text(encoding="utf-8"))
        new = convert(d, p.name)
        errors = validate(new)
        if errors:
            raise SystemExit(f"{p}: conversion not in the schema: {errors}")
        p.write_text(json.dumps(new, indent=1) + "\n", encoding="utf-8")
        print(f"{p}: {len(new['rows'])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
