"""AttentionXML at scale: seconds per epoch and peak RSS on synthetic data with 10^4 to 10^6 labels.

For every label count, in its own subprocess (so each peak RSS is its own), the script generates seeded
synthetic power-law data (:func:`xmtc.data.synthetic.make_synthetic`), trains the ``attentionxml`` model
(preset ``fast``, one epoch per tree level unless ``--set level_epochs=...`` says otherwise) and predicts the
test split. It reports per label count: data and tree-building seconds, seconds per epoch and per step of
every tree level, prediction docs/s, peak RSS after each phase, parameter counts (the per-label attention
vectors apart) and what a dense model without a tree would need for its attention activations
(batch x labels x 2*hidden floats), next to what the tree's candidate-only attention needs
(batch x candidates*cluster_size x 2*hidden).

The documents are few on purpose (most of 10^6 labels have no training document): this measures the cost
of the label space, not quality; P@1 is reported only as a sanity check.

Examples::

    # quick check (about a minute on 2 cores)
    nice -n 15 python benchmarks/scale.py --labels 1000,10000 --docs 400 --out /tmp/scale_tiny.json

    # the documented run: 10^4, 10^5 and 10^6 labels, 5000 documents each
    nice -n 10 python benchmarks/scale.py --labels 10000,100000,1000000 --docs 5000 \\
        --out benchmarks/results/scale_attentionxml.json

    # smaller networks: hidden 32 per direction
    nice -n 10 python benchmarks/scale.py --labels 100000 --out /tmp/scale_h32.json --set hidden=32 fc=[64]

    # rewrite the markdown table of an earlier result (runs nothing)
    python benchmarks/scale.py --render benchmarks/results/scale_attentionxml.json
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (shared 2-core machine); see benchmarks/attentionxml.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    Timer,
    loop_adam,
    markdown_table,
    package_version,
    peak_rss_own_mib,
    result_header,
    run_child,
    time_stages,
    write_json,
)
from benchmarks.schema import make_row  # noqa: E402

MIB = 2.0**20
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scale_attentionxml.json"


def _labels(text: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--labels must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"--labels needs label counts >= 2, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Examples:\n" + __doc__.split("Examples::\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=_labels, default=[10_000, 100_000, 1_000_000],
                   help="comma-separated label counts, one subprocess each (default 10000,100000,1000000; "
                        "1e6 is accepted)")
    p.add_argument("--docs", type=int, default=5000,
                   help="documents generated per label count, train + test (default 5000)")
    p.add_argument("--test-share", type=float, default=0.2, help="share of --docs predicted (default 0.2)")
    p.add_argument("--doc-len", type=int, default=50, help="mean words per document (default 50)")
    p.add_argument("--labels-per-doc", type=float, default=3.0, help="mean labels per document (default 3)")
    p.add_argument("--preset", default="fast", help="attentionxml preset (default fast)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of every tree level (default 1)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="data and model seed (default 0)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="attentionxml config overrides, e.g. hidden=32 fc=[64] batch_size=32")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="skip timing the leaf attention update, dense Adam vs SparseAdam, after training")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"JSON result (and a .md table next to it); default {DEFAULT_OUT.name} in results/")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="run nothing: rewrite the .md table next to an earlier JSON result")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one label count
    args = p.parse_args(argv)
    if args.docs < 20:
        p.error(f"--docs must be at least 20, got {args.docs}")
    if not 0 < args.test_share < 0.9:
        p.error(f"--test-share must be in (0, 0.9), got {args.test_share}")
    if args.epochs < 1:
        p.error(f"--epochs must be positive, got {args.epochs}")
    return args


# ----------------------------------------------------------------------------------------------- child side
def run_one(args: argparse.Namespace, n_labels: int) -> dict[str, Any]:
    """Generate, build, train and predict for one label count in this process; returns its measurements."""
    import torch

    from xmtc import metrics, registry
    from xmtc.data.synthetic import make_synthetic

    warnings.simplefilter("ignore")
    rss: dict[str, float] = {"start": round(peak_rss_own_mib())}
    with Timer() as t_data:
        train, test = make_synthetic(args.docs, n_labels, doc_len=args.doc_len, labels_per_doc=args.labels_per_doc,
                                     seed=args.seed, split_test=args.test_share)
    rss["after_data"] = round(peak_rss_own_mib())

    cls = registry.get("attentionxml")
    overrides = [f"preset={args.preset}", f"level_epochs=[{args.epochs}]", "progress=false",
                 f"threads={args.threads}", "device=cpu", f"seed={args.seed}", *args.set]
    cfg = cls.Config().with_overrides(overrides)
    model = cls(cfg)

    # Wrap the phases of AttentionXML._train on this instance: tree building and each level as a whole
    # (a level also predicts the top-C candidates of the level above before its training loop).
    phases: dict[str, float] = {}
    build, train_level = model._build_trees, model._train_level

    def timed_build(*a, **kw):
        with Timer() as t:
            build(*a, **kw)
        phases["tree_s"] = t.seconds
        rss["after_tree"] = round(peak_rss_own_mib())

    def timed_level(t_idx, d, *a, **kw):
        with Timer() as t:
            train_level(t_idx, d, *a, **kw)
        phases[f"level-{d + 1}"] = t.seconds
        rss[f"after_level-{d + 1}"] = round(peak_rss_own_mib())

    model._build_trees, model._train_level = timed_build, timed_level
    stage_times = time_stages()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_s, fit_cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    with Timer() as t_pred:
        top = model.predict(test, k=5)
    rss["after_predict"] = round(peak_rss_own_mib())

    levels = model.trees_[0]
    hidden2 = 2 * cfg.hidden
    n_train_docs = len(train)
    levels_out = []
    for d, size in enumerate(levels.sizes):
        tag = f"level-{d + 1}"
        res = model.train_results_[tag]
        net = model.networks_[model.net_name(0, d)]
        epoch_s = [h["epoch_seconds"] for h in res.history]
        steps_per_epoch = res.steps / max(res.epochs_run, 1)
        levels_out.append({
            "level": d + 1, "nodes": size, "epochs": res.epochs_run, "steps_per_epoch": steps_per_epoch,
            "epoch_s": [round(s, 2) for s in epoch_s],
            "step_s": round(sum(epoch_s) / max(res.steps, 1), 4),
            "level_total_s": round(phases.get(tag, 0.0), 2),
            **stage_times.get(tag, {}),
            "params": sum(p.numel() for p in net.parameters()),
            "attention_params": net.attention.weight.numel(),
            "max_children": int(levels.children(d - 1).shape[1]) if d > 0 else None,
        })
    params = sum(p.numel() for net in model.networks_.values() for p in net.parameters())
    attention = sum(net.attention.weight.numel() for net in model.networks_.values())
    leaf_width = cfg.candidates * (levels_out[-1]["max_children"] or 1) if levels.n_levels > 1 else n_labels
    bs, seq = cfg.batch_size, cfg.max_len
    p1 = metrics.precision_at_k(test.Y, top, 1)
    peak = round(peak_rss_own_mib())
    del model
    update = leaf_update_ms(n_labels, hidden2, bs, leaf_width, cfg.grad_clip) if args.probe else None
    return {
        "labels": n_labels, "n_train": n_train_docs, "n_test": len(test),
        "labels_with_train_docs": int((train.Y.getnnz(axis=0) > 0).sum()),
        "data_s": round(t_data.seconds, 2), "tree_s": round(phases.get("tree_s", 0.0), 2),
        "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu_s, 1),
        "predict_docs_s": round(len(test) / t_pred.seconds, 1), "P@1": round(100 * p1, 2),
        "levels": levels_out, "level_sizes": levels.sizes,
        "params": params, "attention_params": attention, "other_params": params - attention,
        "peak_rss_mib": peak, "rss_after_mib": rss, "leaf_update_ms": update,
        # what the per-label parameters cost, and the attention activations of one training batch:
        "attention_weights_mib": round(attention * 4 / MIB, 1),
        "leaf_attention_train_state_mib": round(4 * n_labels * hidden2 * 4 / MIB, 1),  # w, grad, Adam m, v
        "tree_leaf_candidates": leaf_width,
        "tree_activations_mib": round(bs * leaf_width * hidden2 * 4 / MIB, 1),
        "dense_activations_mib": round(bs * n_labels * hidden2 * 4 / MIB, 1),
        "dense_attention_scores_mib": round(bs * n_labels * seq * 4 / MIB, 1),
        "config": cfg.to_dict(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }


def leaf_update_ms(n_labels: int, dim: int, batch: int, width: int, clip: float, steps: int = 4) -> dict:
    """Milliseconds of one optimiser update of a (n_labels, dim) attention matrix when a batch touches only
    ``batch x width`` rows: as the trainer does it (dense gradient, gradient clipping, Adam over all rows) and
    with a sparse gradient and ``torch.optim.SparseAdam`` (touched rows only). Run after training, on a fresh
    matrix, so it does not count in the peak RSS reported for training."""
    import torch

    out = {}
    for mode in ("dense", "sparse"):
        w = torch.nn.Parameter(torch.empty(n_labels, dim).uniform_(-0.01, 0.01))  # (labels, dim)
        opt = torch.optim.SparseAdam([w]) if mode == "sparse" else loop_adam([w], lr=1e-3)
        gen = torch.Generator().manual_seed(0)
        total = 0.0
        for i in range(steps + 1):
            cand = torch.randint(0, n_labels, (batch, width), generator=gen)  # (batch, width)
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.embedding(cand, w, sparse=mode == "sparse").sum().backward()
            if mode == "dense" and clip > 0:
                torch.nn.utils.clip_grad_norm_([w], clip)
            opt.step()
            total += (time.perf_counter() - t) if i else 0.0  # the first step allocates the state
        out[mode] = round(1000 * total / steps, 1)
        del w, opt
    return out


# ---------------------------------------------------------------------------------------------- parent side
def _row(r: dict[str, Any]) -> list[Any]:
    if r.get("error"):
        return [f"{r['labels']:,}", r["error"]] + [""] * (len(HEADERS) - 2)
    lv = r["levels"]
    epochs = " / ".join(f"{x['epoch_s'][0]:.1f}" for x in lv)
    steps = " / ".join(f"{1000 * x['step_s']:.0f}" for x in lv)
    cpu = " / ".join(f"{x.get('stage_cpu_s', 0.0):.1f}" for x in lv)
    return [f"{r['labels']:,}", " / ".join(f"{s:,}" for s in r["level_sizes"]), f"{r['tree_s']:.1f}", epochs,
            cpu, steps, f"{r['predict_docs_s']:.0f}", f"{r['peak_rss_mib']:,}", f"{r['params'] / 1e6:.1f}",
            f"{r['attention_params'] / 1e6:.1f}", f"{r['tree_activations_mib']:.1f}",
            f"{r['dense_activations_mib']:,.1f}", _update(r.get("leaf_update_ms"))]


def _update(u: dict | None) -> str:
    return f"{u['dense']:,.0f} / {u['sparse']:,.0f}" if u else ""


HEADERS = ["labels", "tree level sizes", "tree build s", "s/epoch per level", "CPU s per level",
           "ms/step per level",
           "predict docs/s", "peak RSS MiB", "params M", "attention params M", "tree act. MiB",
           "dense act. MiB",
           "leaf update ms dense / sparse"]


def schema_row(r: dict[str, Any], preset: str) -> dict[str, Any]:
    """One label count's measurements as a result row (:mod:`benchmarks.schema`; only P@1 of the metrics)."""
    r = dict(r)
    return make_row(f"attentionxml ({preset}), {r['labels']} labels", "single", "synthetic",
                    n_train=r.pop("n_train", None), n_test=r.pop("n_test", None),
                    seed=r.get("config", {}).get("seed"), **{"P@1": r.pop("P@1", None)},
                    train_s=r.pop("fit_s", None), train_cpu_s=r.pop("fit_cpu_s", None),
                    predict_docs_s=r.pop("predict_docs_s", None), peak_rss_mib=r.pop("peak_rss_mib", None), **r)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child is not None:  # one label count in this (child) process
        write_json(args.child, run_one(args, args.labels[0]))
        return {}
    if args.render is not None:  # only rewrite the table of an earlier result
        result = json.loads(args.render.read_text(encoding="utf-8"))
        table = markdown_table(HEADERS, [_row(r) for r in result["rows"]])
        args.render.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        print(table)
        return result
    results = []
    passthrough = ["--docs", str(args.docs), "--test-share", str(args.test_share), "--doc-len", str(args.doc_len),
                   "--labels-per-doc", str(args.labels_per_doc), "--preset", args.preset,
                   "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed)]
    passthrough += [] if args.probe else ["--no-probe"]
    if args.set:
        passthrough += ["--set", *args.set]
    with tempfile.TemporaryDirectory(prefix="xmtc-scale-") as tmp:
        for n_labels in args.labels:
            out, log = Path(tmp) / f"{n_labels}.json", Path(tmp) / f"{n_labels}.log"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--labels", str(n_labels), *passthrough,
                   "--child", str(out)]
            print(f"[scale] {n_labels:,} labels ...", flush=True)
            child = run_child(cmd, log_path=log)
            if child["returncode"] == 0 and out.is_file():
                r = json.loads(out.read_text(encoding="utf-8"))
            else:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                why = "killed (out of memory?)" if child["returncode"] in (-9, 137) else "failed"
                last = tail[-1][:160] if tail else ""
                r = {"labels": n_labels, "error": f"{why} (exit code {child['returncode']}) {last}",
                     "log_tail": tail}
                print("\n".join(tail), file=sys.stderr)
            r["child_wall_s"] = round(child["seconds"], 1)
            r["child_cpu_s"] = round(child["user_s"] + child["sys_s"], 1)
            results.append(r)
            print(markdown_table(HEADERS, [_row(r)]), flush=True)
    table = markdown_table(HEADERS, [_row(r) for r in results])
    argv = list(sys.argv[1:] if argv is None else argv)
    result = {**result_header("python benchmarks/scale.py " + shlex.join(argv)),
              "rows": [schema_row(r, args.preset) for r in results], "argv": argv, "torch": package_version("torch")}
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
        args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        print(f"[scale] wrote {args.out} and {args.out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
