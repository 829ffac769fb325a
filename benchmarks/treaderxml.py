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
import sys
import time

from common import (
    MODEL_COLUMNS,
    TIMING_COLUMNS,
    child_result,
    fit_run,
    load_splits,
    metric_row,
    parse_runner_args,
    rows_table,
    run_header,
    runner_main,
    runner_parser,
    write_results,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = runner_parser(__doc__.split("\n\n")[0], "treaderxml")
    p.add_argument("--shortlist-grid", default=None, metavar="SxC,...",
                   help="instead of training: recall on test of the teacher shortlist with S teacher labels "
                        "and C label-tree clusters for each SxC (e.g. 100x16,50x8,100x0)")
    return parse_runner_args(p, argv)


def run_one(args: argparse.Namespace) -> dict:
    """Train and evaluate run number ``args.one`` in this process."""
    import numpy as np

    from xmtc.models.base import TopK

    run = fit_run(args)
    model, test, cfg = run.model, run.test, run.config
    rows = [run.row()]
    extra = {}
    if run.name == "treaderxml":
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
            rows.append(metric_row(f"{run.label} teacher-kNN (k={model.teacher_.n_neighbours})", test, knn_top,
                                   run.inv_prop, train_s=None, predict_docs_s=round(len(test) / knn_s, 1),
                                   epochs_run={}))
            labels = np.where(out.items < test.n_labels, out.items, -1)
            extra["teacher_label_recall_test"] = round(shortlist_recall(labels, test.Y), 4)
            if model.use_shortlist_:
                cand = shortlist(out.label_scores, model.clusters_, cfg.shortlist_labels,
                                 cfg.shortlist_clusters)
                extra["shortlist_recall_test"] = round(shortlist_recall(cand, test.Y), 4)
                extra["shortlist_size_test"] = round(float((cand >= 0).sum(1).mean()), 1)
    return child_result(run, rows, **extra)


def shortlist_grid(args: argparse.Namespace) -> dict:
    """Shortlist recall without training a network: the teacher needs only the word vectors, the label tree
    and the neighbour search (``TReaderXML._prepare_teacher``)."""
    import numpy as np

    from xmtc.models.teacher import shortlist, shortlist_recall
    from xmtc.models.treaderxml import TReaderXML

    cfg = TReaderXML.Config().with_overrides([*args.set, "shortlist=true", f"seed={args.seed}",
                                              f"threads={args.threads}", "progress=false"])
    train, _, test = load_splits(args)
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
    return rows_table(rows, [*MODEL_COLUMNS, *TIMING_COLUMNS])


def progress(one: dict) -> str:
    """A finished run's rows and its notes (validation stats, teacher and shortlist recall)."""
    notes = {k: v for k, v in one.items() if k.startswith(("stats", "teacher", "short"))}
    return f"{markdown(one['rows'])} {notes}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.shortlist_grid and args.one is None:
        result = {**run_header(__file__, list(sys.argv[1:] if argv is None else argv)), **shortlist_grid(args)}
        print(json.dumps(result, indent=1))
        write_results(args.out, result)
        return
    runner_main(__file__, argv, args, run_one, markdown, progress=progress)


if __name__ == "__main__":
    main()
