"""Label sets on the command line: ``xmtc tune`` (choose a decision rule on validation and save it with the
model), and the helpers ``xmtc train --tune``, ``xmtc predict --sets`` and ``xmtc evaluate`` use.

Which documents a rule is tuned on (:func:`validation_for`), never the test split:

1. the seeded hold-out of train that ``xmtc train --tune`` recorded in ``run.json`` (``holdout``);
2. else the dataset's own validation split (``valid``), unless the run chose ``--valid-split none`` and the
   model held out part of train itself;
3. else the hold-out the model used for early stopping (deep models: ``valid_fraction``, ``valid_max_docs``,
   ``seed`` of its config, :func:`xmtc.data.split.validation_split`);
4. else an error: the model saw all of train and there is nothing held out.

This module never imports :mod:`xmtc.cli` (``xmtc.cli_extra`` registers :func:`tune` on the app).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional  # noqa: UP035  (typer needs Optional on py3.10 annotations)

import numpy as np
import typer

from xmtc.errors import ConfigError, DataError, XMTCError
from xmtc.runs import MODEL_DIR, RUN_FILE, read_run, resolve_model_dir

__all__ = [
    "format_sets", "format_tuning", "holdout_for", "sets_report", "tune", "tune_after_training", "tune_and_save",
    "validation_for", "write_set_rows",
]

HOLDOUT_FRACTION = 0.1  # share of train ``xmtc train --tune`` holds out for models without their own hold-out
HOLDOUT_MAX_DOCS = 10_000
DEFAULT_DEPTH = 100


def _info(message: str) -> None:
    typer.echo(message, err=True)


def _run_dir(run: Path) -> Path | None:
    """The run folder of ``run`` (a run folder or the model folder inside one), None for a bare model folder."""
    run = run.expanduser()
    if (run / RUN_FILE).is_file():
        return run
    if run.name == MODEL_DIR and (run.parent / RUN_FILE).is_file():
        return run.parent
    return None


def available_splits(data: Path) -> list[str]:
    """Split names of a dataset folder, found from the file names alone (no file is opened)."""
    from xmtc.data import detect_layout
    from xmtc.data.io import _available

    if not data.exists():
        raise DataError(f"{data}: no such dataset folder or file")
    if data.is_file():
        return []
    return _available(data, detect_layout(data))


def _load(data: Path, splits: list[str], label_index) -> dict[str, Any]:
    from xmtc.data import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load(data, splits=tuple(splits), label_index=label_index)
    return dict(zip(splits, loaded, strict=True))


def holdout_for(cfg) -> dict[str, Any]:
    """The hold-out ``xmtc train --tune`` takes from train when the dataset has no valid split: the model's own
    (``valid_fraction``, ``valid_max_docs``, ``seed``) when its config has one, else 10% (at most 10,000 docs)."""
    fraction = getattr(cfg, "valid_fraction", None)
    if isinstance(fraction, float):
        return {"fraction": fraction, "seed": int(getattr(cfg, "seed", 0)),
                "max_docs": getattr(cfg, "valid_max_docs", None)}
    return {"fraction": HOLDOUT_FRACTION, "seed": int(getattr(cfg, "seed", 0)), "max_docs": HOLDOUT_MAX_DOCS}


def members_validation(members: list[Path]) -> dict[str, Any]:
    """What ``xmtc ensemble`` records in its ``run.json`` so that ``xmtc tune`` finds documents no member trained
    on: ``data`` when every member's run names the same dataset, and ``member_holdouts`` when every member also
    held out a seeded share of train (``xmtc train --tune``): their intersection is held out from all."""
    infos = []
    for m in members:
        run_dir = _run_dir(m)
        infos.append(read_run(run_dir) if run_dir is not None else None)
    datas = {str(Path(i["data"]).expanduser().resolve()) if i and i.get("data") else None for i in infos}
    if len(datas) != 1 or None in datas:
        return {"data": None}
    out: dict[str, Any] = {"data": datas.pop()}
    holdouts = [i.get("holdout") for i in infos]
    if all(isinstance(h, dict) for h in holdouts):
        out["member_holdouts"] = holdouts
    return out


def _members_holdout(data: Path, holdouts: list[dict[str, Any]], label_index) -> tuple[Any, str]:
    """The training documents held out by every member (the intersection of their seeded hold-outs)."""
    from xmtc.data.split import holdout_rows

    train = _load(data, ["train"], label_index)["train"]
    rows = None
    for h in holdouts:
        held = holdout_rows(len(train), float(h["fraction"]), int(h["seed"]), h.get("max_docs"))[1]
        rows = held if rows is None else np.intersect1d(rows, held)
    if rows is None or rows.size == 0:
        raise XMTCError(f"{data}: the members' hold-outs of train share no document, so there is nothing held "
                        "out from all of them to tune on; retrain the members with the same seed")
    return train.subset(rows, split="valid"), (f"the training documents every member held out ({len(holdouts)} "
                                               f"seeded hold-outs recorded in {RUN_FILE}): {rows.size} docs")


def validation_for(run: Path, data: Path | None, model) -> tuple[Any, str, Path]:
    """(validation Dataset, a description of where it comes from, dataset path) for tuning ``model`` of ``run``.

    The test split is never read (see the module docstring for the order of the sources).
    """
    from xmtc.data import canonical_split, validation_split

    run_dir = _run_dir(run)
    info = read_run(run_dir) if run_dir is not None else None
    if data is None:
        if not info or not info.get("data"):
            raise XMTCError(f"{run}: no dataset recorded for this model; give --data DIR")
        data = Path(info["data"])
    data = data.expanduser()
    splits = available_splits(data)
    if "train" not in splits and data.is_dir():
        raise DataError(f"{data}: no train split (found: {', '.join(splits) or 'none'})")
    member_holdouts = (info or {}).get("member_holdouts")
    if isinstance(member_holdouts, list) and member_holdouts and "valid" not in splits:
        valid, source = _members_holdout(data, member_holdouts, model.label_index_)
        return valid, source, data
    holdout = (info or {}).get("holdout")
    valid_split = str((info or {}).get("valid_split", "valid"))
    cfg = model.config
    own = isinstance(getattr(cfg, "valid_fraction", None), float)
    if isinstance(holdout, dict):
        train = _load(data, ["train"], model.label_index_)["train"]
        _, valid = validation_split(train, float(holdout["fraction"]), int(holdout["seed"]), holdout.get("max_docs"))
        return valid, (f"the seeded hold-out of train recorded in {RUN_FILE} (fraction {holdout['fraction']}, "
                       f"seed {holdout['seed']}): {len(valid)} docs"), data
    vname = None
    if valid_split.lower() != "none":
        vname = canonical_split(valid_split)
        if vname == "test":
            raise ConfigError("the test split is never used to tune a decision rule")
        vname = vname if vname in splits else None
    elif not own and "valid" in splits:  # the model held nothing out and never saw the valid split
        vname = "valid"
    if vname is not None:
        valid = _load(data, [vname], model.label_index_)[vname]
        return valid, f"dataset split '{vname}': {len(valid)} docs", data
    if own:
        train = _load(data, ["train"], model.label_index_)["train"]
        _, valid = validation_split(train, cfg.valid_fraction, cfg.seed, cfg.valid_max_docs)
        return valid, (f"the hold-out of train the model used for early stopping (valid_fraction "
                       f"{cfg.valid_fraction}, seed {cfg.seed}): {len(valid)} docs"), data
    raise XMTCError(f"{data} has no valid split and the {model.name} model was trained on all of its train split, "
                    "so there are no held-out documents to tune on; retrain with xmtc train --tune (it holds "
                    "out a seeded share of train), or use a dataset with a valid split")


def tune_and_save(model, valid, folder: Path, metric: str = "micro-F1", depth: int = DEFAULT_DEPTH,
                  source: str = "", data: Path | None = None, calibration: str = "none"):
    """Predict the top-``depth`` of ``valid``, :func:`xmtc.decision.tune` a rule, save it in model ``folder``
    (``decision.json``, checksummed in ``meta.json``) and set ``model.decision_``. Returns the TuneResult."""
    from xmtc.decision import tune as tune_rule
    from xmtc.models.base import save_decision

    if depth <= 0:
        raise XMTCError(f"--k must be a positive integer, but is {depth}")
    depth = min(depth, len(model.label_index_))
    with contextlib.redirect_stdout(sys.stderr):
        top = model.predict(valid, k=depth)
    result = tune_rule(valid.Y, top, metric, n_gold=valid.n_gold(), n_unseen_labels=len(valid.unseen_labels),
                       calibration=calibration)
    tuning = {**result.to_dict(), "validation": source, "depth": depth,
              "data": str(data) if data is not None else None, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_decision(folder, result.rule, tuning)
    model.decision_, model.decision_info_ = result.rule, tuning
    return result


def format_tuning(result) -> str:
    """The rules tried (best of each kind) and the chosen one, as lines of text."""
    lines = [f"{'rule':<16}{'valid':>8}{'2-fold':>8}  parameters"]
    for kind, c in result.by_kind.items():
        mark = " <- chosen" if c.rule == result.rule else ""
        cv = f"{100 * c.cv:8.2f}" if c.cv is not None else f"{'-':>8}"
        lines.append(f"{kind:<16}{100 * c.score:8.2f}{cv}  {c.rule.describe()}{mark}")
    return "\n".join(lines)


def tune(
    run: Path = typer.Argument(..., help="Run folder from xmtc train (or a model folder)."),
    data: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--data", "-d", help="Dataset folder (default: the run's dataset)."),
    metric: str = typer.Option("micro-F1", "--metric", help="What the rule maximises: micro-F1, macro-F1 or "
                               "example-F1."),
    k: int = typer.Option(DEFAULT_DEPTH, "--k", "-k", help="Candidates per document the rules choose from."),
    calibrate: str = typer.Option("none", "--calibrate", help="Map the scores to probabilities first, fitted on "
                                  "the same validation documents: none, isotonic or platt (see docs/MODELS.md, "
                                  "'Scores and decision rules')."),
    as_json: bool = typer.Option(False, "--json", help="Print the tuning result as one JSON object."),
    decoding: bool = typer.Option(False, "--decoding", help="Instead of a decision rule: choose the beam width "
                                  "and the leaf gamma (score = p_label * p_parent ** gamma) of a label-tree model "
                                  "(attentionxml, lightattention) on the same validation documents, by the "
                                  "model's select_metric, and save them with the model."),
    beams: str = typer.Option("", "--beams", help="With --decoding: comma-separated beam widths to try "
                              "(default: the model's beam, 1.5x and 2x it)."),
) -> None:
    """Choose a decision rule (which labels form each document's set) on the validation split and save it.

    Tries top-k, a global score threshold, top-k + threshold and per-label thresholds (labels with fewer than
    5 validation documents back off to the global threshold), each threshold rule with and without "at least
    one label"; the kind is chosen by 2-fold cross-validation inside the validation split, its parameters on
    the whole split. The validation documents are the dataset's valid split or the seeded hold-out of train
    the model used; the test split is never read. The rule is saved as decision.json in the model folder and
    used by xmtc predict --sets, xmtc evaluate, POST /predict {"mode": "sets"} and model.predict_sets().

    Examples:

      xmtc tune runs/demo --data ../shared/data/eurlex57k

      xmtc tune runs/demo --metric macro-F1 --k 50

      xmtc tune runs/demo --calibrate isotonic

    With --decoding, choose how a label-tree model searches its tree instead (beam width, leaf gamma), e.g.
    for a model trained with the paper's product (level_gamma=1):

      xmtc tune runs/ax --decoding --beams 8,12,16
    """
    from xmtc.calibration import CALIBRATIONS
    from xmtc.decision import METRICS
    from xmtc.registry import load

    if metric not in METRICS:
        raise XMTCError(f"--metric must be one of {', '.join(METRICS)}, but is {metric!r}")
    if calibrate not in CALIBRATIONS:
        raise XMTCError(f"--calibrate must be one of {', '.join(CALIBRATIONS)}, but is {calibrate!r}")
    folder = resolve_model_dir(run)
    model = load(folder)
    if decoding:
        _tune_decoding(model, run, data, folder, beams, as_json)
        return
    valid, source, data = validation_for(run, data, model)
    _info(f"tuning a decision rule for {metric} on {source}")
    result = tune_and_save(model, valid, folder, metric, k, source, data, calibrate)
    if as_json:
        typer.echo(json.dumps({"rule": result.rule.to_dict(), **model.decision_info_}))
        return
    typer.echo(format_tuning(result))
    typer.echo(f"chosen: {result.rule.describe()} (validation {metric} {100 * result.score:.2f}); "
               f"saved to {folder / 'decision.json'}")


def _tune_decoding(model, run: Path, data: Path | None, folder: Path, beams: str, as_json: bool) -> None:
    """``xmtc tune --decoding``: the beam width and leaf gamma chosen on validation, saved with the model."""
    if not hasattr(model, "has_tree_decoding") or not model.has_tree_decoding():
        raise XMTCError(f"{folder}: a {model.name} model does not search a label tree; --decoding applies to "
                        "attentionxml (with a tree) and lightattention models")
    try:
        widths = [int(b) for b in beams.split(",")] if beams.strip() else \
            sorted({model.beam_, (3 * model.beam_ + 1) // 2, 2 * model.beam_})
    except ValueError:
        raise XMTCError(f"--beams must be comma-separated integers, e.g. 8,12,16, but is {beams!r}") from None
    valid, source, _ = validation_for(run, data, model)
    metric = model.config.select_metric
    _info(f"choosing the beam width and leaf gamma for {metric} on {source}")
    before = (model.beam_, model.gamma_)
    with contextlib.redirect_stdout(sys.stderr):
        scores = model.tune_decoding(valid, widths)
    model.save(folder)
    if as_json:
        typer.echo(json.dumps({"beam": model.beam_, "level_gamma": model.gamma_, "metric": metric,
                               "validation": source, "n_docs": len(valid), "scores": scores}))
        return
    for pair, score in scores.items():
        typer.echo(f"{pair:>24}  {metric} {100 * score:.2f}")
    typer.echo(f"chosen: beam {model.beam_}, gamma {model.gamma_} (was beam {before[0]}, gamma {before[1]}; "
               f"validation {metric} {100 * max(scores.values()):.2f}); saved to {folder}")
    if getattr(model, "decision_", None) is not None:
        typer.echo("note: the saved decision rule was tuned on the earlier decoding's scores; run xmtc tune "
                   "again to re-tune it")


# ------------------------------------------------------------------------------------------- evaluate / predict
def sets_report(model, ds, train=None) -> dict[str, Any] | None:
    """Set metrics of ``model``'s saved rule on ``ds`` (None when the model has none): micro/macro/example F1,
    precision, recall, by training-frequency group (with ``train``) and the ECE of the candidates' scores."""
    from xmtc.decision import CalibratedRule, to_sets
    from xmtc.label_metrics import label_counts
    from xmtc.set_metrics import f1_by_frequency, set_report, topk_calibration

    rule = getattr(model, "decision_", None)
    if rule is None:
        return None
    with contextlib.redirect_stdout(sys.stderr):
        top = model.predict(ds, k=rule.depth)
    P = to_sets(top, rule).to_csr()
    n_unseen = len(ds.unseen_labels)
    out: dict[str, Any] = {"rule": rule.to_dict(), "rule_text": rule.describe(),
                           "tuned_for": (getattr(model, "decision_info_", None) or {}).get("metric")}
    out.update(set_report(ds.Y, P, n_gold=ds.n_gold(), n_unseen_labels=n_unseen))
    if train is not None:
        out["by_frequency"] = f1_by_frequency(ds.Y, P, label_counts(train.Y), unseen=ds.unseen,
                                              n_unseen_labels=n_unseen)
    out["ECE"] = topk_calibration(ds.Y, top)[0]
    if isinstance(rule, CalibratedRule):
        out["ECE_calibrated"] = topk_calibration(ds.Y, rule.calibrate(top))[0]
    return _no_nan(out)


def _no_nan(value: Any) -> Any:
    """NaN (an empty group) as None, so that the report is standard JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    return None if isinstance(value, float) and value != value else value


def format_sets(rep: dict[str, Any]) -> str:
    """A small table of :func:`sets_report` (percent)."""
    def pct(v: float | None) -> str:
        return f"{100 * v:>11.2f}" if v is not None else f"{'n/a':>11}"

    tuned = f", tuned for {rep['tuned_for']}" if rep.get("tuned_for") else ""
    lines = [f"label sets ({rep['rule_text']}{tuned}):",
             f"{'':<10}" + "".join(f"{h:>11}" for h in ("micro-F1", "macro-F1", "example-F1", "precision", "recall")),
             f"{'all':<10}" + "".join(pct(rep[m]) for m in ("micro-F1", "macro-F1", "example-F1", "precision",
                                                             "recall"))]
    for group, g in (rep.get("by_frequency") or {}).items():
        lines.append(f"{group:<10}{pct(g['micro-F1'])}{pct(g['macro-F1'])}   ({g['n_labels']} labels)")
    ece = f"{rep['ECE']:.3f}" if rep.get("ECE") is not None else "n/a"
    if rep.get("ECE_calibrated") is not None:
        ece += f" (calibrated: {rep['ECE_calibrated']:.3f})"
    rule = rep["rule"].get("base", rep["rule"])
    lines.append(f"mean set size {rep['mean_set_size']:.2f}, empty sets {rep['empty_sets']}, "
                 f"ECE of the top-{rule.get('depth', rule.get('k'))} scores {ece}")
    return "\n".join(lines)


def write_set_rows(model, chunk: list[tuple[str, Any]], sink) -> int:
    """Write one JSONL row {"id"?, "labels", "scores"} per (text, id) of ``chunk``: the saved rule's set
    (``xmtc predict --sets``). Returns the number of rows."""
    names = model.label_index_.names
    with contextlib.redirect_stdout(sys.stderr):
        sets = model.predict_sets([text for text, _ in chunk])
    for (_, doc_id), ids, scores in zip(chunk, sets.indices, sets.scores, strict=True):
        row: dict[str, Any] = {} if doc_id is None else {"id": doc_id}
        row["labels"] = [names[i] for i in ids]
        row["scores"] = [round(float(s), 6) for s in scores]
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(chunk)


def tune_after_training(model, valid, folder: Path, vname: str | None, holdout: dict | None,
                        data: Path) -> str:
    """``xmtc train --tune``: tune a micro-F1 rule on the run's validation documents (the dataset's split or the
    hold-out of train ``holdout_for`` gave); returns its table."""
    if holdout is not None:
        source = (f"the seeded hold-out of train recorded in {RUN_FILE} (fraction {holdout['fraction']}, seed "
                  f"{holdout['seed']}): {len(valid)} docs")
    else:
        source = f"dataset split '{vname}': {len(valid)} docs"
    result = tune_and_save(model, valid, folder, "micro-F1", DEFAULT_DEPTH, source, data)
    return (f"decision rule tuned for micro-F1 on {source}:\n{format_tuning(result)}\n"
            f"chosen: {result.rule.describe()}; saved to {folder / 'decision.json'}")
