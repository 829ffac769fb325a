"""LightAttention vs AttentionXML on a shared dataset folder under the same budget (same encoder and epochs).

Each model runs in its own subprocess (so its peak RSS is its own) on the same data: the first
``--max-train`` training documents, a seeded validation split of ``--max-valid`` of them (early stopping;
never the test split), and the first ``--max-test`` test documents. Reported per model: P@1/3/5, nDCG@3/5,
PSP@1/3/5 (propensities from the training labels, A=0.55, B=1.5), training seconds, prediction docs/s and
peak RSS, as JSON and a markdown table. ``--trees N`` trains LightAttention with N models once and also
evaluates its first 1..N models (the paper's Table III).

Examples::

    nice -n 10 python benchmarks/lightattention.py --data ../shared/data/debian-tags --epochs 5 \\
        --set emb_dim=100 hidden=96 fc=[128] max_len=128 --out benchmarks/results/la_debian.json

    nice -n 10 python benchmarks/lightattention.py --data ../shared/data/eurlex57k --max-train 8000 \\
        --max-test 2000 --epochs 3 --set max_len=256 --ax-set tree=true tree_top=512 cluster_size=16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import machine_info, markdown_table, peak_rss_own_mib, run_child

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]
PREFIX = {"lightattention": "la", "attentionxml": "ax"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/test texts")
    p.add_argument("--models", default="lightattention,attentionxml", help="comma-separated model names")
    p.add_argument("--max-train", type=int, default=None, help="first N training documents (default all)")
    p.add_argument("--max-test", type=int, default=None, help="first N test documents (default all)")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents held out of train")
    p.add_argument("--epochs", type=int, default=5, help="epochs per network (both models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every model (key=value)")
    p.add_argument("--la-set", nargs="*", default=[], help="overrides for lightattention only")
    p.add_argument("--ax-set", nargs="*", default=[], help="overrides for attentionxml only")
    p.add_argument("--trees", type=int, default=1, help="LightAttention n_models; evaluates the first 1..N")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    p.add_argument("--save", type=Path, default=None, help="save each trained model to SAVE/<model name>")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one model, write JSON
    p.add_argument("--one-out", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load_data(args: argparse.Namespace):
    """(train, valid, test): valid is a seeded split of the first ``max_train`` training documents."""
    from xmtc.data import load
    from xmtc.data.split import validation_split

    (full,) = load(args.data, ("train",), max_docs=args.max_train)
    fraction = min(0.5, max(args.max_valid / len(full), 1 / len(full)))
    train, valid = validation_split(full, fraction, args.seed, args.max_valid)
    (test,) = load(args.data, ("test",), label_index=full.label_index, max_docs=args.max_test)
    return train, valid, test


def run_one(args: argparse.Namespace) -> dict:
    """Train and evaluate ``args.one`` in this process."""
    import warnings

    from xmtc import metrics, registry

    warnings.simplefilter("ignore")
    name = args.one
    cls = registry.get(name)
    overrides = [*args.set, *getattr(args, f"{PREFIX.get(name, name)}_set", []), f"epochs={args.epochs}",
                 f"seed={args.seed}", "progress=false"]
    if name == "lightattention":
        overrides.append(f"n_models={args.trees}")
    cfg = cls.Config().with_overrides(overrides)
    train, valid, test = load_data(args)
    t0, c0 = time.perf_counter(), time.process_time()
    model = cls(cfg).fit(train, valid)
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    if args.save is not None:
        model.save(args.save / name)
    inv_prop = metrics.inverse_propensity(train.Y)
    variants = {name: model}
    if name == "lightattention" and args.trees > 1:
        variants = {f"{name} trees={n}": model.members(n) for n in range(1, args.trees + 1)}
    rows = []
    for label, m in variants.items():
        t0 = time.perf_counter()
        top = m.predict(test, k=5)
        pred_s = time.perf_counter() - t0
        rep = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
        rows.append({"model": label, **{k: round(100 * rep[k], 2) for k in METRICS},
                     "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu_s, 1),
                     "predict_docs_s": round(len(test) / pred_s, 1)})
    peak_mib = peak_rss_own_mib()
    epochs_run = {tag: r.epochs_run for tag, r in model.train_results_.items()}
    keys = ("epoch", "train_loss", f"valid_{cfg.select_metric}", "epoch_seconds")
    history = {tag: [{k: h.get(k) for k in keys} for h in res.history]
               for tag, res in model.train_results_.items()}
    for r in rows:
        r["peak_rss_mib"] = round(peak_mib)
        r["epochs_run"] = epochs_run
    return {"rows": rows, "history": history, "config": cfg.to_dict(), "n_train": len(train),
            "n_valid": len(valid), "n_test": len(test), "n_labels": train.n_labels}


def markdown(rows: list[dict]) -> str:
    head = ["model", *METRICS, "train s (wall)", "train CPU s", "predict docs/s", "peak RSS MiB"]
    cells = [[r["model"], *(f"{r[m]:.2f}" for m in METRICS), f"{r['train_s']:.0f}",
              f"{r.get('train_cpu_s', float('nan')):.0f}", f"{r['predict_docs_s']:.0f}", r["peak_rss_mib"]]
             for r in rows]
    return markdown_table(head, cells)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        result = run_one(args)
        args.one_out.write_text(json.dumps(result, indent=1))
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    results = {"command": "python benchmarks/lightattention.py " + " ".join(argv),
               "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "models": {}}
    rows = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "one.json"
            child = run_child([sys.executable, __file__, *argv, "--one", name, "--one-out", str(out)])
            if child["returncode"] != 0:
                raise SystemExit(f"{name} failed (exit code {child['returncode']})")
            one = json.loads(out.read_text())
        one["process"] = child
        results["models"][name] = one
        rows += one["rows"]
        print(markdown(one["rows"]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(f"`{results['command']}` ({results['date']})\n\n{table}\n")


if __name__ == "__main__":
    main()
