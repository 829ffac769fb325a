"""Helpers shared by the ``xmtc`` commands (:mod:`xmtc.cli`, :mod:`xmtc.cli_predict`, :mod:`xmtc.cli_info`):
notices on stderr, loading datasets and models, and printing reports. Never imports a command module.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from xmtc.errors import DataError, XMTCError
from xmtc.runs import (
    model_dir,
)

PREDICT_CHUNK = 2048


def info(message: str) -> None:
    """A progress / notice line on stderr (stdout is kept for results)."""
    typer.echo(message, err=True)


def check_k(k: int) -> None:
    if k <= 0:
        raise XMTCError(f"--k must be a positive integer, but is {k}")


def report_ks(k: int) -> tuple[int, ...]:
    """Cut-offs of a report up to ``k``: 1, 3, 5 (those <= k) and k itself."""
    return tuple(sorted({c for c in (1, 3, 5) if c <= k} | {k}))


def load_model(run: Path):
    from xmtc.registry import load

    return load(model_dir(run))


@contextlib.contextmanager
def notes() -> Iterator[None]:
    """Show library warnings (e.g. unseen test labels) as one ``note:`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            info(f"note: {text}")


def splits_of(path: Path) -> list[str]:
    """Split names of a dataset folder (a single file is one split)."""
    from xmtc.data import detect_layout, find_datasets

    path = path.expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such dataset folder or file")
    if path.is_file():
        detect_layout(path)
        return [path.name]
    found = find_datasets(path, max_depth=0)
    if not found:
        detect_layout(path)  # raises a DataError saying what was looked for
    if found[0].get("layout") is None:
        raise DataError(found[0].get("error") or f"{path}: no dataset found")
    return list(found[0]["splits"])


def load_splits(path: Path, splits: list[str], label_index=None) -> dict[str, Any]:
    from xmtc.data import load

    with notes():
        loaded = load(path, splits=tuple(splits), label_index=label_index)
    return dict(zip(splits, loaded, strict=True))


def unseen_summary(ds) -> dict[str, int]:
    return {"unseen_label_occurrences": int(ds.unseen.sum()), "unseen_labels": len(ds.unseen_labels),
            "docs_with_unseen": int((ds.unseen > 0).sum())}


def evaluate_model(model, ds, k: int, inv_prop) -> dict[str, Any]:
    """Report of ``model`` on ``ds`` (unseen gold labels count as misses via ``n_gold``)."""
    from xmtc import metrics

    with contextlib.redirect_stdout(sys.stderr):
        top = model.predict(ds, k=k)
    return metrics.report(ds.Y, top, ks=report_ks(k), inv_prop=inv_prop, n_gold=ds.n_gold())


def print_report(result: dict[str, Any], ds, label: str) -> None:
    from xmtc.metrics import format_report

    typer.echo(f"{label}: {len(ds)} documents of {ds.name}/{ds.split}")
    u = unseen_summary(ds)
    if u["unseen_label_occurrences"]:
        typer.echo(f"  {u['unseen_label_occurrences']} gold labels ({u['unseen_labels']} distinct, in "
                   f"{u['docs_with_unseen']} documents) are unknown to the model: counted as misses")
    typer.echo(format_report(result))


def version() -> str:
    import xmtc

    return xmtc.__version__


def add_sets(result: dict[str, Any], model, ds, train_ds) -> str | None:
    """Add the label-set metrics of the model's decision rule as ``result["sets"]``; their table, or None."""
    from xmtc.cli_sets import format_sets, sets_report

    sets = sets_report(model, ds, train_ds)
    if sets is None:
        return None
    result["sets"] = sets
    return format_sets(sets)
