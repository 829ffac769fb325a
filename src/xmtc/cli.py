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
import dataclasses
import os
import sys
import time
from pathlib import Path

import typer

from xmtc.cli_checks import (
    MAX_UNKNOWN_SHARE,
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
from xmtc.cli_common import (
    add_sets,
    check_k,
    evaluate_model,
    info,
    load_splits,
    notes,
    print_report,
    splits_of,
    unseen_summary,
    version,
)
from xmtc.cli_extra import add_commands
from xmtc.cli_info import add_commands as add_info_commands
from xmtc.cli_predict import add_commands as add_predict_commands
from xmtc.errors import ConfigError, DataError, XMTCError
from xmtc.runs import (
    MODEL_DIR,
    RUN_FILE,
    STATUS_DONE,
    STATUS_TRAINING,
    TEST_REPORT,
    is_finished,
    model_dir,
    read_run,
    write_json,
)

USER_ERROR = 2

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

    check_k(k)
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
        recorded_cfg = dict(run["config"])
        if "fused_optimizer" in {f.name for f in dataclasses.fields(cls.Config)}:  # a run begun before 2026-12-07
            recorded_cfg.setdefault("fused_optimizer", False)                     # goes on as it began
        saved = cls.Config.from_dict(recorded_cfg, source=str(out / RUN_FILE))
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

    available = splits_of(data)
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
    ds = load_splits(data, wanted)
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
               "xmtc": version(), **({"holdout": holdout} if holdout is not None else {})}
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
            with notes():
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
    result = evaluate_model(fitted, test_ds, k, metrics.inverse_propensity(train_ds.Y))
    result.update(unseen_summary(test_ds))
    sets_text = add_sets(result, fitted, test_ds, train_ds)
    write_json(out / TEST_REPORT, result)
    shown = {m: v for m, v in result.items() if not m.startswith(("unseen", "docs_with", "sets"))}
    print_report(shown, test_ds, "test")
    if sets_text:
        typer.echo(sets_text)
    typer.echo(f"report saved to {out / TEST_REPORT}")


# --------------------------------------------------------------------------------------------- predict, configs
# predict / evaluate (xmtc.cli_predict) and print-config / models / datasets (xmtc.cli_info), registered here so
# that ``xmtc --help`` lists the commands in the order of a workflow
add_predict_commands(app)
add_info_commands(app)


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
                                "xmtc": version(), **members_validation([m.expanduser() for m in members])})
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
