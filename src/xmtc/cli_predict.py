"""CLI commands ``predict`` and ``evaluate``, added to the ``xmtc`` app by :func:`add_commands`.

Every error a user can cause raises an :class:`~xmtc.errors.XMTCError`; ``xmtc.cli.main`` prints it as one
``error: ...`` line and exits with status 2. This module never imports :mod:`xmtc.cli` (the CLI imports it).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from xmtc.cli_checks import AtomicOutput, check_known_labels
from xmtc.cli_common import (
    PREDICT_CHUNK,
    add_sets,
    check_k,
    evaluate_model,
    info,
    load_model,
    load_splits,
    print_report,
    splits_of,
    unseen_summary,
)
from xmtc.errors import DataError, XMTCError
from xmtc.runs import (
    check_model_inputs,
)

__all__ = ["add_commands"]


def _read_inputs(path: str, fmt: str, empty: list[int] | None = None) -> Iterator[tuple[str, Any]]:
    """Yield (text, id or None) from a text file (one document a line), JSONL ({"text": ...}) or stdin (-).

    One item per input line, so that row i of the output is line i of the input: an empty line (or an empty
    JSONL "text") is an empty document, and its line number is appended to ``empty``.
    """
    from xmtc.data.lines import iter_lines  # the one line splitter of every reader (\n only, \r\n ok)

    if path == "-":
        fh, name = sys.stdin, "<stdin>"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"{p}: no such input file")
        fh, name = p, str(p)
    with contextlib.closing(iter_lines(fh, name)) as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():  # an empty document, in either format (the format is decided by a non-empty line)
                if empty is not None:
                    empty.append(lineno)
                yield "", None
                continue
            if fmt == "auto":
                fmt = "jsonl" if name.removesuffix(".gz").endswith((".jsonl", ".ndjson")) or \
                    line.lstrip().startswith("{") else "text"
            if fmt == "jsonl":
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{name}:{lineno}: invalid JSON ({e.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise DataError(f"{name}:{lineno}: expected an object with a string field \"text\"")
                text, doc_id = obj["text"], obj.get("id")
            else:
                text, doc_id = line, None
            if not text.strip() and empty is not None:
                empty.append(lineno)
            yield text, doc_id


def predict(
    run: Path = typer.Argument(..., help="Run folder from xmtc train (or a model folder)."),
    input: str = typer.Option(..., "--input", "-i", help="Texts: one document a line, or JSONL with \"text\" "
                              "(optional \"id\" is copied); '-' reads stdin."),
    k: int = typer.Option(5, "--k", "-k", help="Number of labels per document."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSONL output file (default: stdout)."),
    fmt: str = typer.Option("auto", "--format", help="Input format: auto (JSONL when the first line starts "
                            "with '{' or the name ends in .jsonl), text or jsonl."),
    sets: bool = typer.Option(False, "--sets", help="Label sets chosen by the model's decision rule (xmtc tune) "
                              "instead of the top k."),
) -> None:
    """Top-k labels for new documents, as JSONL {"labels": [...], "scores": [...]} (one line per input).

    Row i of the output is always line i of the input: an empty line is predicted as an empty document (a note
    on stderr counts them). --output is written through a temporary file renamed at the end, so an error
    leaves an existing file as it was; it may not be the input file.

    With --sets, "labels" is the set the model's saved decision rule chooses (see xmtc tune) and --k is unused.

    Examples:

      xmtc predict runs/demo --input docs.txt --k 5

      echo '{"id": 7, "text": "fishing quotas in the north sea"}' | xmtc predict runs/demo --input - --k 3
    """
    check_k(k)
    if fmt not in ("auto", "text", "jsonl"):
        raise XMTCError(f"--format must be auto, text or jsonl, but is {fmt!r}")
    model = load_model(run)
    from xmtc.cli_dist import NullSink, start_predict  # torchrun: rows split over the ranks, rank 0 writes

    main = start_predict(input, sets)
    if sets and getattr(model, "decision_", None) is None:
        from xmtc.decision import NO_RULE

        raise XMTCError(NO_RULE)
    names = model.label_index_.names
    sink = NullSink() if not main else AtomicOutput(output, input) if output is not None else sys.stdout
    empty: list[int] = []
    n = 0
    try:
        chunk: list[tuple[str, Any]] = []
        for item in _read_inputs(input, fmt, empty):
            chunk.append(item)
            if len(chunk) == PREDICT_CHUNK:
                n += _predict_chunk(model, chunk, k, names, sink, sets)
                chunk = []
        if chunk:
            n += _predict_chunk(model, chunk, k, names, sink, sets)
    except BaseException:
        if output is not None:
            sink.discard()
        raise
    if not main:
        return
    if output is not None:
        sink.commit()
        info(f"wrote {n} predictions to {output}")
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        info(f"note: {len(empty)} of {n} input lines are empty (line {shown}): predicted as empty documents, so "
             "that row i of the output is line i of the input")


def _predict_chunk(model, chunk: list[tuple[str, Any]], k: int, names: list[str], sink, sets: bool = False) -> int:
    if sets:  # the saved decision rule's label sets (xmtc.cli_sets)
        from xmtc.cli_sets import write_set_rows

        return write_set_rows(model, chunk, sink)
    from xmtc.cli_dist import predict as predict_rows  # sharded over the ranks under torchrun

    with contextlib.redirect_stdout(sys.stderr):
        top = predict_rows(model, [text for text, _ in chunk], k)
    for (_, doc_id), ids, scores in zip(chunk, top.indices, top.scores, strict=True):
        keep = ids >= 0
        row: dict[str, Any] = {} if doc_id is None else {"id": doc_id}
        row["labels"] = [names[i] for i in ids[keep]]
        row["scores"] = [round(float(s), 6) for s in scores[keep]]
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(chunk)


def evaluate(
    run: Path = typer.Argument(..., help="Run folder from xmtc train (or a model folder)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder (any supported layout)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate on."),
    k: int = typer.Option(5, "--k", "-k", help="Largest cut-off (reports @1, @3, @5 up to k, and @k)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object; metric values are fractions "
                                 "in [0, 1] (the table shows percent)."),
) -> None:
    """Evaluate a trained model on a dataset split: P@k, nDCG@k, PSP@k, PSnDCG@k, RP@k, R@k.

    Labels are mapped with the model's label index: gold labels it does not know count as misses and are
    reported. Propensities for PSP/PSnDCG come from the dataset's train split (omitted when it has none).
    --json prints keys such as "P@1", "nDCG@3", "PSP@5", "n_docs" and "unseen_label_occurrences".
    When the model has a decision rule (xmtc tune), the label sets are scored too ("sets": micro-F1,
    macro-F1, example-F1, precision, recall, F1 by training-frequency group, ECE of the scores).

    Examples:

      xmtc evaluate runs/demo --data ../shared/data/eurlex57k

      xmtc evaluate runs/demo --data ../shared/data/eurlex57k --split valid --k 10 --json
    """
    from xmtc import metrics
    from xmtc.data import canonical_split

    check_k(k)
    model = load_model(run)
    split = canonical_split(split)
    available = splits_of(data)
    if split not in available:
        raise DataError(f"{data}: no split {split!r} (found: {', '.join(available) or 'none'})")
    wanted = [split] + (["train"] if "train" in available and split != "train" else [])
    ds = load_splits(data, wanted, label_index=model.label_index_)
    check_model_inputs(model, ds[split])
    check_known_labels(ds[split], model)
    train_ds = ds.get("train")
    if train_ds is None:
        info(f"note: {data} has no train split: PSP@k and PSnDCG@k are left out")
    inv_prop = metrics.inverse_propensity(train_ds.Y) if train_ds is not None else None
    result = evaluate_model(model, ds[split], k, inv_prop)
    sets_text = add_sets(result, model, ds[split], train_ds)
    if as_json:
        typer.echo(json.dumps({**result, **unseen_summary(ds[split])}))
    else:
        print_report({m: v for m, v in result.items() if m != "sets"}, ds[split], split)
        if sets_text:
            typer.echo(sets_text)


def add_commands(app: typer.Typer) -> None:
    """Register ``predict`` and ``evaluate`` on the ``xmtc`` app."""
    app.command()(predict)
    app.command()(evaluate)
