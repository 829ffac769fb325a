"""Saved deep models, their average and the AttentionXML consensus with Parabel (Eq. 9, Tables 5 and 6).

Loads the train and test splits of ``--data`` (train: the evaluation's label index, the propensities and the
label frequencies; Parabel's training documents with ``--train-parabel``), loads every saved model folder of
``--models`` with :func:`xmtc.registry.load` (a run folder of ``xmtc train`` works too; nothing is unpickled),
and a Parabel model: a saved folder (``--parabel``) or xmtc's ``parabel`` trained here on the same training
documents (``--train-parabel``, kept with ``--save-parabel``). Each model predicts the test split once, top
``--k`` labels with their scores (the combinations need candidates well beyond rank 5); predictions are mapped
to the training label index by label name (:func:`xmtc.models.ensemble.align_topk`).

Rows: each deep model; the score average of deep models 1..j for j = 2..N (:func:`average_topk`, a label outside
a member's top-k counts 0); Parabel; the consensus ``1 - (1 - P_deep)(1 - P_parabel)`` (:func:`consensus_topk`)
of the deep ensemble (all N averaged, or the single model) with Parabel, and with N > 1 also of deep model 1
with Parabel. Metrics (:func:`xmtc.metrics.report`, percent): P@1/3/5, nDCG@3/5 (gold labels unseen in
training count as misses), PSP@1/3/5 (inverse propensities of the training labels, A=0.55, B=1.5). For each
consensus row a line says whether it beats both of its parts on P@1, P@3 and P@5 (Table 5's claim).

Label-frequency groups (Table 6, :func:`xmtc.label_metrics.label_group_auc`): labels with at least
``--min-count`` occurrences, sorted by frequency and cut into ``--groups`` groups of near-equal total
occurrence; per group the mean over its labels of the per-label ROC-AUC and AUPR over all test documents, for
every row. The paper counts occurrences in the test set (``--group-by test``); the default counts them in the
training set (``--group-by train``); ``--group-by train test`` gives both tables. A label outside a document's
top-``--k`` scores 0 for that document.

Examples::

    # one saved AttentionXML run + Parabel trained here on the same training split (saved for reuse)
    nice -n 10 python benchmarks/ensemble.py --data ../shared/data/eurlex57k \\
        --models runs/ax-fast-eurlex57k/model --train-parabel --save-parabel runs/parabel-eurlex57k \\
        --out benchmarks/results/ensemble_eurlex57k.json

    # three single-tree runs (rows for 1, the average of 1..2 and of 1..3) and a saved Parabel
    python benchmarks/ensemble.py --data ../shared/data/eurlex57k --models runs/ax1 runs/ax2 runs/ax3 \\
        --names ax-seed0 ax-seed1 ax-seed2 --parabel runs/parabel-eurlex57k --out results/ens3.json

    # smoke test on the bundled dataset
    python benchmarks/ensemble.py --data src/xmtc/datasets/eurlex-mini --models /tmp/ax1 --train-parabel \\
        --parabel-set n_threads=1 --threads 1
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    import_first,
    load_splits,
    markdown_table,
    peak_rss_own_mib,
    result_header,
    write_json,
)
from benchmarks.schema import make_row  # noqa: E402

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]
BEAT_METRICS = ["P@1", "P@3", "P@5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Examples::")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train and test splits")
    p.add_argument("--models", required=True, nargs="+", type=Path,
                   help="saved deep model folders (or xmtc run folders), combined in this order")
    p.add_argument("--names", nargs="+", default=None, help="short row names of --models (default: derived)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--parabel", type=Path, help="saved parabel model folder (or run folder)")
    src.add_argument("--train-parabel", action="store_true",
                     help="train xmtc's parabel on the loaded training documents")
    p.add_argument("--save-parabel", type=Path, default=None, help="with --train-parabel: save it here")
    p.add_argument("--parabel-set", nargs="*", default=[], help="parabel config overrides key=value")
    p.add_argument("--max-train", type=int, default=None, help="seeded random sample of N training documents")
    p.add_argument("--max-test", type=int, default=None, help="seeded random sample of N test documents")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--k", type=int, default=100, help="labels predicted per document and model (default 100)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the deep models and omikuji threads of a trained parabel (0: as "
                        "saved / all cores)")
    p.add_argument("--groups", type=int, default=3, help="label-frequency groups (default 3)")
    p.add_argument("--min-count", type=int, default=5, help="labels with fewer occurrences are left out")
    p.add_argument("--group-by", nargs="+", choices=("train", "test"), default=["train"],
                   help="count label occurrences in the training split (default) and/or the test split (the "
                        "paper); one group table each")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    args = p.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.models):
        p.error(f"--names has {len(args.names)} entries for {len(args.models)} --models")
    if args.save_parabel is not None and not args.train_parabel:
        p.error("--save-parabel needs --train-parabel")
    if args.k < 5:
        p.error(f"--k must be at least 5 (P@5 is reported), got {args.k}")
    return args


# --------------------------------------------------------------------------- models and predictions
def _model_name(model: Any, folder: Path) -> str:
    n_trees = getattr(model.config, "n_trees", 1)
    trees = f" ({n_trees} trees)" if model.name == "attentionxml" and n_trees > 1 else ""
    return f"{model.name}{trees} [{folder.parent.name if folder.name == 'model' else folder.name}]"


def _set_threads(model: Any, threads: int) -> None:
    """Use ``threads`` torch threads for a deep model's prediction (its saved ``threads`` otherwise)."""
    if threads > 0 and hasattr(model.config, "threads"):
        model.config.threads = threads
        if getattr(model, "device_", None) is not None:  # runtime already set up: apply it directly
            import torch

            torch.set_num_threads(threads)


def predict_aligned(model: Any, test: Any, k: int) -> tuple[Any, float]:
    """Top-``k`` of ``model`` on ``test`` in the label ids of ``test.label_index``, and the wall seconds."""
    from xmtc.models.ensemble import align_topk

    t0 = time.perf_counter()
    top = model.predict(test, k=k)
    seconds = time.perf_counter() - t0
    return align_topk(top, model.label_index_.names, test.label_index), seconds


def get_parabel(args: argparse.Namespace, train: Any) -> tuple[Any, dict[str, Any]]:
    """The saved or freshly trained parabel model and facts about it."""
    from xmtc import registry

    if args.parabel is not None:
        model = registry.load(args.parabel)
        if model.name != "parabel":
            print(f"note: --parabel {args.parabel} holds a {model.name!r} model", file=sys.stderr)
        return model, {"source": str(args.parabel), "model": model.name}
    cls = registry.get("parabel")
    overrides = ([f"n_threads={args.threads}"] if args.threads > 0 else []) + list(args.parabel_set)
    cfg = cls.Config().with_overrides(overrides)
    t0 = time.perf_counter()
    model = cls(cfg).fit(train)
    info = {"source": "trained", "model": "parabel", "train_s": round(time.perf_counter() - t0, 1),
            "config": cfg.to_dict()}
    if args.save_parabel is not None:
        model.save(args.save_parabel)
        info["saved_to"] = str(args.save_parabel)
    return model, info


# --------------------------------------------------------------------------- rows and tables
def build_rows(deep: list[tuple[str, Any]], parabel: tuple[str, Any], k: int) -> tuple[list[dict], list[dict]]:
    """Prediction rows (parts, averages, consensus) and which rows each consensus combines.

    Args:
        deep: (name, TopK) of each deep model, in order.
        parabel: (name, TopK) of parabel.
        k: labels kept by the combinations.

    Returns:
        (rows [{"name", "kind", "top"}], consensus checks [{"row", "parts": [name, name]}]).
    """
    from xmtc.models.ensemble import average_topk, consensus_topk

    names = [name for name, _ in deep] + [parabel[0]]
    if len(set(names)) != len(names):
        raise ValueError(f"row names must be unique, got {names}")
    rows = [{"name": name, "kind": "deep", "top": top} for name, top in deep]
    ensemble_name, ensemble_top = deep[0]
    for j in range(2, len(deep) + 1):
        ensemble_name = f"average of deep 1..{j}"
        ensemble_top = average_topk([t for _, t in deep[:j]], k)
        rows.append({"name": ensemble_name, "kind": "average", "top": ensemble_top})
    rows.append({"name": parabel[0], "kind": "parabel", "top": parabel[1]})
    pairs = [(ensemble_name, ensemble_top)] + ([deep[0]] if len(deep) > 1 else [])
    checks = []
    for name, top in pairs:
        cname = f"consensus({name}, {parabel[0]})"
        rows.append({"name": cname, "kind": "consensus", "top": consensus_topk(top, parabel[1], k)})
        checks.append({"row": cname, "parts": [name, parabel[0]]})
    return rows, checks


def beats_parts(metrics_by_row: dict[str, dict[str, float]], checks: list[dict]) -> list[dict]:
    """For each consensus row: does it beat both parts on P@1/3/5 (strictly, in percent rounded to 2)?"""
    out = []
    for c in checks:
        cons = metrics_by_row[c["row"]]
        margin = {m: round(cons[m] - max(metrics_by_row[p][m] for p in c["parts"]), 2) for m in BEAT_METRICS}
        out.append({**c, "margin_over_best_part": margin, "beats_both": all(v > 0 for v in margin.values())})
    return out


def beats_line(b: dict) -> str:
    margins = ", ".join(f"{m} {v:+.2f}" for m, v in b["margin_over_best_part"].items())
    verdict = "YES" if b["beats_both"] else "NO"
    return f"{b['row']} beats both parts on P@1/3/5: {verdict} (margin over the better part: {margins})"


def group_table(groups_by_row: dict[str, list[dict]], short: dict[str, str], group_by: str) -> str:
    """Table 6 layout: one line per frequency group, AUC then AUPR columns per row (percent)."""
    names = list(groups_by_row)
    first = groups_by_row[names[0]]
    headers = [f"occurrence ({group_by})", "labels", "share %"] + [f"AUC {short[n]}" for n in names] + \
        [f"AUPR {short[n]}" for n in names]
    lines = []
    for g, grp in enumerate(first):
        lo, hi = grp["min_count"], grp["max_count"]
        cells = [f"{lo} <= t <= {hi}", grp["n_labels"], f"{100 * grp['share']:.2f}"]
        cells += [f"{100 * groups_by_row[n][g]['AUC']:.2f}" for n in names]
        cells += [f"{100 * groups_by_row[n][g]['AUPR']:.2f}" for n in names]
        lines.append(cells)
    return markdown_table(headers, lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from xmtc import metrics, registry

    label_group_auc = import_first(["xmtc.label_metrics", "xmtc.metrics"], "label_group_auc")

    warnings.simplefilter("ignore")
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    splits = load_splits(args.data, seed=args.seed, max_train=args.max_train, max_test=args.max_test)
    train, test = splits.train, splits.test
    print(f"data: {args.data} train {len(train)} docs, test {len(test)} docs, {train.n_labels} labels",
          file=sys.stderr, flush=True)

    deep, deep_info = [], []
    for i, folder in enumerate(args.models):
        model = registry.load(folder)
        _set_threads(model, args.threads)
        name = f"deep {i + 1}: " + (args.names[i] if args.names else _model_name(model, folder))
        top, seconds = predict_aligned(model, test, args.k)
        deep.append((name, top))
        deep_info.append({"name": name, "folder": str(folder), "model": model.name,
                          "config": model.config.to_dict(), "n_labels": len(model.label_index_),
                          "predict_s": round(seconds, 1)})
        print(f"{name}: predicted {len(test)} docs in {seconds:.1f} s", file=sys.stderr, flush=True)
        del model
    parabel_model, parabel_info = get_parabel(args, train)
    parabel_top, seconds = predict_aligned(parabel_model, test, args.k)
    parabel_info["predict_s"] = round(seconds, 1)
    parabel_name = "parabel"
    print(f"parabel ({parabel_info['source']}): predicted in {seconds:.1f} s", file=sys.stderr, flush=True)

    rows, checks = build_rows(deep, (parabel_name, parabel_top), args.k)
    inv_prop = metrics.inverse_propensity(train.Y, A=0.55, B=1.5)
    metrics_by_row: dict[str, dict[str, float]] = {}
    groups: dict[str, dict[str, list[dict]]] = {basis: {} for basis in args.group_by}  # basis -> row -> groups
    for r in rows:
        rep = metrics.report(test.Y, r["top"], ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
        metrics_by_row[r["name"]] = {m: round(100 * rep[m], 2) for m in METRICS}
        for basis in args.group_by:
            groups[basis][r["name"]] = label_group_auc(
                test.Y, r["top"], counts=train.Y if basis == "train" else None, n_groups=args.groups,
                min_count=args.min_count)
    beats = beats_parts(metrics_by_row, checks)

    short = {r["name"]: f"R{i + 1}" for i, r in enumerate(rows)}
    cells = [[short[r["name"]], r["name"], *(f"{v:.2f}" for v in metrics_by_row[r["name"]].values())]
             for r in rows]
    parts = [markdown_table(["#", "method", *METRICS], cells, align="ll" + "r" * len(METRICS)), "",
             *(beats_line(b) for b in beats)]
    for basis in args.group_by:
        by_row = groups[basis]
        parts += ["", f"Label-frequency groups by {basis} occurrence t (AttentionXML Table 6): labels with "
                      f"t >= {args.min_count}, {args.groups} groups of near-equal total occurrence; per-label "
                      f"ROC-AUC / AUPR over the test documents averaged per group, percent; top-{args.k} "
                      "scores, others 0.", "",
                  group_table(by_row, short, basis) if by_row[rows[0]["name"]] else
                  "(no label has enough occurrences for the frequency groups)"]
    text = "\n".join(parts)
    print(text)
    seeds = {d["name"]: d["config"].get("seed") for d in deep_info}
    seeds[parabel_name] = parabel_info.get("config", {}).get("seed")
    argv = list(sys.argv[1:] if argv is None else argv)
    result = {**result_header("python benchmarks/ensemble.py " + shlex.join(argv)),
              "rows": [make_row(r["name"], "single" if r["kind"] in ("deep", "parabel") else "ensemble",
                                train.name, n_train=len(train), n_test=len(test), seed=seeds.get(r["name"]),
                                **metrics_by_row[r["name"]],
                                train_s=parabel_info.get("train_s") if r["kind"] == "parabel" else None,
                                role=r["kind"],
                                label_groups={basis: groups[basis][r["name"]] for basis in args.group_by})
                       for r in rows],
              "consensus_beats_parts": beats, "deep_models": deep_info, "parabel": parabel_info,
              "k": args.k, "group_by": args.group_by, "n_groups": args.groups, "min_count": args.min_count,
              "n_train": len(train), "n_test": len(test), "n_labels": train.n_labels,
              "test_unseen_gold": int(test.unseen.sum()), "data": str(args.data), "seed": args.seed,
              "peak_rss_mib": round(peak_rss_own_mib()), "markdown": text}
    if args.out is not None:  # the .md is this script's own report (tables, verdicts, label groups)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
        args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
