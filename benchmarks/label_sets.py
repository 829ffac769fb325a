"""Label sets (issue 16): the test F1 of every decision-rule kind, each kind's parameters chosen on validation.

    python benchmarks/label_sets.py RUN [--data DIR] [--k 100] [--out FILE.json]

For each tuning metric (micro-, macro-, example-F1) it runs :func:`xmtc.decision.tune` on the same validation
documents as ``xmtc tune RUN`` (:func:`xmtc.cli_sets.validation_for`: the dataset's valid split or the seeded
hold-out of train, never test), then scores the best rule of every kind on the test split. The row marked
``chosen`` is the rule ``xmtc tune RUN --metric M`` saves (kind chosen by 2-fold cross-validation inside the
validation split). Prints a markdown table; ``--out`` also writes the rows as JSON. Nothing is saved in RUN.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--k", type=int, default=100, help="candidates per document (as xmtc tune --k)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from xmtc import decision, metrics, set_metrics
    from xmtc.cli_sets import validation_for
    from xmtc.data import load
    from xmtc.label_metrics import label_counts
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
    predict_s = time.perf_counter() - t0
    n_unseen = len(test.unseen_labels)
    counts = label_counts(train.Y)
    rows = []
    ref = metrics.report(test.Y, top_test, ks=(1, 5), n_gold=test.n_gold())
    for metric in decision.METRICS:
        t0 = time.perf_counter()
        result = decision.tune(valid.Y, top_valid, metric, n_gold=valid.n_gold(),
                               n_unseen_labels=len(valid.unseen_labels))
        tune_s = time.perf_counter() - t0
        for kind, cand in result.by_kind.items():
            P = decision.apply_csr(cand.rule, top_test)
            rep = set_metrics.set_report(test.Y, P, n_gold=test.n_gold(), n_unseen_labels=n_unseen)
            groups = set_metrics.f1_by_frequency(test.Y, P, counts, unseen=test.unseen, n_unseen_labels=n_unseen)
            rows.append({"tuned_for": metric, "kind": kind, "rule": cand.rule.describe(),
                         "chosen": cand.rule == result.rule, "valid": cand.score, "valid_cv": cand.cv,
                         **{f"test_{m}": rep[m] for m in ("micro-F1", "macro-F1", "example-F1", "precision",
                                                          "recall", "mean_set_size")},
                         **{f"test_{g}_micro-F1": groups[g]["micro-F1"] for g in groups},
                         "tune_seconds": round(tune_s, 2)})
    head = ("| tuned for | rule (parameters chosen on validation) | valid | 2-fold | test µF1 | test macro-F1 | "
            "test ex-F1 | P | R | labels/doc | µF1 frequent / few |")
    print(f"{model.name} on {data.name}: validation = {source}; test {len(test)} docs; top-{depth} candidates "
          f"(P@1 {100 * ref['P@1']:.2f}, P@5 {100 * ref['P@5']:.2f}); predict {predict_s:.1f} s")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        mark = " **(chosen)**" if r["chosen"] else ""
        cv = f"{100 * r['valid_cv']:.2f}" if r["valid_cv"] is not None else "-"
        few = r.get("test_few_micro-F1")
        few = f"{100 * few:.2f}" if few == few and few is not None else "-"
        print(f"| {r['tuned_for']} | {r['kind']}: {r['rule']}{mark} | {100 * r['valid']:.2f} | {cv} | "
              f"{100 * r['test_micro-F1']:.2f} | {100 * r['test_macro-F1']:.2f} | {100 * r['test_example-F1']:.2f} | "
              f"{100 * r['test_precision']:.2f} | {100 * r['test_recall']:.2f} | {r['test_mean_set_size']:.2f} | "
              f"{100 * r['test_frequent_micro-F1']:.2f} / {few} |")
    if args.out is not None:
        write_schema(args.out, model, data, source, depth, ref, rows, n_test=len(test), argv=argv)
    return 0


def write_schema(out: Path, model, data: Path, source: str, depth: int, ref, rows, *, n_test: int,
                 argv: list[str] | None) -> None:
    """The rows in the one result schema (:mod:`benchmarks.schema`): ranking metrics of the model (percent) on
    every row, the set metrics of each rule as extra keys (fractions, as :mod:`xmtc.set_metrics` returns)."""
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import machine_info
    from benchmarks.schema import make_row

    kind = "ensemble" if model.name == "ensemble" else "single"
    out_rows = [make_row(f"{model.name}: {r['tuned_for']} -> {r['kind']}: {r['rule']}", kind, Path(data).name,
                         n_test=n_test, **{"P@1": round(100 * ref["P@1"], 2), "P@5": round(100 * ref["P@5"], 2)},
                         rule_kind=r["kind"], **{k: v for k, v in r.items() if k != "kind"})
                for r in rows]
    out.write_text(json.dumps({"command": "python benchmarks/label_sets.py " + " ".join(argv or sys.argv[1:]),
                               "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "rows": out_rows,
                               "model_name": model.name, "data": str(data), "validation": source,
                               "depth": depth}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
