"""Label sets (issue 16): the test F1 of every decision-rule kind, each kind's parameters chosen on validation.

    python benchmarks/label_sets.py RUN [--data DIR] [--k 100] [--calibrate none,isotonic,platt] [--out FILE.json]
    python benchmarks/label_sets.py --peer omikuji-bonsai --data DIR [--threads 2] [--seed 0] [--out FILE.json]
    python benchmarks/label_sets.py --summary FILE.json [FILE.json ...]

For each tuning metric (micro-, macro-, example-F1) and each calibration it runs :func:`xmtc.decision.tune` on
the same validation documents as ``xmtc tune RUN`` (:func:`xmtc.cli_sets.validation_for`: the dataset's valid
split or the seeded hold-out of train, never test), then scores the best rule of every kind on the test split.
The row marked ``chosen`` is the rule ``xmtc tune RUN --metric M --calibrate C`` saves (kind chosen by 2-fold
cross-validation inside the validation split). Each calibration's ECE of the top-k scores is measured on test.

``--peer`` does the same for a sparse peer of :mod:`benchmarks.peers` that is not an xmtc model (omikuji,
libpecos XR-Linear, napkinXC): TF-IDF fitted on the training documents, the peer trained on them, its top-k of
the validation documents (the dataset's valid split, else the seeded 10% of train that ``xmtc train --tune``
holds out, which the peer then does not train on) and of the test documents; the same rules and metrics.

Prints a markdown table; ``--out`` also writes the rows as JSON. Nothing is saved in RUN. ``--summary`` reads
such files and prints one row per (file, calibration, tuning metric): the rule ``xmtc tune`` would save and its
test F1s and ECE (the tables of docs/BENCHMARKS.md, "Label sets").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, nargs="?", default=None, help="run or model folder of an xmtc model")
    ap.add_argument("--peer", default=None, help="a sparse peer of benchmarks/peers.py instead of RUN")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--k", type=int, default=100, help="candidates per document (as xmtc tune --k)")
    ap.add_argument("--calibrate", default="none", help="comma list of none, isotonic, platt")
    ap.add_argument("--threads", type=int, default=1, help="--peer: threads of the peer")
    ap.add_argument("--seed", type=int, default=0, help="--peer: the peer's seed and the hold-out's")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--summary", type=Path, nargs="+", default=None, help="result files to summarise")
    args = ap.parse_args(argv)
    if args.summary:
        return summary(args.summary)
    from xmtc.calibration import CALIBRATIONS

    calibrations = [c.strip() for c in args.calibrate.split(",") if c.strip()]
    bad = [c for c in calibrations if c not in CALIBRATIONS]
    if bad or not calibrations:
        ap.error(f"--calibrate: choose from {', '.join(CALIBRATIONS)}, got {args.calibrate!r}")
    if (args.run is None) == (args.peer is None):
        ap.error("give either RUN or --peer METHOD (with --data)")
    if args.peer is not None:
        if args.data is None:
            ap.error("--peer needs --data DIR")
        name, facts, valid, test, train, top_valid, top_test, predict_s = _peer_predictions(args)
        kind = "single"
    else:
        name, facts, valid, test, train, top_valid, top_test, predict_s = _model_predictions(args)
        kind = "ensemble" if name == "ensemble" else "single"
    ref, rows = tune_rows(valid, top_valid, test, top_test, train, calibrations)
    print(f"{name} on {facts['data'].name}: validation = {facts['validation']}; test {len(test)} docs; "
          f"top-{facts['depth']} candidates (P@1 {100 * ref['P@1']:.2f}, P@5 {100 * ref['P@5']:.2f}); "
          f"predict {predict_s:.1f} s")
    print_table(rows)
    if args.out is not None:
        write_schema(args.out, name, kind, facts, ref, rows, n_test=len(test), argv=argv)
    return 0


def _model_predictions(args):
    from xmtc.cli_sets import validation_for
    from xmtc.data import load
    from xmtc.registry import load as load_model
    from xmtc.runs import resolve_model_dir

    model = load_model(resolve_model_dir(args.run))
    valid, source, data = validation_for(args.run, args.data, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = load(data, splits=("train", "test"), label_index=model.label_index_)
    depth = min(args.k, len(model.label_index_))
    t0 = time.perf_counter()
    top_valid = model.predict(valid, k=depth)
    top_test = model.predict(test, k=depth)
    facts = {"data": Path(data), "validation": source, "depth": depth}
    return model.name, facts, valid, test, train, top_valid, top_test, time.perf_counter() - t0


def _peer_predictions(args):
    from benchmarks.peers import METHODS, featurizer
    from xmtc.cli_sets import HOLDOUT_FRACTION, HOLDOUT_MAX_DOCS, available_splits
    from xmtc.data import load, validation_split
    from xmtc.models.base import TopK

    if args.peer not in METHODS:
        raise SystemExit(f"unknown peer {args.peer!r}; choose from {', '.join(METHODS)}")
    data = args.data.expanduser()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        has_valid = "valid" in available_splits(data)
        splits = ("train", "valid", "test") if has_valid else ("train", "test")
        loaded = dict(zip(splits, load(data, splits=splits), strict=True))
    train, test = loaded["train"], loaded["test"]
    if has_valid:
        valid, source = loaded["valid"], f"dataset split 'valid': {len(loaded['valid'])} docs"
    else:
        train, valid = validation_split(train, HOLDOUT_FRACTION, args.seed, HOLDOUT_MAX_DOCS)
        source = (f"a seeded hold-out of train (fraction {HOLDOUT_FRACTION}, seed {args.seed}, as xmtc train "
                  f"--tune): {len(valid)} docs")
    tfidf, features = featurizer()  # the same TF-IDF as benchmarks.run gives the peers
    X = tfidf.fit_transform(train.texts)
    Xt = tfidf.transform(list(valid.texts) + list(test.texts))
    depth = min(args.k, train.Y.shape[1])
    with tempfile.TemporaryDirectory(prefix=f"{args.peer}-") as scratch:
        top, t_train, t_pred = METHODS[args.peer](X, train.Y, Xt, depth, args.threads, Path(scratch), args.seed)
    idx, scores = np.asarray(top.indices), np.asarray(top.scores)
    n_v, L = len(valid), train.Y.shape[1]
    top_valid, top_test = TopK(idx[:n_v], scores[:n_v], n_labels=L), TopK(idx[n_v:], scores[n_v:], n_labels=L)
    facts = {"data": data, "validation": source, "features": features, "depth": depth,
             "train_s": round(t_train.seconds, 1)}
    return args.peer, facts, valid, test, train, top_valid, top_test, t_pred.seconds


def tune_rows(valid, top_valid, test, top_test, train, calibrations) -> tuple[dict[str, float], list[dict]]:
    """(ranking report of the test top-k, one row per calibration x tuning metric x rule kind)."""
    from xmtc import decision, metrics, set_metrics
    from xmtc.label_metrics import label_counts

    n_unseen = len(test.unseen_labels)
    counts = label_counts(train.Y)
    ref = metrics.report(test.Y, top_test, ks=(1, 5), n_gold=test.n_gold())
    ece_raw = set_metrics.topk_calibration(test.Y, top_test)[0]
    rows = []
    for calibration in calibrations:
        for metric in decision.METRICS:
            t0 = time.perf_counter()
            result = decision.tune(valid.Y, top_valid, metric, n_gold=valid.n_gold(),
                                   n_unseen_labels=len(valid.unseen_labels), calibration=calibration)
            tune_s = time.perf_counter() - t0
            for kind, cand in result.by_kind.items():
                rule = cand.rule
                P = decision.apply_csr(rule, top_test)
                rep = set_metrics.set_report(test.Y, P, n_gold=test.n_gold(), n_unseen_labels=n_unseen)
                groups = set_metrics.f1_by_frequency(test.Y, P, counts, unseen=test.unseen, n_unseen_labels=n_unseen)
                ece = (set_metrics.topk_calibration(test.Y, rule.calibrate(top_test))[0]
                       if isinstance(rule, decision.CalibratedRule) else ece_raw)
                base = rule.base if isinstance(rule, decision.CalibratedRule) else rule
                rows.append({"tuned_for": metric, "calibration": calibration, "kind": kind,
                             "rule": base.describe(), "chosen": rule == result.rule, "valid": cand.score,
                             "valid_cv": cand.cv, "test_ECE": ece,
                             **{f"test_{m}": rep[m] for m in ("micro-F1", "macro-F1", "example-F1", "precision",
                                                              "recall", "mean_set_size")},
                             **{f"test_{g}_micro-F1": groups[g]["micro-F1"] for g in groups},
                             "tune_seconds": round(tune_s, 2)})
    return ref, rows


def print_table(rows: list[dict]) -> None:
    head = ("| tuned for | calibration | rule (parameters chosen on validation) | valid | 2-fold | test µF1 | "
            "test macro-F1 | test ex-F1 | P | R | labels/doc | µF1 frequent / few | test ECE |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        mark = " **(chosen)**" if r["chosen"] else ""
        cv = f"{100 * r['valid_cv']:.2f}" if r["valid_cv"] is not None else "-"
        few = r.get("test_few_micro-F1")
        few = f"{100 * few:.2f}" if few == few and few is not None else "-"
        print(f"| {r['tuned_for']} | {r['calibration']} | {r['kind']}: {r['rule']}{mark} | {100 * r['valid']:.2f} | "
              f"{cv} | {100 * r['test_micro-F1']:.2f} | {100 * r['test_macro-F1']:.2f} | "
              f"{100 * r['test_example-F1']:.2f} | {100 * r['test_precision']:.2f} | {100 * r['test_recall']:.2f} | "
              f"{r['test_mean_set_size']:.2f} | {100 * r['test_frequent_micro-F1']:.2f} / {few} | "
              f"{r['test_ECE']:.4f} |")


def summary(files: list[Path]) -> int:
    """The chosen rule of every (file, calibration, tuning metric), as one markdown table."""
    head = ("| model (P@1 / P@5) | calibration | tuned for | chosen rule (on validation) | test µF1 | "
            "test macro-F1 | test ex-F1 | labels/doc | test ECE |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for f in files:
        d = json.loads(Path(f).read_text())
        for r in d["rows"]:
            if not r["chosen"]:
                continue
            name = f"{d['model_name']} `{Path(f).stem}` ({r['P@1']:.2f} / {r['P@5']:.2f})"
            print(f"| {name} | {r['calibration']} | {r['tuned_for']} | {r['rule_kind']}: {r['rule']} | "
                  f"{100 * r['test_micro-F1']:.2f} | {100 * r['test_macro-F1']:.2f} | "
                  f"{100 * r['test_example-F1']:.2f} | {r['test_mean_set_size']:.2f} | {r['test_ECE']:.4f} |")
    return 0


def write_schema(out: Path, name: str, kind: str, facts: dict[str, Any], ref, rows, *, n_test: int,
                 argv: list[str] | None) -> None:
    """The rows in the one result schema (:mod:`benchmarks.schema`): ranking metrics of the model (percent) on
    every row, the set metrics of each rule as extra keys (fractions, as :mod:`xmtc.set_metrics` returns)."""
    from benchmarks.common import machine_info, with_env
    from benchmarks.schema import make_row

    out_rows = [make_row(f"{name}: {r['tuned_for']} -> {r['kind']}: {r['rule']}"
                         + (f" [{r['calibration']}]" if r["calibration"] != "none" else ""), kind, facts["data"].name,
                         n_test=n_test, **{"P@1": round(100 * ref["P@1"], 2), "P@5": round(100 * ref["P@5"], 2)},
                         rule_kind=r["kind"], train_s=facts.get("train_s"),
                         **{k: v for k, v in r.items() if k != "kind"})
                for r in rows]
    command = with_env("python benchmarks/label_sets.py " + " ".join(argv or sys.argv[1:]))
    out.write_text(json.dumps({"command": command,
                               "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "rows": out_rows,
                               "model_name": name, "data": str(facts["data"]), "validation": facts["validation"],
                               "depth": facts["depth"]}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
