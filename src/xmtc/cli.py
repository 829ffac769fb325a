"""The ``xmtc`` command line: a thin layer over the library.

Commands: ``train``, ``predict``, ``evaluate``, ``print-config``, ``models``, ``datasets``, ``ensemble``.

A *run folder* (``--out RUN`` of ``train``) holds ``run.json`` (model name, data path, full config, status),
``model/`` (the saved model folder, see :mod:`xmtc.models.base`), ``metrics.jsonl`` and ``checkpoints/`` (deep
models) and ``test_report.json`` (the layout and its helpers: :mod:`xmtc.runs`). Commands that take ``RUN``
also accept a model folder itself. ``serve``, ``explain`` and ``report`` are defined in :mod:`xmtc.cli_extra`.

Every error a user can cause (:class:`~xmtc.errors.XMTCError`, a missing file, a bad option) prints one line
``error: ...`` on stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from xmtc.cli_checks import (
    MAX_UNKNOWN_SHARE,
    AtomicOutput,
    check_known_labels,
    check_out_folder,
    check_same_training_data,
    check_train_inputs,
    checkpoint_mismatch,
    expand_set_pairs,
    run_provenance,
    train_fingerprint,
    unknown_label_share,
    validation_note,
)
from xmtc.cli_extra import add_commands
from xmtc.errors import ConfigError, DataError, XMTCError
from xmtc.runs import (
    MODEL_DIR,
    RUN_FILE,
    STATUS_DONE,
    STATUS_TRAINING,
    TEST_REPORT,
    check_model_inputs,
    is_finished,
    model_dir,
    read_run,
    write_json,
)

USER_ERROR = 2
PREDICT_CHUNK = 2048

app = typer.Typer(
    name="xmtc",
    help="Extreme multi-label text classification: train, predict, evaluate and compare models.\n\n"
         "Start with:  xmtc train --model parabel --out runs/demo   (trains on the bundled dataset)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


# --------------------------------------------------------------------------------------------- helpers
def info(message: str) -> None:
    """A progress / notice line on stderr (stdout is kept for results)."""
    typer.echo(message, err=True)


def _check_k(k: int) -> None:
    if k <= 0:
        raise XMTCError(f"--k must be a positive integer, but is {k}")


def report_ks(k: int) -> tuple[int, ...]:
    """Cut-offs of a report up to ``k``: 1, 3, 5 (those <= k) and k itself."""
    return tuple(sorted({c for c in (1, 3, 5) if c <= k} | {k}))


def _load_model(run: Path):
    from xmtc.registry import load

    return load(model_dir(run))


@contextlib.contextmanager
def _notes() -> Iterator[None]:
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


def _splits_of(path: Path) -> list[str]:
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


def _load(path: Path, splits: list[str], label_index=None) -> dict[str, Any]:
    from xmtc.data import load

    with _notes():
        loaded = load(path, splits=tuple(splits), label_index=label_index)
    return dict(zip(splits, loaded, strict=True))


def _unseen_summary(ds) -> dict[str, int]:
    return {"unseen_label_occurrences": int(ds.unseen.sum()), "unseen_labels": len(ds.unseen_labels),
            "docs_with_unseen": int((ds.unseen > 0).sum())}


def _evaluate(model, ds, k: int, inv_prop) -> dict[str, Any]:
    """Report of ``model`` on ``ds`` (unseen gold labels count as misses via ``n_gold``)."""
    from xmtc import metrics

    with contextlib.redirect_stdout(sys.stderr):
        top = model.predict(ds, k=k)
    return metrics.report(ds.Y, top, ks=report_ks(k), inv_prop=inv_prop, n_gold=ds.n_gold())


def _print_report(result: dict[str, Any], ds, label: str) -> None:
    from xmtc.metrics import format_report

    typer.echo(f"{label}: {len(ds)} documents of {ds.name}/{ds.split}")
    u = _unseen_summary(ds)
    if u["unseen_label_occurrences"]:
        typer.echo(f"  {u['unseen_label_occurrences']} gold labels ({u['unseen_labels']} distinct, in "
                   f"{u['docs_with_unseen']} documents) are unknown to the model: counted as misses")
    typer.echo(format_report(result))


def _config_diff(old, new) -> str:
    a, b = old.to_dict(), new.to_dict()
    return ", ".join(f"{key} {a[key]!r} -> {b[key]!r}" for key in a if a[key] != b.get(key))


# --------------------------------------------------------------------------------------------- train
@app.command()
def train(
    model: str = typer.Option(..., "--model", "-m", help="Model name (list them with: xmtc models)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (model, checkpoints, metrics)."),
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Dataset folder (any supported layout). Default: the bundled dataset."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="JSON config file (template: xmtc print-config NAME)."),
    set_: list[str] = typer.Option(
        [], "--set", "-s", help="Override config fields, key=value (repeatable; several pairs after one "
                                "--set also work: --set epochs=5 lr=0.002)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last checkpoint."),
    valid_split: str = typer.Option(
        "valid", "--valid-split",
        help="Dataset split used for early stopping when present; 'none' lets the model hold out part of "
             "train (with its seed). The test split is never used."),
    k: int = typer.Option(5, "--k", "-k", help="Largest cut-off of the final test report."),
    test: bool = typer.Option(
        True, "--test/--no-test", help="Evaluate on the dataset's test split at the end."),
    tune: bool = typer.Option(
        False, "--tune", help="Then choose a decision rule for label sets on validation (as xmtc tune); "
                              "without a valid split a seeded 10% of train is held out for it."),
) -> None:
    """Train a model, save it in RUN/model and report test metrics.

    Loads the train split (and the dataset's own validation split if present; otherwise the model holds out
    part of train with its seed), fits with checkpoints and metrics.jsonl in RUN, saves the model, and if the
    dataset has a test split evaluates on it (P@k, nDCG@k, PSP@k; RUN/test_report.json).

    Examples:

      xmtc train --model parabel --out runs/demo

      xmtc train --model attentionxml --data ../shared/data/eurlex57k --out runs/eurlex --set epochs=5

      xmtc train --model attentionxml --data ../shared/data/eurlex57k --out runs/eurlex --resume
    """
    from xmtc import metrics, registry
    from xmtc.data import bundled_path, canonical_split

    _check_k(k)
    cls = registry.get(model)
    out = out.expanduser()
    check_out_folder(out)
    run = read_run(out)
    if run is not None and not resume:
        raise XMTCError(f"{out} already holds a run ({RUN_FILE}); add --resume to continue it, "
                        "or choose another --out")
    if run is None and out.is_dir() and any(out.iterdir()):
        raise XMTCError(f"{out} exists and is not an xmtc run folder; choose an empty or new --out")
    cfg = cls.Config.from_json(config) if config is not None else cls.Config()
    cfg = cfg.with_overrides(list(set_))
    if run is not None:
        if run["model"] != model:
            raise ConfigError(f"--resume: {out} holds a {run['model']!r} run, not {model!r}")
        saved = cls.Config.from_dict(run["config"], source=str(out / RUN_FILE))
        if (config is not None or set_) and (diff := _config_diff(saved, cfg)):
            raise ConfigError(f"--resume: the config differs from the run in {out} ({diff}); "
                              "resume with the same settings, or omit --config/--set")
        cfg = saved
        recorded = Path(run["data"])
        if data is not None and data.expanduser().resolve() != recorded:
            raise ConfigError(f"--resume: {out} was trained on {recorded}, not {data}")
        data, valid_split = recorded, run.get("valid_split", valid_split)
    if data is None:
        data = bundled_path()
        info(f"no --data given: using the bundled dataset {data}")
    data = data.expanduser().resolve()

    available = _splits_of(data)
    if "train" not in available:
        raise DataError(f"{data}: no train split (found: {', '.join(available) or 'none'})")
    vname = None if valid_split.lower() == "none" else canonical_split(valid_split)
    if vname == "test":
        raise ConfigError("--valid-split test: the test split is never used for early stopping; use 'valid' "
                          "or 'none'")
    if vname is not None and vname not in available:
        if valid_split != "valid":
            raise DataError(f"{data}: no split {valid_split!r} for --valid-split "
                            f"(found: {', '.join(available)})")
        vname = None
    wanted = ["train"] + ([vname] if vname else []) + (["test"] if test and "test" in available else [])
    ds = _load(data, wanted)
    train_ds, valid_ds, test_ds = ds["train"], ds.get(vname) if vname else None, ds.get("test")
    check_train_inputs(model, cls, train_ds)
    fingerprint, previous = train_fingerprint(train_ds), run
    if run is not None and not is_finished(out, run):
        check_same_training_data(run, fingerprint, out)
    holdout = run.get("holdout") if run is not None else None  # label sets (issue 16): xmtc.cli_sets
    if tune and valid_ds is None and holdout is None:
        from xmtc.cli_sets import holdout_for

        holdout = holdout_for(cfg)
    if holdout is not None:
        from xmtc.data import validation_split

        train_ds, valid_ds = validation_split(train_ds, holdout["fraction"], holdout["seed"], holdout["max_docs"])

    from xmtc.cli_dist import start_training  # torchrun: the process group, after every rank's checks

    main = start_training(model, cls, cfg)  # only rank 0 writes (run.json, model/, test report)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if is_finished(out, run):
        info(f"{out}: the run has already finished; loading {out / MODEL_DIR}")
        if not main:
            return
        fitted = registry.load(out / MODEL_DIR)
        seconds = float(run.get("train_seconds", 0.0))
    else:
        run = {"model": model, "data": str(data), "valid_split": valid_split, "config": cfg.to_dict(),
               "status": STATUS_TRAINING, "started": run["started"] if run else time.strftime("%Y-%m-%d %H:%M:%S"),
               "xmtc": _version(), **({"holdout": holdout} if holdout is not None else {})}
        run.update(run_provenance(cfg, previous, fingerprint))
        if main:
            write_json(out / RUN_FILE, run)
        held_out = validation_note(model, cls, vname, valid_ds)
        if holdout is not None:
            held_out = f"{len(valid_ds)} docs held out from train for --tune (seed {holdout['seed']})"
        info(f"training {model} on {data.name}: {len(train_ds)} docs, {train_ds.n_labels} labels; "
             f"validation: {held_out}")
        t0 = time.perf_counter()
        try:
            with _notes():
                fitted = cls(cfg).fit(train_ds, valid_ds, run_dir=out, resume=resume)
        except RuntimeError as e:
            if resume and (error := checkpoint_mismatch(e, out)) is not None:
                raise error from None
            raise
        seconds = time.perf_counter() - t0
        if not main:
            return  # torchrun: rank 0 saves the model and evaluates
        fitted.save(out / MODEL_DIR)
        run.update(status=STATUS_DONE, train_seconds=round(seconds, 3), n_train=len(train_ds),
                   n_valid=len(valid_ds) if valid_ds is not None else None, n_labels=train_ds.n_labels)
        write_json(out / RUN_FILE, run)
    typer.echo(f"trained {model} on {data.name} ({len(train_ds)} docs, {train_ds.n_labels} labels) "
               f"in {seconds:.1f} s; model saved to {out / MODEL_DIR}")
    if tune:
        from xmtc.cli_sets import tune_after_training

        typer.echo(tune_after_training(fitted, valid_ds, out / MODEL_DIR, vname, holdout, data))
    if test_ds is None:
        if test:
            info(f"{data.name} has no test split: nothing to evaluate")
        return
    if (unknown := unknown_label_share(test_ds, fitted)).share > MAX_UNKNOWN_SHARE:
        info(f"warning: {unknown.message('the test split')} They count as misses in the metrics below.")
    result = _evaluate(fitted, test_ds, k, metrics.inverse_propensity(train_ds.Y))
    result.update(_unseen_summary(test_ds))
    sets_text = _add_sets(result, fitted, test_ds, train_ds)
    write_json(out / TEST_REPORT, result)
    shown = {m: v for m, v in result.items() if not m.startswith(("unseen", "docs_with", "sets"))}
    _print_report(shown, test_ds, "test")
    if sets_text:
        typer.echo(sets_text)
    typer.echo(f"report saved to {out / TEST_REPORT}")


def _version() -> str:
    import xmtc

    return xmtc.__version__


def _add_sets(result: dict[str, Any], model, ds, train_ds) -> str | None:
    """Add the label-set metrics of the model's decision rule as ``result["sets"]``; their table, or None."""
    from xmtc.cli_sets import format_sets, sets_report

    sets = sets_report(model, ds, train_ds)
    if sets is None:
        return None
    result["sets"] = sets
    return format_sets(sets)


# --------------------------------------------------------------------------------------------- predict
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


@app.command()
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
    _check_k(k)
    if fmt not in ("auto", "text", "jsonl"):
        raise XMTCError(f"--format must be auto, text or jsonl, but is {fmt!r}")
    model = _load_model(run)
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


# --------------------------------------------------------------------------------------------- evaluate
@app.command()
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

    _check_k(k)
    model = _load_model(run)
    split = canonical_split(split)
    available = _splits_of(data)
    if split not in available:
        raise DataError(f"{data}: no split {split!r} (found: {', '.join(available) or 'none'})")
    wanted = [split] + (["train"] if "train" in available and split != "train" else [])
    ds = _load(data, wanted, label_index=model.label_index_)
    check_model_inputs(model, ds[split])
    check_known_labels(ds[split], model)
    train_ds = ds.get("train")
    if train_ds is None:
        info(f"note: {data} has no train split: PSP@k and PSnDCG@k are left out")
    inv_prop = metrics.inverse_propensity(train_ds.Y) if train_ds is not None else None
    result = _evaluate(model, ds[split], k, inv_prop)
    sets_text = _add_sets(result, model, ds[split], train_ds)
    if as_json:
        typer.echo(json.dumps({**result, **_unseen_summary(ds[split])}))
    else:
        _print_report({m: v for m, v in result.items() if m != "sets"}, ds[split], split)
        if sets_text:
            typer.echo(sets_text)


# --------------------------------------------------------------------------------------------- configs
@app.command("print-config")
def print_config(
    name: str = typer.Argument(..., help="Model name."),
    docs: bool = typer.Option(False, "--docs", help="List every field with its default and documentation."),
) -> None:
    """Print the default config of a model as a JSON template for train --config.

    Examples:

      xmtc print-config attentionxml > my.json

      xmtc train --model attentionxml --config my.json --out runs/mine

      xmtc print-config parabel --docs
    """
    from xmtc import registry

    cls = registry.get(name)
    cfg = cls.Config()
    if not docs:
        typer.echo(cfg.to_json())
        return
    values, described = cfg.to_dict(), cls.Config.describe()
    width = max(len(f) for f in values)
    typer.echo(f"{name} ({cls.Config.__name__}); set with --set key=value or a --config JSON file")
    for field, value in values.items():
        typer.echo(f"  {field:<{width}}  {json.dumps(value):<12}  {described.get(field, '')}")


@app.command()
def models() -> None:
    """List the registered models (name: first line of the docstring).

    Example:

      xmtc models
    """
    from xmtc import registry

    for name in registry.available():
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:<16}{doc[0] if doc else ''}")


def default_data_root() -> Path:
    """``../shared/data`` (seen from the working folder or the source checkout), else the bundled data."""
    from xmtc.data import bundled_path

    checkout = Path(__file__).resolve().parents[3]
    for cand in (Path.cwd().parent / "shared" / "data", checkout / "shared" / "data"):
        if cand.is_dir():
            return cand
    return bundled_path().parent


@app.command()
def datasets(
    root: Path | None = typer.Argument(None, help="Folder to search (default: ../shared/data, else the "
                                          "bundled datasets)."),
) -> None:
    """List the datasets under a folder: layout and documents per split.

    Examples:

      xmtc datasets

      xmtc datasets ../shared/data
    """
    from xmtc.data import find_datasets

    root = default_data_root() if root is None else root.expanduser()
    found = find_datasets(root)
    if not found:
        info(f"no datasets found under {root}")
        return
    width = max(len(d["name"]) for d in found)
    for d in found:
        if d.get("layout") is None:
            typer.echo(f"{d['name']:<{width}}  incomplete: {d.get('error', '')}")
            continue
        splits = ", ".join(f"{s} {n:,}" if n is not None else s for s, n in d["splits"].items())
        typer.echo(f"{d['name']:<{width}}  {d['layout']:<12}  {splits:<40}  {d['path']}")


# --------------------------------------------------------------------------------------------- ensemble
@app.command()
def ensemble(
    members: list[Path] = typer.Argument(..., help="Run (or model) folders of the member models."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to create for the ensemble."),
    method: str = typer.Option("average", "--method", help="How scores are combined: average or consensus."),
    allow_label_union: bool = typer.Option(
        False, "--allow-label-union", help="Combine members whose label sets overlap little (models of "
                                           "different tasks), over the union of their labels."),
    calibrated: bool = typer.Option(
        False, "--calibrated", help="Map each member's scores through its saved calibration (xmtc tune "
                                    "--calibrate) before combining, so that they are on one scale."),
) -> None:
    """Combine trained models into one 'ensemble' model (saved in OUT/model; members are referenced by path).

    Members must be models of the same task: each shares at least half of its labels with the first member
    (and those are at least half of the first member's labels); --allow-label-union combines them anyway.

    Example:

      xmtc ensemble --out runs/ens --method average runs/attentionxml runs/parabel
    """
    from xmtc import registry

    if len(members) < 2:
        raise XMTCError(f"an ensemble needs at least 2 member runs, got {len(members)}")
    out = out.expanduser()
    check_out_folder(out)
    if (out / MODEL_DIR).exists() or (out / RUN_FILE).exists():
        raise XMTCError(f"{out} already holds a run; choose another --out")
    folders = [str(model_dir(m.expanduser()).resolve()) for m in members]
    cls = registry.get("ensemble")
    cfg = cls.Config().replace(members=folders, method=method, allow_disjoint_labels=allow_label_union,
                               calibrated=calibrated)
    model = cls(cfg).fit(None)  # loads and checks the members; nothing is trained
    model.save(out / MODEL_DIR)
    from xmtc.cli_sets import members_validation

    write_json(out / RUN_FILE, {"model": "ensemble", "config": cfg.to_dict(), "status": STATUS_DONE,
                                "xmtc": _version(), **members_validation([m.expanduser() for m in members])})
    typer.echo(f"ensemble of {len(folders)} models ({method}) saved to {out / MODEL_DIR}")


# --------------------------------------------------------------------------------------------- entry point
def _click_exception_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        from typer._click.exceptions import ClickException  # typer >= 0.2x vendors click

        types.append(ClickException)
    with contextlib.suppress(ImportError):
        from click.exceptions import ClickException

        types.append(ClickException)
    return tuple(types)


def fail(message: str) -> None:
    """Print ``error: message`` (one red line on a terminal) on stderr and exit with status 2."""
    text = " ".join(str(message).split("\n")).strip()
    typer.secho(f"error: {text}", err=True, fg=typer.colors.RED)
    raise SystemExit(USER_ERROR)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``xmtc`` script and ``python -m xmtc``."""
    click_errors = _click_exception_types()
    argv = expand_set_pairs(list(sys.argv[1:] if argv is None else argv))
    try:
        rc = app(args=argv, prog_name="xmtc", standalone_mode=False)
        # typer turns Ctrl-C into Exit(130), which standalone_mode=False *returns*: exit with it, not with 0
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            if rc == 130:
                typer.echo("interrupted", err=True)
            raise SystemExit(rc)
    except (typer.Exit, typer.Abort) as e:
        raise SystemExit(getattr(e, "exit_code", 1)) from None
    except click_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            raise SystemExit(0) from None
        ctx = getattr(e, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        if "unexpected extra argument" in e.format_message() and ctx is not None and ctx.info_name == "train":
            hint = " (every config field is set with --set key=value; see: xmtc train --help)"
        fail(f"{e.format_message()}{hint}")
    except XMTCError as e:
        fail(str(e))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))
    except BrokenPipeError:
        # the reader of stdout went away (xmtc predict ... | head): stop quietly, like other Unix tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as e:  # FileExistsError, a full disk, ...: the system's reason and the file, not a traceback
        fail(f"{e.strerror}: {e.filename}" if e.strerror and e.filename else (e.strerror or str(e)))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None


# serve / explain / report (xmtc.cli_extra), registered last so that ``xmtc --help`` lists them after the others
add_commands(app)
