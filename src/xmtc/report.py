"""HTML evaluation report of one or several runs with PNG plots (``xmtc report RUN [RUN2 ...]``).

For each run the model predicts the top 100 labels of the evaluated split; the report shows

* P@k and PSP@k for k = 1..10 (propensities from the dataset's train split, :mod:`xmtc.metrics`);
* ROC-AUC and AUPR per label-frequency group (AttentionXML Table 6,
  :func:`xmtc.label_metrics.label_group_auc`: labels with >= 5 occurrences in the evaluated split, 3 groups of
  near-equal total occurrence);
* precision by label-frequency decile: labels sorted by training frequency are cut into 10 groups of equal
  label count (decile 1 = the most frequent 10% of the labels); for each decile, the share of the top-5
  predictions that fall in it and are correct (``hits / predictions in the decile``).

With several runs every plot has one series per run, side by side. ``report.json`` holds every number.
Gold labels the model does not know count as misses (``n_gold``), as in ``xmtc evaluate``.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError
from xmtc.runs import check_model_inputs, resolve_model_dir

__all__ = ["RunResult", "build_report", "decile_precision", "evaluate_run", "render_report"]

KS = tuple(range(1, 11))
AUC_K = 100
DECILE_K = 5


@dataclass
class RunResult:
    """Numbers of one run on one split (see the module docstring).

    Attributes:
        name: short name shown in the plots (the run folder name, made unique).
        path: the run folder.
        model: model name.
        metrics: :func:`xmtc.metrics.report` dict (P@k, nDCG@k, PSP@k ... for k = 1..10, "n_docs").
        label_groups: :func:`xmtc.label_metrics.label_group_auc` rows.
        deciles: :func:`decile_precision` rows.
        predict_seconds: wall time of the prediction.
    """

    name: str
    path: str
    model: str
    metrics: dict[str, float]
    label_groups: list[dict[str, Any]]
    deciles: list[dict[str, Any]]
    predict_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "model": self.model, "metrics": self.metrics,
                "label_groups": self.label_groups, "deciles": self.deciles,
                "predict_seconds": round(self.predict_seconds, 3)}


def decile_precision(Y: sp.csr_matrix, top, train_counts: np.ndarray, k: int = DECILE_K,
                     n_bins: int = 10) -> list[dict[str, Any]]:
    """Precision of the top-``k`` predictions per label-frequency bin.

    Labels are sorted by decreasing training frequency (ties: lower id first) and cut into ``n_bins`` groups
    of (near) equal label count; bin 1 holds the most frequent labels. For each bin: ``predictions`` = top-k
    predictions whose label is in the bin, ``hits`` = those that are gold, ``precision = hits / predictions``
    (NaN without predictions), ``gold`` = gold (document, label) pairs in the bin, ``recall = hits / gold``.

    Args:
        Y: CSR (n, L) gold labels of the evaluated split.
        top: TopK (or int array (n, >=k)) of predicted label ids, -1 padded.
        train_counts: int (L,) training documents per label.
        k: predictions per document taken into account.
        n_bins: number of bins (10: deciles).

    Returns:
        One dict per bin: {"bin", "min_count", "max_count", "n_labels", "predictions", "hits", "gold",
        "precision", "recall"}.
    """
    Y = sp.csr_matrix(Y)
    L = Y.shape[1]
    counts = np.asarray(train_counts, dtype=np.int64)
    if counts.shape != (L,):
        raise DataError(f"train_counts must have one entry per label ({L}), got shape {counts.shape}")
    if n_bins < 1 or k < 1:
        raise XMTCError(f"n_bins and k must be positive, got {n_bins} and {k}")
    idx = np.asarray(getattr(top, "indices", top))[:, :k]
    order = np.lexsort((np.arange(L), -counts))  # most frequent first
    bin_of = np.empty(L, dtype=np.int64)
    bins = [b for b in np.array_split(order, min(n_bins, L)) if b.size]
    for b, labels in enumerate(bins):
        bin_of[labels] = b
    valid = idx >= 0
    pred_labels = idx[valid]
    rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)[valid]
    hit = np.asarray(Y[rows, pred_labels]).ravel() > 0 if pred_labels.size else np.zeros(0, dtype=bool)
    n_pred = np.bincount(bin_of[pred_labels], minlength=len(bins))
    n_hit = np.bincount(bin_of[pred_labels[hit]], minlength=len(bins))
    n_gold = np.bincount(bin_of[Y.indices], minlength=len(bins))
    out = []
    for b, labels in enumerate(bins):
        out.append({"bin": b + 1, "min_count": int(counts[labels].min()),
                    "max_count": int(counts[labels].max()), "n_labels": int(labels.size),
                    "predictions": int(n_pred[b]), "hits": int(n_hit[b]), "gold": int(n_gold[b]),
                    "precision": float(n_hit[b] / n_pred[b]) if n_pred[b] else float("nan"),
                    "recall": float(n_hit[b] / n_gold[b]) if n_gold[b] else float("nan")})
    return out


def evaluate_run(model, train, test, name: str = "", path: str = "") -> RunResult:
    """All numbers of the report for ``model`` on ``test`` (``train`` gives propensities and frequencies).

    Args:
        model: a fitted model.
        train: the dataset's train split, loaded with the model's label index.
        test: the evaluated split, loaded with the model's label index.
        name: series name in the plots.
        path: run folder (recorded in report.json).
    """
    from xmtc import metrics
    from xmtc.label_metrics import label_counts, label_group_auc

    t0 = time.perf_counter()
    top = model.predict(test, k=AUC_K)
    seconds = time.perf_counter() - t0
    result = metrics.report(test.Y, top, ks=KS, inv_prop=metrics.inverse_propensity(train.Y),
                            n_gold=test.n_gold())
    groups = label_group_auc(test.Y, top)
    deciles = decile_precision(test.Y, top, label_counts(train.Y))
    return RunResult(name or model.name, path, model.name, result, groups, deciles, seconds)


# ------------------------------------------------------------------------------------------- plots
def _range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _plots(results: Sequence[RunResult], out: Path) -> list[tuple[str, str]]:
    """Write the PNG plots; returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    files = []
    n = len(results)
    width = 0.8 / n

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("P", "PSP"), strict=True):
        for r in results:
            ys = [100 * r.metrics.get(f"{metric}@{k}", float("nan")) for k in KS]
            ax.plot(KS, ys, marker="o", label=r.name)
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k (%)")
        ax.set_title(f"{metric}@k")
        ax.set_xticks(KS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "precision_at_k.png", dpi=100)
    plt.close(fig)
    files.append(("precision_at_k.png", "P@k and PSP@k for k = 1..10"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n_groups = max((len(r.label_groups) for r in results), default=0)
    for ax, metric in zip(axes, ("AUC", "AUPR"), strict=True):
        for j, r in enumerate(results):
            xs = np.arange(len(r.label_groups)) + (j - (n - 1) / 2) * width
            ax.bar(xs, [g[metric] for g in r.label_groups], width=width, label=r.name)
        ref = max(results, key=lambda r: len(r.label_groups))
        ax.set_xticks(np.arange(n_groups))
        ax.set_xticklabels([f"{_range(g['min_count'], g['max_count'])}\n({g['n_labels']} labels)"
                            for g in ref.label_groups], fontsize=8)
        ax.set_xlabel("label frequency in the evaluated split")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
        ax.set_title(f"{metric} by label-frequency group")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "label_groups.png", dpi=100)
    plt.close(fig)
    files.append(("label_groups.png", "ROC-AUC and AUPR by label-frequency group (AttentionXML Table 6; "
                                      "groups of near-equal total occurrence, labels with >= 5 occurrences)"))

    fig, ax = plt.subplots(figsize=(11, 4))
    for j, r in enumerate(results):
        xs = np.arange(len(r.deciles)) + (j - (n - 1) / 2) * width
        ax.bar(xs, [np.nan_to_num(100 * d["precision"]) for d in r.deciles], width=width, label=r.name)
    ref = max(results, key=lambda r: len(r.deciles))
    ax.set_xticks(np.arange(len(ref.deciles)))
    ax.set_xticklabels([f"{d['bin']}\n{_range(d['min_count'], d['max_count'])}" for d in ref.deciles],
                       fontsize=8)
    ax.set_xlabel("label-frequency decile (1 = most frequent labels; training documents per label)")
    ax.set_ylabel(f"precision of top-{DECILE_K} predictions (%)")
    ax.set_title("Precision by label-frequency decile")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "deciles.png", dpi=100)
    plt.close(fig)
    files.append(("deciles.png", f"Precision of the top-{DECILE_K} predictions by label-frequency decile"))
    return files


# ------------------------------------------------------------------------------------------- HTML
def _pct(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * float(v):.2f}"


def render_report(results: Sequence[RunResult], plots: Sequence[tuple[str, str]],
                  info: dict[str, Any]) -> str:
    """The report page (tables + the PNG plots by relative path)."""
    esc = html.escape
    head = "".join(f"<th>{esc(r.name)}</th>" for r in results)
    def row(name: str, cells: Sequence[str]) -> str:
        return f"<tr><td>{name}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    keys = ("P@1", "P@3", "P@5", "P@10", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5", "PSnDCG@5", "R@10")
    rows = [row(key, [_pct(r.metrics.get(key)) for r in results])
            for key in keys if any(key in r.metrics for r in results)]
    rows.append(row("documents", [str(int(r.metrics["n_docs"])) for r in results]))
    rows.append(row("predict time (s)", [f"{r.predict_seconds:.1f}" for r in results]))
    runs = "".join(f"<li><b>{esc(r.name)}</b>: {esc(r.model)} ({esc(r.path)})</li>" for r in results)
    groups = []
    for r in results:
        cells = "".join(f"<tr><td>{_range(g['min_count'], g['max_count'])}</td><td>{g['n_labels']}</td>"
                        f"<td>{g['AUC']:.4f}</td><td>{g['AUPR']:.4f}</td></tr>" for g in r.label_groups)
        cells = cells or "<tr><td colspan=4>no label with >= 5 occurrences</td></tr>"
        groups.append(f"<h3>{esc(r.name)}</h3><table><tr><th>occurrences</th><th>labels</th><th>AUC</th>"
                      f"<th>AUPR</th></tr>{cells}</table>")
    figs = "".join(f'<figure><img src="{esc(f)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'
                   for f, c in plots)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xmtc report</title><style>
body{{font:14px/1.5 system-ui,sans-serif;max-width:1150px;margin:0 auto;padding:16px;color:#222}}
table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #ccc;padding:3px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:16px 0}}
figcaption{{color:#555;font-size:13px}}.note{{color:#555;font-size:13px}}
</style></head><body>
<h1>xmtc report</h1>
<p class="note">Dataset {esc(info['data'])}, split <b>{esc(info['split'])}</b>;
generated {esc(info['date'])} by xmtc {esc(info['xmtc'])}. Metric values in percent. Gold labels unknown to
a model count as misses.</p>
<ul>{runs}</ul>
<h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>
<h2>Plots</h2>{figs}
<h2>Label-frequency groups</h2>{''.join(groups)}
<p class="note">All numbers: report.json</p>
</body></html>
"""


def _finite(obj: Any) -> Any:
    """``obj`` with NaN / infinite floats replaced by None (valid JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _unique_names(runs: Sequence[Path]) -> list[str]:
    names = [r.name or str(r) for r in runs]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            names[i] = f"{runs[i].parent.name}/{name}" if runs[i].parent.name else str(runs[i])
    return [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]


def build_report(runs: Sequence[str | Path], data: str | Path, out: str | Path, split: str = "test") -> Path:
    """Evaluate each run on ``split`` of ``data`` and write ``out/index.html``, PNG plots and ``report.json``.

    Args:
        runs: run folders from ``xmtc train`` (or model folders).
        data: the dataset folder.
        out: output folder (created).
        split: evaluated split (never used for anything but evaluation).

    Returns:
        Path of ``index.html``.
    """
    import warnings

    from xmtc import __version__
    from xmtc.data import canonical_split, load
    from xmtc.registry import load as load_model

    if not runs:
        raise XMTCError("name at least one run folder")
    split = canonical_split(split)
    if split == "train":
        raise XMTCError("--split train: the report evaluates held-out data; use 'test' or 'valid'")
    run_paths = [Path(r).expanduser() for r in runs]
    folders = [resolve_model_dir(r) for r in run_paths]
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    cache: dict[tuple[str, ...], tuple[Any, Any]] = {}
    for name, run, folder in zip(_unique_names(run_paths), run_paths, folders, strict=True):
        model = load_model(folder)
        key = tuple(model.label_index_.names)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unseen test labels: counted as misses through n_gold
                cache[key] = load(data, splits=("train", split), label_index=model.label_index_)
        train, test = cache[key]
        check_model_inputs(model, test)
        results.append(evaluate_run(model, train, test, name=name, path=str(run)))
    plots = _plots(results, out)
    info = {"data": str(data), "split": split, "date": time.strftime("%Y-%m-%d %H:%M"), "xmtc": __version__}
    payload = _finite({**info, "runs": [r.to_dict() for r in results]})
    (out / "report.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    index = out / "index.html"
    index.write_text(render_report(results, plots, info), encoding="utf-8")
    return index
