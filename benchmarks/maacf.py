"""MAACF+ on a shared dataset folder: variants and ablations (paper Tables 5-8, Fig. 2-4) next to peers
(AttentionXML, XML-CNN, Parabel, ...) trained on the same documents in the same run.

Every ``--run NAME [key=value ...]`` trains one registered model in its own subprocess (so its peak RSS is
its own) on the same data: the first ``--max-train`` training documents, a validation split for early stopping
(the dataset's own ``valid`` split, first ``--max-valid`` documents, when it has one; else a seeded split of
train; never the test split) and the first ``--max-test`` test documents. ``--set`` overrides apply to every
``maacf`` run, ``--epochs`` to every run. Reported per run: P@1/3/5, nDCG@3/5, PSP@1/3/5 (propensities from
the training labels, A=0.55, B=1.5; unseen gold labels count as misses), tail-label precision (MAACF+ Eq. 14:
the ``--n-tail`` rarest labels of the dataset that occur in the test documents, K = 1, 10, 20), training
seconds, prediction docs/s and peak RSS. MAACF+ runs also report the recall of their shortlist on the test
documents (gold labels among the reranked candidates).

Tail-label scores: MAACF+ scores every test document against each tail label exactly
(:meth:`~xmtc.models.maacf.MAACF.label_scores`, what Eq. 14 describes); other models are ranked by their top
``--tail-k`` predictions (a document whose top list misses the label scores 0 for it).

Examples::

    nice -n 10 python benchmarks/maacf.py --data ../shared/data/debian-tags --epochs 5 \\
        --set dim=128 emb_dim=128 max_len=128 \\
        --run maacf --run maacf variant=mcf --run maacf aspects=[\\"cnn\\"] --run maacf group_size=0 \\
        --out benchmarks/results/maacf_debian.json
"""

from __future__ import annotations

import argparse

from common import (
    MODEL_COLUMNS,
    TIMING_COLUMNS,
    child_result,
    fit_run,
    parse_runner_args,
    rows_table,
    runner_main,
    runner_parser,
)

TAIL = ["tailP@1", "tailP@10", "tailP@20"]
COLUMNS = [*MODEL_COLUMNS, *((t, t, ".2f") for t in TAIL), ("shortlist recall", "shortlist_recall", ".2f"),
           *TIMING_COLUMNS]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = runner_parser(__doc__.split("\n\n")[0], "maacf")
    p.add_argument("--n-tail", type=int, default=10, help="N_tail of the tail-label precision (Eq. 14)")
    p.add_argument("--tail-k", type=int, default=100, help="top-k of non-MAACF models used for tail labels")
    return parse_runner_args(p, argv)


def tail_scores(model, test, labels, tail_k: int):
    """Score matrix (n, L) holding each test document's score for the tail ``labels``."""
    import numpy as np
    import scipy.sparse as sp

    n, n_labels = test.Y.shape
    if hasattr(model, "label_scores"):
        S = model.label_scores(test, labels)  # (n, len(labels)) exact scores
        rows = np.repeat(np.arange(n), len(labels))
        cols = np.tile(np.asarray(labels), n)
        return sp.csr_matrix((S.reshape(-1), (rows, cols)), shape=(n, n_labels))
    return model.predict(test, k=min(tail_k, n_labels)).to_csr()


def run_one(args: argparse.Namespace) -> dict:
    """Train and evaluate run number ``args.one`` in this process."""
    import numpy as np

    from xmtc import label_metrics
    from xmtc.label_metrics import label_counts

    run = fit_run(args)
    test = run.test
    counts = label_counts(run.train.Y) + label_counts(test.Y)  # occurrences "in the dataset"
    present = np.flatnonzero(label_counts(test.Y) > 0)
    tail = present[np.lexsort((present, counts[present]))][: args.n_tail]
    S = tail_scores(run.model, test, tail, args.tail_k)
    tail_rep = label_metrics.tail_label_precision(test.Y, S, ks=(1, 10, 20), n_tail=args.n_tail,
                                                  counts=counts)
    row = run.row(**{k: round(100 * tail_rep[k], 2) for k in TAIL})
    extra = {}
    if run.name == "maacf":
        from xmtc.models.label_groups import shortlist_recall

        cand = run.model.shortlist_candidates(test)
        extra = {"shortlist": run.model.shortlist_kind, "shortlist_size": int(cand.shape[1]),
                 "shortlist_recall_test": round(shortlist_recall(cand, test.Y), 4)}
        row["shortlist_recall"] = round(100 * extra["shortlist_recall_test"], 2)
    return child_result(run, [row], tail_labels=tail.tolist(), **extra)


def markdown(rows: list[dict]) -> str:
    return rows_table(rows, COLUMNS)


def main(argv: list[str] | None = None) -> None:
    runner_main(__file__, argv, parse_args(argv), run_one, markdown, machine=True)


if __name__ == "__main__":
    main()
