"""AttentionXML (and the XML-CNN / XML-RNN baselines) on a shared dataset folder: quality, time, memory.

Trains one model on the first ``--max-train`` training documents (validation: the folder's valid split when
it has one, else a seeded split of train; never the test split; capped at ``valid_max_docs``), predicts the
first ``--max-test`` test documents and reports P@1/3/5, nDCG@3/5, PSP@1/3/5 (propensities from the training
labels, A=0.55, B=1.5), training wall and CPU seconds, seconds per epoch of each training stage, prediction
docs/s and peak RSS, as JSON and a markdown table.

Examples::

    # profile: one epoch per level on a 4000-document subset of EURLEX57K
    nice -n 10 python benchmarks/attentionxml.py --data ../shared/data/eurlex57k --preset fast \\
        --max-train 4000 --max-test 1000 --set level_epochs=[1] --out benchmarks/results/ax_profile.json

    # the 2-core CPU run of the fast preset on the whole of EURLEX57K
    nice -n 10 python benchmarks/attentionxml.py --data ../shared/data/eurlex57k --preset fast \\
        --out benchmarks/results/ax_fast_eurlex57k.json
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads burn the cores that the
# other thread is waiting for, and one training step can cost several times its CPU time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, markdown_table, write_result  # noqa: E402

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/test texts")
    p.add_argument("--model", default="attentionxml", help="attentionxml, xmlcnn or xmlrnn")
    p.add_argument("--preset", default=None, help="attentionxml preset (medium, large, fast)")
    p.add_argument("--max-train", type=int, default=None, help="first N training documents (default all)")
    p.add_argument("--max-test", type=int, default=None, help="first N test documents (default all)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--run-dir", type=Path, default=None, help="checkpoints and metrics.jsonl (for --resume)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    p.add_argument("--save", type=Path, default=None, help="save the trained model folder here")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    return p.parse_args(argv)


def time_stages() -> dict[str, dict[str, float]]:
    """Record wall and CPU (process) seconds of every ``train_loop`` call by tag. CPU seconds show the cost of
    a stage even when other jobs share the cores (then wall seconds overstate it)."""
    import xmtc.models.attentionxml as ax
    import xmtc.models.deep as deep

    times: dict[str, dict[str, float]] = {}

    def wrap(loop):
        def timed(module, **kw):
            wall, cpu = time.perf_counter(), time.process_time()
            result = loop(module, **kw)
            times[kw.get("tag", "model")] = {"stage_wall_s": round(time.perf_counter() - wall, 1),
                                             "stage_cpu_s": round(time.process_time() - cpu, 1)}
            return result
        return timed

    ax.train_loop, deep.train_loop = wrap(ax.train_loop), wrap(deep.train_loop)
    return times


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from xmtc import metrics, registry
    from xmtc.data import load

    warnings.simplefilter("ignore")
    cls = registry.get(args.model)
    overrides = ([f"preset={args.preset}"] if args.preset else []) + list(args.set)
    cfg = cls.Config().with_overrides(overrides)
    has_valid = any((args.data / f"valid.texts{s}").exists() for s in (".txt", ".txt.gz"))
    (train,) = load(args.data, ("train",), max_docs=args.max_train)
    valid = load(args.data, ("valid",), label_index=train.label_index)[0] if has_valid else None
    (test,) = load(args.data, ("test",), label_index=train.label_index, max_docs=args.max_test)

    stage_times = time_stages()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = cls(cfg).fit(train, valid, run_dir=args.run_dir, resume=args.resume)
    train_s, train_cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    t0 = time.perf_counter()
    top = model.predict(test, k=5)
    pred_s = time.perf_counter() - t0
    if args.save:
        model.save(args.save)
    rep = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=metrics.inverse_propensity(train.Y),
                         n_gold=test.n_gold())
    stages = {tag: {"epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                    "best_valid": round(r.best_score, 4),
                    "epoch_seconds": [h["epoch_seconds"] for h in r.history], **stage_times.get(tag, {})}
              for tag, r in model.train_results_.items()}
    row = {"model": args.model + (f" ({cfg.preset})" if hasattr(cfg, "preset") else ""),
           **{k: round(100 * rep[k], 2) for k in METRICS}, "train_s": round(train_s, 1),
           "train_cpu_s": round(train_cpu_s, 1), "predict_docs_s": round(len(test) / pred_s, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    n_valid = min(len(valid), cfg.valid_max_docs) if valid is not None else None  # fit caps a valid split
    result = {"row": row, "stages": stages, "config": cfg.to_dict(), "n_train": len(train),
              "n_valid": n_valid, "n_test": len(test),
              "n_labels": train.n_labels, "data": str(args.data), "argv": sys.argv[1:],
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    table = markdown_table(list(row), [list(row.values())])
    print(json.dumps(stages, indent=1))
    print(table)
    write_result(args.out, result, table)
    return result


if __name__ == "__main__":
    main()
