"""The benchmark runner: train, predict and evaluate registered xmtc models and the sparse peers on one dataset
folder, every run in its own subprocess, results in the schema of :mod:`benchmarks.schema`.

    python -m benchmarks.run --model parabel --data ../shared/data/goemotions --out /tmp/p.json
    python -m benchmarks.run --model omikuji-bonsai --data ../shared/data/goemotions --max-train 3000 --out /tmp/o.json
    python -m benchmarks.run --data ../shared/data/eurlex57k --max-train 8000 --max-test 2000 --epochs 5 \\
        --threads 1 --set emb_dim=64 max_len=128 --run treaderxml --run treaderxml ablation=0 --run parabel \\
        --out benchmarks/results/FILE.json

Runs: ``--model NAME`` and ``--run NAME [KEY=VALUE ...]`` (both repeatable, run in the order given). NAME is a
registered model (``xmtc.registry.available()``) or a peer (:data:`benchmarks.peers.PEERS`). A run's config
gets, in this order: ``progress=false``, ``seed=--seed``, ``threads``/``n_threads=--threads`` (when not 0),
``epochs=--epochs`` (when given) where the config has those fields, then every ``--set KEY=VALUE`` whose key
the config has (a key no run has is an error), then the run's own overrides.

Documents: ``--max-train/--max-test/--max-valid N`` take seeded random samples (``--seed``, without replacement,
in file order), never the first N; the label index is built from the training documents used, and gold labels
outside it count as misses. ``--max-tokens N`` cuts every document of every split to its first N word tokens
(xmtc's tokenizer), so that the peers' TF-IDF sees what a network with ``max_len=N`` sees. Validation
(``--valid-split``, for runs whose config has ``valid_fraction``, i.e. the networks): ``auto`` uses the dataset's
own valid split when it has one, else a seeded hold-out of the training documents (``--max-valid`` of them, else
the first such run's ``valid_fraction`` capped at its ``valid_max_docs``); ``valid`` / ``holdout`` force one;
``none`` passes no validation documents (a network then carves its own from train). When validation documents are
used, every run of the command trains on the same documents. Nothing is selected on the test documents.

Measured (per row): P@1/3/5, nDCG@3/5, PSP@1/3/5 in percent (:func:`xmtc.metrics.report`; propensities of the
training labels, A=0.55, B=1.5), ``train_s`` / ``train_cpu_s`` (wall and CPU seconds of ``fit`` in the child:
all its threads), ``predict_docs_s`` (test documents per second, top 5), ``peak_rss_mib`` (the child's own
high-water mark, ``VmHWM``: interpreter, libraries, data and model), ``child_wall_s`` / ``child_cpu_s`` (the
whole child, data loading included, from ``wait4``). Extras: ``--members`` adds rows for the first 1..N-1
members of a model trained as N (LightAttention ``n_models``); ``--tail N`` adds tail-label precision
(MAACF+ Eq. 14) of the N rarest test labels; TReaderXML runs add the teacher's own kNN row; MAACF+ runs the
recall of their shortlist. The file also holds the machine, library versions, the git commit and, per run,
the config, training histories and stage times (``runs``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import extras  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Timer,
    child_env,
    dataset_name,
    has_split,
    load_splits,
    peak_rss_own_mib,
    read_json,
    result_header,
    run_child,
    time_stages,
    with_env,
    write_json,
    write_results,
)
from benchmarks.peers import PEERS, SEEDED, TFIDF_MAX_FEATURES, TFIDF_MIN_DF  # noqa: E402
from benchmarks.schema import make_row, percent_metrics  # noqa: E402
from benchmarks.table import DEFAULT_COLUMNS, markdown  # noqa: E402

EXTRA_COLUMNS = ("tailP@1", "tailP@10", "tailP@20", "shortlist_recall")
FEATURES = "(peer features)"  # the spec name of the child that writes the peers' shared features


class _AppendModel(argparse.Action):
    """``--model NAME``: a run without overrides, in the same list as ``--run``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), [values]])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="dataset folder (train and test splits); required")
    p.add_argument("--model", dest="runs", action=_AppendModel, metavar="NAME", help="one run of NAME (repeatable)")
    p.add_argument("--run", dest="runs", nargs="+", action="append", metavar="NAME [KEY=VALUE]",
                   help="one run of NAME with its own config overrides (repeatable)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="overrides for every run whose config has KEY")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run whose config has them")
    p.add_argument("--max-train", type=int, default=None, help="seeded random sample of N training documents")
    p.add_argument("--max-test", type=int, default=None, help="seeded random sample of N test documents")
    p.add_argument("--max-valid", type=int, default=None, help="N validation documents (sample or hold-out)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="keep the first N word tokens of every document, for every run and peer (equal input)")
    p.add_argument("--valid-split", choices=("auto", "valid", "holdout", "none"), default="auto",
                   help="validation documents of the networks (default auto: the valid split, else a hold-out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples, the hold-out and every model")
    p.add_argument("--threads", type=int, default=0, help="threads of every run (0: the configs' own / all cores)")
    p.add_argument("--members", action="store_true", help="also evaluate the first 1..N-1 members of an N-model run")
    p.add_argument("--tail", type=int, default=0, metavar="N", help="tail-label precision of the N rarest test labels")
    p.add_argument("--tail-k", type=int, default=100, help="predictions ranked for the tail labels (no label_scores)")
    p.add_argument("--tfidf-max-features", type=int, default=TFIDF_MAX_FEATURES, help="peers: TF-IDF vocabulary size")
    p.add_argument("--tfidf-min-df", type=int, default=TFIDF_MIN_DF, help="peers: TF-IDF minimum document frequency")
    p.add_argument("--save", type=Path, default=None, help="save the trained model (DIR; DIR/NAME with several runs)")
    p.add_argument("--run-dir", type=Path, default=None, help="checkpoints of the training loop (for --resume)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    p.add_argument("--out", type=Path, default=None, help="result JSON (and the markdown table next to it, .md)")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one run's spec
    p.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def kind_of(name: str) -> str:
    if name in PEERS:
        return "single" if name.startswith("xmtc-") else "peer"
    return "ensemble" if name == "ensemble" else "single"


def _per_run(base: Path | None, i: int, name: str, names: list[str]) -> str | None:
    """A run's own folder under ``base`` (``base`` itself when there is one run)."""
    if base is None:
        return None
    if len(names) == 1:
        return str(base.resolve())
    return str((base / (name if names.count(name) == 1 else f"{i}-{name}")).resolve())


def plan(args: argparse.Namespace, p: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """One spec per run (what its child process does), checked before anything runs."""
    from xmtc import registry
    from xmtc.errors import XMTCError

    if args.data is None:
        p.error("--data is required")
    if args.max_tokens is not None and args.max_tokens <= 0:
        p.error(f"--max-tokens must be positive, got {args.max_tokens}")
    runs = args.runs or p.error("give at least one --model NAME or --run NAME [KEY=VALUE ...]")
    known = set(registry.available())
    configs: list[Any] = []
    for name, *own in runs:
        if name in PEERS:
            if own:
                p.error(f"peer {name} takes no overrides, got {own}")
            configs.append(None)
        elif name in known:
            configs.append(registry.get(name).Config)
        else:
            p.error(f"unknown model {name!r}; registered: {', '.join(sorted(known))}; peers: {', '.join(PEERS)}")
    for kv in args.set:
        if "=" not in kv:
            p.error(f"--set needs KEY=VALUE, got {kv!r}")
        if not any(c is not None and kv.split("=", 1)[0] in c.field_names() for c in configs):
            p.error(f"--set {kv}: no run's config has {kv.split('=', 1)[0]!r}")
    specs, names = [], [r[0] for r in runs]
    for i, ((name, *own), config) in enumerate(zip(runs, configs, strict=True)):
        overrides, cfg = [], None
        if config is not None:
            fields = config.field_names()
            auto = [("progress", "false"), ("seed", args.seed), ("threads", args.threads or None),
                    ("n_threads", args.threads or None), ("epochs", args.epochs)]
            overrides = [f"{k}={v}" for k, v in auto if k in fields and v is not None]
            overrides += [kv for kv in args.set if kv.split("=", 1)[0] in fields] + own
            try:
                cfg = config().with_overrides(overrides)
            except XMTCError as e:
                p.error(f"run {i} ({' '.join([name, *own])}): {e}")
        specs.append({"index": i, "name": name, "label": " ".join([name, *own]), "kind": kind_of(name),
                      "overrides": overrides, "uses_valid": hasattr(cfg, "valid_fraction"),
                      "valid_fraction": getattr(cfg, "valid_fraction", None),
                      "valid_max_docs": getattr(cfg, "valid_max_docs", None),
                      "save": _per_run(args.save, i, name, names), "run_dir": _per_run(args.run_dir, i, name, names)})
    mode, validating = args.valid_split, [s for s in specs if s["uses_valid"]]
    has_valid = has_split(args.data, "valid")
    if mode == "auto":
        mode = ("valid" if has_valid else "holdout") if validating else "none"
    elif mode == "valid" and not has_valid:
        p.error(f"{args.data} has no valid split; use --valid-split holdout")
    first = validating[0] if validating else {"valid_fraction": 0.05, "valid_max_docs": 2000}
    shared = {"data": str(args.data.expanduser().resolve()), "seed": args.seed, "max_train": args.max_train,
              "max_test": args.max_test, "max_valid": args.max_valid, "valid": mode, "max_tokens": args.max_tokens,
              "holdout_fraction": first["valid_fraction"], "holdout_max": first["valid_max_docs"],
              "threads": args.threads, "members": args.members, "tail": args.tail, "tail_k": args.tail_k,
              "resume": args.resume, "tfidf_max_features": args.tfidf_max_features,
              "tfidf_min_df": args.tfidf_min_df}
    return [{**s, **shared} for s in specs]


# --------------------------------------------------------------------------------------------- child side
def _finite(x: Any) -> Any:
    return x if isinstance(x, int | float) and abs(x) != float("inf") and x == x else None


def _run_model(spec: dict[str, Any], splits: Any) -> tuple[list[dict], dict]:
    from xmtc import metrics, registry

    cls = registry.get(spec["name"])
    cfg = cls.Config().with_overrides(spec["overrides"])
    stage_times = time_stages()
    model = cls(cfg)
    kwargs = {"run_dir": spec["run_dir"], "resume": spec["resume"]} if spec["run_dir"] else {}
    with Timer() as t_fit:
        model.fit(splits.train, splits.valid if spec["uses_valid"] else None, **kwargs)
    with Timer() as t_pred:
        top = model.predict(splits.test, k=5)
    if spec["save"]:
        model.save(spec["save"])
    info, test = splits.info(), splits.test
    if info["n_valid"] is not None and getattr(cfg, "valid_max_docs", None):
        info["n_valid"] = min(info["n_valid"], cfg.valid_max_docs)  # fit takes a seeded subset of a larger one
    inv_prop = metrics.inverse_propensity(splits.train.Y)
    results = getattr(model, "train_results_", {}) or {}
    common = {"n_train": info["n_train"], "n_test": info["n_test"], "seed": getattr(cfg, "seed", None),
              "n_valid": info["n_valid"], "n_labels": info["n_labels"], "data_seed": spec["seed"]}
    row = make_row(spec["label"], spec["kind"], info["dataset"], **common, **extras.evaluate(top, test, inv_prop),
                   train_s=round(t_fit.seconds, 2), train_cpu_s=round(t_fit.cpu_seconds, 2),
                   predict_docs_s=round(len(test) / max(t_pred.seconds, 1e-9), 1),
                   epochs_run={tag: r.epochs_run for tag, r in results.items()})
    details: dict[str, Any] = {"config": cfg.to_dict(), **info}
    rows = []
    if spec["members"]:
        rows += [make_row(r.pop("model"), spec["kind"], info["dataset"], **common, **r)
                 for r in extras.member_rows(model, spec["label"], test, inv_prop)]
    rows.append(row)
    if spec["tail"]:
        tail = extras.tail_precision(model, splits, spec["tail"], spec["tail_k"])
        row.update(tail["metrics"])
        details["tail_labels"] = tail["tail_labels"]
    shortlist = extras.shortlist_info(model, splits)
    if shortlist:
        row["shortlist_recall"] = shortlist.pop("shortlist_recall")
        details.update(shortlist)
    rows += [make_row(r.pop("model"), spec["kind"], info["dataset"], **common, **r)
             for r in extras.fusion_rows(model, spec["label"], test, inv_prop)]
    teacher, teacher_info = extras.teacher_rows(model, spec["label"], splits, inv_prop)
    rows += [make_row(r.pop("model"), spec["kind"], info["dataset"], **common, **r) for r in teacher]
    details.update(teacher_info)
    if getattr(model, "stats_", None):
        details["stats_valid"] = model.stats_
    details["stages"] = {tag: {"epochs_run": r.epochs_run, "epochs_resumed": r.epochs_resumed,
                               "best_epoch": r.best_epoch,
                               "best_valid": _finite(r.best_score), **stage_times.get(tag, {})}
                         for tag, r in results.items()}
    details["history"] = {tag: r.history for tag, r in results.items()}
    if spec["save"]:
        details["saved_to"] = spec["save"]
    return rows, details


def _run_peer(spec: dict[str, Any]) -> tuple[list[dict], dict]:
    from benchmarks.peers import run_peer

    threads = spec["threads"] or os.cpu_count() or 1
    res = run_peer(spec["name"], Path(spec["features_dir"]), threads=threads, seed=spec["seed"])
    facts, t_train = res["facts"], res["train"]
    row = make_row(spec["label"], spec["kind"], facts["dataset"], n_train=facts["n_train"], n_test=facts["n_test"],
                   seed=spec["seed"] if spec["name"] in SEEDED else None, **percent_metrics(res["metrics"]),
                   train_s=round(t_train.seconds, 2), train_cpu_s=round(t_train.cpu_seconds, 2),
                   predict_docs_s=round(facts["n_test"] / max(res["predict"].seconds, 1e-9), 1),
                   n_valid=facts["n_valid"], n_labels=facts["n_labels"], data_seed=spec["seed"], threads=threads,
                   features_s=facts["features_s"], rss_loaded_mib=facts["rss_loaded_mib"])
    return [row], {**facts, "threads": threads}


def _load(spec: dict[str, Any]) -> Any:
    """The run's documents. The command's validation mode holds for every run, so that all train on the same
    documents; a run that takes no validation documents gets none (a hold-out stays out of its training
    documents too)."""
    mode = "none" if spec["valid"] == "valid" and not spec["uses_valid"] else spec["valid"]
    return load_splits(spec["data"], seed=spec["seed"], max_train=spec["max_train"], max_test=spec["max_test"],
                       max_valid=spec["max_valid"], valid=mode, holdout_fraction=spec["holdout_fraction"],
                       holdout_max=spec["holdout_max"], max_tokens=spec.get("max_tokens"))


def child_main(spec_path: Path, out_path: Path) -> None:
    """Child side: one run's spec in, its rows and details out (JSON)."""
    import warnings

    warnings.simplefilter("ignore")
    spec = read_json(spec_path)
    if spec["name"] == FEATURES:  # the features every peer of the command shares
        from benchmarks.peers import prepare

        facts = prepare(_load(spec), Path(spec["features_dir"]), max_features=spec["tfidf_max_features"],
                        min_df=spec["tfidf_min_df"])
        write_json(out_path, facts)
        return
    rows, details = _run_peer(spec) if spec["name"] in PEERS else _run_model(spec, _load(spec))
    peak = round(peak_rss_own_mib())
    for r in rows:
        r["peak_rss_mib"] = peak
    write_json(out_path, {"rows": rows, "details": {**details, "peak_rss_mib": peak}})


# -------------------------------------------------------------------------------------------- parent side
def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    return [*DEFAULT_COLUMNS, *(c for c in EXTRA_COLUMNS if any(c in r for r in rows))]


def main(argv: Sequence[str] | None = None, *, command: str | None = None) -> int:
    """Run every ``--run`` in its own child process; write the results after each run (what has finished is
    kept when a later run fails or is stopped). Returns 0 when every run succeeded, else 1.

    Args:
        argv: the command line (None: ``sys.argv[1:]``).
        command: the ``command`` recorded in the result file (default: this runner's command line); the
            runner's own command is then kept as ``runner_command``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    args = p.parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.child_out)
        return 0
    specs = plan(args, p)
    own = "python -m benchmarks.run " + shlex.join(argv)
    results = {**result_header(command or own), **({"runner_command": with_env(own)} if command else {}),
               "rows": [], "runs": []}
    dataset, failed = dataset_name(args.data), 0
    with tempfile.TemporaryDirectory(prefix="xmtc-bench-features-") as features_dir:
        peers = [s for s in specs if s["name"] in PEERS]
        if peers:
            features = _features(specs[0], features_dir)
            results["peer_features"] = features
            for s in peers:
                s["features_dir"] = features_dir if features.get("returncode", 0) == 0 else None
        for spec in specs:
            failed += _one(spec, results, dataset, args.out)
    print(markdown(results["rows"], columns_of(results["rows"])))
    return 1 if failed else 0


def _features(spec: dict[str, Any], features_dir: str) -> dict[str, Any]:
    """Run the child that writes the peers' shared features; its facts, or its exit code on failure."""
    spec = {**spec, "name": FEATURES, "label": FEATURES, "uses_valid": False, "features_dir": features_dir}
    spec_path, out_path = Path(features_dir) / "spec.json", Path(features_dir) / "facts.json"
    write_json(spec_path, spec)
    print(f"[peers] features of {spec['data']}", flush=True)
    child = run_child([sys.executable, "-m", "benchmarks.run", "--child", str(spec_path), "--child-out",
                       str(out_path)], env=child_env())
    if child["returncode"] != 0 or not out_path.is_file():
        return {"returncode": child["returncode"]}
    return {**read_json(out_path), "child_wall_s": round(child["seconds"], 2)}


def _one(spec: dict[str, Any], results: dict[str, Any], dataset: str, out: Path | None) -> int:
    """Run one spec in its child process and add its rows and details to ``results`` (written to ``out``);
    1 when it failed, else 0."""
    i = spec["index"]
    print(f"[run {i}] {spec['label']}", flush=True)
    one = None
    if spec["name"] not in PEERS or spec.get("features_dir"):
        with tempfile.TemporaryDirectory(prefix="xmtc-bench-") as tmp:
            spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
            write_json(spec_path, spec)
            child = run_child([sys.executable, "-m", "benchmarks.run", "--child", str(spec_path),
                               "--child-out", str(out_path)], env=child_env())
            one = read_json(out_path) if child["returncode"] == 0 and out_path.is_file() else None
    else:  # the shared peer features could not be made
        child = {"returncode": None, "seconds": 0.0, "user_s": 0.0, "sys_s": 0.0, "error": "no peer features"}
    process = {"child_wall_s": round(child["seconds"], 2), "child_cpu_s": round(child["user_s"] + child["sys_s"], 2)}
    if one is None:
        why = child.get("error") or f"exit code {child['returncode']}"
        rows, details = [make_row(spec["label"], spec["kind"], dataset, error=why)], {}
        print(f"[run {i}] {spec['label']} FAILED ({why})", file=sys.stderr, flush=True)
    else:
        rows, details = one["rows"], one["details"]
    for r in rows:
        r.update(run=i, **process)
        if spec.get("max_tokens") is not None:
            r["max_tokens"] = spec["max_tokens"]
    results["rows"] += rows
    results["runs"].append({"run": i, "name": spec["name"], "label": spec["label"], "overrides": spec["overrides"],
                            "process": child, **details})
    table = markdown(results["rows"], columns_of(results["rows"]))
    print("\n".join(table.splitlines()[-len(rows):]), flush=True)
    write_results(out, results, table)
    return 0 if one is not None else 1


if __name__ == "__main__":
    sys.exit(main())
