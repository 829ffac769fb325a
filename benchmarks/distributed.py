"""Data-parallel training (issue 17): 1 process x 2 threads against 2 processes x 1 thread (torchrun, gloo).

A seeded random subset of a dataset is written to a temporary folder in the texts/labels layout; then
``xmtc train`` runs twice on it with the same global batch: once in one process with ``threads=2`` and
``batch_size=B``, once under ``torchrun --standalone --nproc-per-node 2`` with ``threads=1`` and
``batch_size=B/2`` per rank. Each row: training docs per second of the whole fit (``n_train * epochs_run /
train_seconds`` of run.json: vocabulary, word2vec and validation included) and of the epochs alone (the
``epoch_seconds`` of metrics.jsonl: steps + validation), test P@k (test_report.json), the child's wall and CPU
seconds (torchrun's workers included).

    nice -n 10 python -m benchmarks.distributed --data ../shared/data/eurlex57k --max-train 4000 --max-test 1000 \
        --model xmlcnn --epochs 3 --batch-size 32 --out benchmarks/results/distributed_eurlex57k.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks.common import child_env, load_splits, markdown_table, result_header, run_child, write_results
from benchmarks.schema import make_row


def write_split(folder: Path, split: str, ds) -> None:
    """``{split}.texts.txt`` and ``{split}.labels.txt`` (label names separated by spaces) of a Dataset."""
    names = ds.label_index.names
    with open(folder / f"{split}.texts.txt", "w", encoding="utf-8") as fh:
        fh.writelines(" ".join(text.split()) + "\n" for text in ds.texts)
    with open(folder / f"{split}.labels.txt", "w", encoding="utf-8") as fh:
        for r in range(ds.Y.shape[0]):
            fh.write(" ".join(names[j] for j in ds.Y.indices[ds.Y.indptr[r]:ds.Y.indptr[r + 1]]) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder (train and test splits)")
    ap.add_argument("--model", default="xmlcnn", help="registered deep model (default: %(default)s)")
    ap.add_argument("--max-train", type=int, default=4000,
                    help="seeded random sample of N training documents (default: %(default)s)")
    ap.add_argument("--max-test", type=int, default=1000,
                    help="seeded random sample of N test documents (default: %(default)s)")
    ap.add_argument("--max-valid", type=int, default=500, help="seeded hold-out of the training documents")
    ap.add_argument("--seed", type=int, default=0, help="seed of the samples and of both runs")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of both runs (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=32, help="global batch (each of 2 ranks takes half)")
    ap.add_argument("--set", nargs="*", default=[], help="more config overrides KEY=VALUE (both runs)")
    ap.add_argument("--out", default=None, help="result file (JSON in the benchmarks schema + .md table)")
    args = ap.parse_args(argv)
    if args.batch_size % 2:
        ap.error("--batch-size must be even (2 ranks take half each)")

    splits = load_splits(args.data, seed=args.seed, max_train=args.max_train, max_test=args.max_test,
                         max_valid=args.max_valid, valid="holdout")
    given = argv if argv is not None else sys.argv[1:]
    results = result_header("python -m benchmarks.distributed " + " ".join(shlex.quote(a) for a in given))
    results["rows"] = []
    with tempfile.TemporaryDirectory(prefix="xmtc-dist-bench-") as tmp:
        data = Path(tmp) / splits.train.name
        data.mkdir()
        for split, ds in (("train", splits.train), ("valid", splits.valid), ("test", splits.test)):
            write_split(data, split, ds)
        common = [f"epochs={args.epochs}", "patience=0", "progress=false", f"seed={args.seed}", *args.set]
        runs = [("1 process x 2 threads", 2, [], ["threads=2", f"batch_size={args.batch_size}"]),
                ("2 processes x 1 thread", 1, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                               "--nproc-per-node", "2"],
                 ["threads=1", f"batch_size={args.batch_size // 2}"])]
        for label, threads, launcher, sets in runs:
            run = Path(tmp) / f"run-{threads}"
            xmtc = launcher + ["-m", "xmtc"] if launcher else [sys.executable, "-m", "xmtc"]
            cmd = [*xmtc, "train", "--model", args.model, "--data", str(data), "--out", str(run), "--set",
                   *common, *sets]
            env = {**child_env(), "OMP_NUM_THREADS": str(threads)}
            child = run_child(cmd, env=env, log_path=Path(tmp) / f"log-{threads}.txt")
            if child["returncode"] != 0:
                print((Path(tmp) / f"log-{threads}.txt").read_text()[-3000:], file=sys.stderr)
                return 1
            info = json.loads((run / "run.json").read_text())
            report = json.loads((run / "test_report.json").read_text())
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
            epochs_run, epoch_s = len(records), sum(r["epoch_seconds"] for r in records)
            seconds = float(info["train_seconds"])
            results["rows"].append(make_row(
                f"{args.model} ({label})", "single", splits.train.name, n_train=len(splits.train),
                n_test=len(splits.test), seed=args.seed,
                **{k: round(100 * report[k], 2) for k in ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5") if k in report},
                train_s=round(seconds, 2), n_valid=len(splits.valid), n_labels=splits.train.n_labels,
                processes=2 if launcher else 1, threads_per_process=threads,
                global_batch=args.batch_size, epochs_run=epochs_run,
                train_docs_s=round(len(splits.train) * epochs_run / seconds, 1),
                epoch_docs_s=round(len(splits.train) * epochs_run / epoch_s, 1),
                child_wall_s=round(child["seconds"], 2), child_cpu_s=round(child["user_s"] + child["sys_s"], 2)))
    table = markdown_table(["run", "fit docs/s", "epoch docs/s", "P@1", "P@5", "train s", "child CPU s"],
                           [[r["model"], r["train_docs_s"], r["epoch_docs_s"], r["P@1"], r["P@5"], r["train_s"],
                             r["child_cpu_s"]] for r in results["rows"]])
    print(table)
    write_results(args.out, results, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
