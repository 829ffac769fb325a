"""TReaderXML configurations (Table 3 ablations), its teacher's own kNN and peers trained on the same documents:
the old command line of this script, run by :mod:`benchmarks.run` (see :mod:`benchmarks.legacy`); and the
teacher shortlist recall grid (``--shortlist-grid``), which trains no network.

Every ``--run NAME [key=value ...]`` trains one model in its own subprocess on the same documents; ``--set``
applies to the ``treaderxml`` runs, ``--epochs`` to every run. Each TReaderXML run also reports its teacher on
its own (row ``... teacher-kNN``: the label votes of the nearest training texts, no network) and the recall
of the teacher's label subset on the test documents.

Examples::

    nice -n 10 python benchmarks/treaderxml.py --data ../shared/data/goemotions --epochs 3 \\
        --set emb_dim=100 bottleneck=128 max_len=64 lr=1e-3 --run treaderxml --run treaderxml ablation=0

    nice -n 10 python benchmarks/treaderxml.py --data ../shared/data/eurlex57k --max-test 6000 --threads 1 \\
        --set emb_dim=64 max_len=128 w2v_epochs=3 --shortlist-grid 100x16,100x0,50x8 --out /tmp/shortlist.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import legacy, run  # noqa: E402
from benchmarks.common import import_first, load_splits, result_header, write_results  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402
from benchmarks.table import markdown  # noqa: E402

TEACHER = ["xmtc.models.treaderxml.teacher", "xmtc.models.teacher"]


def shortlist_grid(args: Any, command: str) -> dict[str, Any]:
    """Recall of the teacher shortlist with S teacher labels and C label-tree clusters for each ``SxC``, without
    training a network: the teacher needs only the word vectors, the label tree and the neighbour search (the
    private ``TReaderXML._prepare_teacher`` steps). Validation documents are not used."""
    import numpy as np

    from xmtc import registry

    shortlist = import_first(TEACHER, "shortlist")
    recall_of = import_first(TEACHER, "shortlist_recall")
    cls = registry.get("treaderxml")
    cfg = cls.Config().with_overrides(["shortlist=true", f"seed={args.seed}", f"threads={args.threads}",
                                       "progress=false", *args.set])
    splits = load_splits(args.data, seed=args.seed, max_train=args.max_train, max_test=args.max_test)
    train, test = splits.train, splits.test
    model = cls(cfg)
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
        rows.append(make_row(f"treaderxml teacher shortlist ({n_labels} teacher labels, {n_clusters} clusters)",
                             "single", train.name, n_train=len(train), n_test=len(test), seed=args.seed,
                             **{"teacher labels": n_labels, "clusters": n_clusters,
                                "recall": round(100 * recall_of(cand, test.Y), 2),
                                "mean candidates": round(float((cand >= 0).sum(1).mean()), 1)}))
    own = model.teacher_.query(training=True)  # training documents: neighbours never include themselves
    train_recall = recall_of(np.where(own.items < train.n_labels, own.items, -1), train.Y)
    return {**result_header(command), "rows": rows, "n_train": len(train), "n_test": len(test),
            "n_labels": train.n_labels, "teacher_label_recall_train": round(100 * train_recall, 2),
            "cluster_size": cfg.cluster_size, "n_clusters": int(model.clusters_.max()) + 1,
            "n_neighbours": cfg.n_neighbours, "build_s": round(build_s, 1),
            "query_docs_s": round(len(test) / query_s, 1),
            "teacher_label_recall": round(100 * recall_of(np.where(out.items < train.n_labels, out.items, -1),
                                                          test.Y), 2)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = legacy.parser(__doc__.split("\n\n")[0], "treaderxml")
    p.add_argument("--shortlist-grid", default=None, metavar="SxC,...",
                   help="instead of training: recall on test of the teacher shortlist with S teacher labels "
                        "and C label-tree clusters for each SxC (e.g. 100x16,50x8,100x0)")
    args = p.parse_args(argv)
    command = legacy.command("treaderxml.py", argv)
    if args.shortlist_grid:
        import warnings

        warnings.simplefilter("ignore")
        result = shortlist_grid(args, command)
        columns = ["model", "n_train", "n_test", "recall", "mean candidates"]
        table = markdown(result["rows"], columns)
        print(table)
        write_results(args.out, result, table)
        return 0
    return run.main(legacy.runner_argv(args), command=command)


if __name__ == "__main__":
    sys.exit(main())
