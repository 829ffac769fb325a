"""TReaderXML on a shared dataset folder: configurations (Table 3 ablations), its teacher's own kNN, and peers
(AttentionXML, XML-CNN, ...) trained on the same documents in the same run.

Every ``--run NAME [key=value ...]`` trains one model in its own subprocess (so its peak RSS is its own) on
the same data: the first ``--max-train`` training documents, a validation split for early stopping (the
dataset's own ``valid`` split, first ``--max-valid`` documents, when it has one; else a seeded split of
train; never the test split) and the first ``--max-test`` test documents. ``--set`` overrides apply to every
``treaderxml`` run, ``--epochs`` to every run. Reported per run: P@1/3/5, nDCG@3/5, PSP@1/3/5 (propensities
from the training labels, A=0.55, B=1.5; unseen gold labels count as misses), training seconds, prediction
docs/s and peak RSS.
Each TReaderXML run also reports the teacher's recall (gold labels among its label subset) and the plain kNN
classifier made of the teacher's label scores (row ``... teacher-kNN``: no network at all).

Examples::

    nice -n 10 python benchmarks/treaderxml.py --data ../shared/data/goemotions --epochs 3 \\
        --set emb_dim=100 bottleneck=128 max_len=64 lr=1e-3 --run treaderxml --run treaderxml ablation=0

    nice -n 10 python benchmarks/treaderxml.py --data ../shared/data/eurlex57k --max-train 15000 \\
        --max-test 2000 --epochs 4 --set emb_dim=100 bottleneck=128 max_len=256 lr=1e-3 \\
        --run treaderxml --run treaderxml ablation=0 --run treaderxml ablation=1 \\
        --run attentionxml preset=fast max_len=256 --out benchmarks/results/treaderxml_eurlex.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/test texts")
    p.add_argument("--run", nargs="+", action="append", default=None, metavar="NAME [KEY=VALUE]",
                   help="one model run: a registered model name and its config overrides (repeatable); "
                        "default: --run treaderxml")
    p.add_argument("--max-train", type=int, default=None, help="first N training documents (default all)")
    p.add_argument("--max-test", type=int, default=None, help="first N test documents (default all)")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents")
    p.add_argument("--epochs", type=int, default=None, help="epochs for every run (default: the configs')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--set", nargs="*", default=[], help="overrides for every treaderxml run (key=value)")
    p.add_argument("--shortlist-grid", default=None, metavar="SxC,...",
                   help="instead of training: recall on test of the teacher shortlist with S teacher labels "
                        "and C label-tree clusters for each SxC (e.g. 100x16,50x8,100x0)")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run index, JSON to --one-out
    p.add_argument("--one-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.run = args.run or [["treaderxml"]]
    return args


def load_data(args: argparse.Namespace):
    """(train, valid, test) with one label index (built from the first ``max_train`` training documents)."""
    from xmtc.data import find_datasets, load
    from xmtc.data.split import validation_split

    (train,) = load(args.data, ("train",), max_docs=args.max_train)
    found = find_datasets(args.data, max_depth=0)
    if found and "valid" in (found[0].get("splits") or []):
        (valid,) = load(args.data, ("valid",), label_index=train.label_index, max_docs=args.max_valid)
    else:
        fraction = min(0.5, max(args.max_valid / len(train), 1 / len(train)))
        train, valid = validation_split(train, fraction, args.seed, args.max_valid)
    (test,) = load(args.data, ("test",), label_index=train.label_index, max_docs=args.max_test)
    return train, valid, test


def _row(label: str, test, top, inv_prop, **extra) -> dict:
    from xmtc import metrics

    rep = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
    return {"model": label, **{k: round(100 * rep[k], 2) for k in METRICS}, **extra}


def run_one(args: argparse.Namespace) -> dict:
    """Train and evaluate run number ``args.one`` in this process."""
    import warnings

    import numpy as np

    from xmtc import metrics, registry
    from xmtc.models.base import TopK

    warnings.simplefilter("ignore")
    name, *own = args.run[int(args.one)]
    cls = registry.get(name)
    overrides = [*(args.set if name == "treaderxml" else []), *own, f"seed={args.seed}", "progress=false",
                 f"threads={args.threads}"]
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    cfg = cls.Config().with_overrides(overrides)
    train, valid, test = load_data(args)
    t0 = time.perf_counter()
    model = cls(cfg).fit(train, valid)
    train_s = time.perf_counter() - t0
    inv_prop = metrics.inverse_propensity(train.Y)
    t0 = time.perf_counter()
    top = model.predict(test, k=5)
    pred_s = time.perf_counter() - t0
    label = " ".join([name, *own])
    epochs_run = {tag: r.epochs_run for tag, r in getattr(model, "train_results_", {}).items()}
    rows = [_row(label, test, top, inv_prop, train_s=round(train_s, 1),
                 predict_docs_s=round(len(test) / pred_s, 1), epochs_run=epochs_run)]
    extra = {}
    if name == "treaderxml":
        extra["stats_valid"] = model.stats_
        if model.teacher_ is not None:
            from xmtc.models.teacher import shortlist, shortlist_recall

            enc = model.encode(test.texts)
            t0 = time.perf_counter()
            out = model.teacher_.query(enc.ids)
            knn_s = time.perf_counter() - t0
            dense = np.asarray(out.label_scores.todense(), dtype=np.float32)
            dense[dense == 0] = -np.inf
            knn_top = TopK.from_scores(dense, 5)
            knn_top.indices[~np.isfinite(knn_top.scores)] = -1
            rows.append(_row(f"{label} teacher-kNN (k={model.teacher_.n_neighbours})", test, knn_top,
                             inv_prop, train_s=None, predict_docs_s=round(len(test) / knn_s, 1),
                             epochs_run={}))
            labels = np.where(out.items < test.n_labels, out.items, -1)
            extra["teacher_label_recall_test"] = round(shortlist_recall(labels, test.Y), 4)
            if model.use_shortlist_:
                cand = shortlist(out.label_scores, model.clusters_, cfg.shortlist_labels,
                                 cfg.shortlist_clusters)
                extra["shortlist_recall_test"] = round(shortlist_recall(cand, test.Y), 4)
                extra["shortlist_size_test"] = round(float((cand >= 0).sum(1).mean()), 1)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in rows:
        r["peak_rss_mib"] = round(peak_mib)
    return {"rows": rows, "config": cfg.to_dict(), "n_train": len(train), "n_valid": len(valid),
            "n_test": len(test), "n_labels": train.n_labels, **extra}


def shortlist_grid(args: argparse.Namespace) -> dict:
    """Shortlist recall without training a network: the teacher needs only the word vectors, the label tree
    and the neighbour search (``TReaderXML._prepare_teacher``)."""
    import numpy as np

    from xmtc.models.teacher import shortlist, shortlist_recall
    from xmtc.models.treaderxml import TReaderXML

    cfg = TReaderXML.Config().with_overrides([*args.set, "shortlist=true", f"seed={args.seed}",
                                              f"threads={args.threads}", "progress=false"])
    train, _, test = load_data(args)
    model = TReaderXML(cfg)
    model._setup_runtime()
    model.label_index_, model._source = train.label_index, (train.hierarchy, train.label_descriptions)
    t0 = time.perf_counter()
    tokens = model._tokenize(train.texts)
    vectors = model._build_vocab(tokens)
    enc = model._encode_tokens(tokens, train.Y)
    enc.texts = train.texts
    model._prepare_teacher(enc, vectors)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.teacher_.query(model.encode(test.texts).ids)
    query_s = time.perf_counter() - t0
    rows = []
    for spec in args.shortlist_grid.split(","):
        n_labels, n_clusters = (int(v) for v in spec.lower().split("x"))
        cand = shortlist(out.label_scores, model.clusters_, n_labels, n_clusters)
        rows.append({"teacher labels": n_labels, "clusters": n_clusters,
                     "recall": round(100 * shortlist_recall(cand, test.Y), 2),
                     "mean candidates": round(float((cand >= 0).sum(1).mean()), 1)})
    own = model.teacher_.query(training=True)  # training documents: neighbours never include themselves
    train_recall = shortlist_recall(np.where(own.items < train.n_labels, own.items, -1), train.Y)
    return {"rows": rows, "n_train": len(train), "n_test": len(test), "n_labels": train.n_labels,
            "teacher_label_recall_train": round(100 * train_recall, 2),
            "cluster_size": cfg.cluster_size, "n_clusters": int(model.clusters_.max()) + 1,
            "n_neighbours": cfg.n_neighbours, "build_s": round(build_s, 1),
            "query_docs_s": round(len(test) / query_s, 1),
            "teacher_label_recall": round(100 * shortlist_recall(
                np.where(out.items < train.n_labels, out.items, -1), test.Y), 2)}


def markdown(rows: list[dict]) -> str:
    head = ["model", *METRICS, "train s", "predict docs/s", "peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        train_s = "" if r["train_s"] is None else f"{r['train_s']:.0f}"
        cells = [r["model"], *(f"{r[m]:.2f}" for m in METRICS), train_s, f"{r['predict_docs_s']:.0f}",
                 f"{r['peak_rss_mib']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        args.one_out.write_text(json.dumps(run_one(args), indent=1))
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.shortlist_grid:
        result = {"command": "python benchmarks/treaderxml.py " + " ".join(argv),
                  "date": time.strftime("%Y-%m-%d"), **shortlist_grid(args)}
        print(json.dumps(result, indent=1))
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
        return
    results = {"command": "python benchmarks/treaderxml.py " + " ".join(argv),
               "date": time.strftime("%Y-%m-%d"), "runs": []}
    rows = []
    for i in range(len(args.run)):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "one.json"
            subprocess.run([sys.executable, __file__, *argv, "--one", str(i), "--one-out", str(out)],
                           check=True)
            one = json.loads(out.read_text())
        results["runs"].append(one)
        rows += one["rows"]
        notes = {k: v for k, v in one.items() if k.startswith(("stats", "teacher", "short"))}
        print(markdown(one["rows"]), notes, flush=True)
        if args.out is not None:  # keep what has finished if a later run is stopped
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.with_suffix(".md").write_text(f"`{results['command']}` ({results['date']})\n\n{table}\n")


if __name__ == "__main__":
    main()
