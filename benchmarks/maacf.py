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
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]
TAIL = ["tailP@1", "tailP@10", "tailP@20"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/test texts")
    p.add_argument("--run", nargs="+", action="append", default=None, metavar="NAME [KEY=VALUE]",
                   help="one model run: a registered model name and its config overrides (repeatable); "
                        "default: --run maacf")
    p.add_argument("--max-train", type=int, default=None, help="first N training documents (default all)")
    p.add_argument("--max-test", type=int, default=None, help="first N test documents (default all)")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents")
    p.add_argument("--epochs", type=int, default=None, help="epochs for every run (default: the configs')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--set", nargs="*", default=[], help="overrides for every maacf run (key=value)")
    p.add_argument("--n-tail", type=int, default=10, help="N_tail of the tail-label precision (Eq. 14)")
    p.add_argument("--tail-k", type=int, default=100, help="top-k of non-MAACF models used for tail labels")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run index, JSON to --one-out
    p.add_argument("--one-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.run = args.run or [["maacf"]]
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
    import warnings

    import numpy as np

    from xmtc import label_metrics, metrics, registry
    from xmtc.label_metrics import label_counts

    warnings.simplefilter("ignore")
    name, *own = args.run[int(args.one)]
    cls = registry.get(name)
    overrides = [*(args.set if name == "maacf" else []), *own]
    if "seed" in cls.Config.field_names():
        overrides.append(f"seed={args.seed}")
    if "progress" in cls.Config.field_names():
        overrides += ["progress=false", f"threads={args.threads}"]
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
    rep = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
    counts = label_counts(train.Y) + label_counts(test.Y)  # occurrences "in the dataset"
    present = np.flatnonzero(label_counts(test.Y) > 0)
    tail = present[np.lexsort((present, counts[present]))][: args.n_tail]
    S = tail_scores(model, test, tail, args.tail_k)
    tail_rep = label_metrics.tail_label_precision(test.Y, S, ks=(1, 10, 20), n_tail=args.n_tail,
                                                  counts=counts)
    epochs_run = {tag: r.epochs_run for tag, r in getattr(model, "train_results_", {}).items()}
    row = {"model": " ".join([name, *own]), **{k: round(100 * rep[k], 2) for k in METRICS},
           **{k: round(100 * tail_rep[k], 2) for k in TAIL}, "train_s": round(train_s, 1),
           "predict_docs_s": round(len(test) / pred_s, 1), "epochs_run": epochs_run,
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    extra = {}
    if name == "maacf":
        from xmtc.models.label_groups import shortlist_recall

        cand = model.shortlist_candidates(test)
        extra = {"shortlist": model.shortlist_kind, "shortlist_size": int(cand.shape[1]),
                 "shortlist_recall_test": round(shortlist_recall(cand, test.Y), 4)}
        row["shortlist_recall"] = round(100 * extra["shortlist_recall_test"], 2)
    return {"rows": [row], "config": cfg.to_dict(), "n_train": len(train), "n_valid": len(valid),
            "n_test": len(test), "n_labels": train.n_labels, "tail_labels": tail.tolist(), **extra}


def markdown(rows: list[dict]) -> str:
    head = ["model", *METRICS, *TAIL, "shortlist recall", "train s", "predict docs/s", "peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        recall = r.get("shortlist_recall")
        cells = [r["model"], *(f"{r[m]:.2f}" for m in METRICS + TAIL),
                 "" if recall is None else f"{recall:.2f}", f"{r['train_s']:.0f}",
                 f"{r['predict_docs_s']:.0f}", f"{r['peak_rss_mib']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        args.one_out.write_text(json.dumps(run_one(args), indent=1))
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine_info

    results = {"command": "python benchmarks/maacf.py " + " ".join(argv), "date": time.strftime("%Y-%m-%d"),
               "machine": machine_info(), "runs": []}
    rows = []
    for i in range(len(args.run)):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "one.json"
            cmd = [sys.executable, __file__, *argv, "--one", str(i), "--one-out", str(out)]
            subprocess.run(cmd, check=True)
            one = json.loads(out.read_text())
        results["runs"].append(one)
        rows += one["rows"]
        print(markdown(one["rows"]).splitlines()[-1], flush=True)
        if args.out is not None:  # keep what has finished if a later run is stopped
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.with_suffix(".md").write_text(f"`{results['command']}` ({results['date']})\n\n{table}\n")


if __name__ == "__main__":
    main()
