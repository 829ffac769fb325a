"""Shared helpers of the benchmark scripts: timing, peak memory, subprocess runs, tables, JSON and CSR files,
and the runner of the ``--run NAME [key=value ...]`` scripts (``maacf.py``, ``treaderxml.py``).

Import from a script in ``benchmarks/`` with ``from common import ...`` (the script's folder is on
``sys.path`` when it is run as ``python benchmarks/<script>.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp


class Timer:
    """Wall-clock timer: ``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def _maxrss_mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` in MiB (Linux reports KiB, macOS bytes)."""
    return ru_maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else ru_maxrss / 1024.0


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage(RUSAGE_SELF).ru_maxrss``)."""
    return _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_own_mib() -> float:
    """Peak RSS of this process image only, in MiB: ``VmHWM`` of ``/proc/self/status`` on Linux.

    Unlike ``ru_maxrss``, it does not include the parent's RSS inherited through ``fork`` (Linux carries
    the forked memory's high-water mark over ``exec`` into ``ru_maxrss``). Falls back to
    :func:`peak_rss_mib` where ``/proc`` is unavailable.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return peak_rss_mib()


def current_rss_mib() -> float:
    """Current resident set size of this process in MiB (psutil)."""
    import psutil

    return psutil.Process().memory_info().rss / (1024.0 * 1024.0)


def run_child(cmd: Sequence[str], *, cwd: str | Path | None = None, env: dict[str, str] | None = None,
              log_path: str | Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a subprocess and measure it on its own.

    ``ru_maxrss`` comes from ``os.wait4`` (the rusage of that one child, not of all children); note that on
    Linux it also counts this process's RSS at the time of the fork, so a child should report its own peak
    with :func:`peak_rss_own_mib`.

    Args:
        cmd: the command line.
        cwd: working folder of the child.
        env: environment of the child (default: this process's).
        log_path: file that receives the child's stdout and stderr (default: inherited).

    Returns:
        {"returncode", "seconds" (wall), "ru_maxrss_mib", "user_s", "sys_s"}.
    """
    log = open(log_path, "wb") if log_path is not None else None
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT if log else None)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log is not None:
            log.close()
    return {"returncode": proc.returncode, "seconds": seconds, "ru_maxrss_mib": _maxrss_mib(usage.ru_maxrss),
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; floats are printed as given (format them first), None as an empty cell.

    Args:
        headers: column titles.
        rows: cell values, one sequence per row.
        align: one character per column, ``l`` or ``r`` (default: first column left, the others right).
    """
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as indented JSON (numpy scalars converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    Path(path).write_text(json.dumps(obj, indent=indent, default=default) + "\n", encoding="utf-8")


def write_result(out: str | Path | None, result: Any, table: str) -> None:
    """Write a benchmark's JSON result to ``out`` and its markdown table next to it (``.md``); no-op for None."""
    if out is None:
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_csr(path: str | Path, m: sp.spmatrix) -> None:
    """CSR matrix as ``.npz`` of plain arrays (read back with ``allow_pickle=False``)."""
    m = sp.csr_matrix(m)
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape, dtype=np.int64))


def load_csr(path: str | Path) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as z:
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, OS and library versions: the context a benchmark number needs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "numpy": np.__version__,
                            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except (ImportError, OSError):
        pass
    return info


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name`` (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------------------------
# The runner of the ``--run NAME [key=value ...]`` scripts: every run trains one registered model in a child
# process of the script (``--one I --one-out FILE``), so that its peak RSS is its own.

METRICS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5"]
MODEL_COLUMNS = [("model", "model", "")] + [(m, m, ".2f") for m in METRICS]
TIMING_COLUMNS = [("train s", "train_s", ".0f"), ("predict docs/s", "predict_docs_s", ".0f"),
                  ("peak RSS MiB", "peak_rss_mib", "")]


def runner_parser(description: str, model: str) -> argparse.ArgumentParser:
    """The arguments every ``--run`` script shares; add the script's own, then call :func:`parse_runner_args`.

    Args:
        description: the ``--help`` description.
        model: the script's own model: the default run, and the runs that ``--set`` applies to.
    """
    p = argparse.ArgumentParser(description=description)
    p.set_defaults(own_model=model)
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/test texts")
    p.add_argument("--run", nargs="+", action="append", default=None, metavar="NAME [KEY=VALUE]",
                   help="one model run: a registered model name and its config overrides (repeatable); "
                        f"default: --run {model}")
    p.add_argument("--max-train", type=int, default=None, help="first N training documents (default all)")
    p.add_argument("--max-test", type=int, default=None, help="first N test documents (default all)")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents")
    p.add_argument("--epochs", type=int, default=None, help="epochs for every run (default: the configs')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--set", nargs="*", default=[], help=f"overrides for every {model} run (key=value)")
    return p


def parse_runner_args(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Add ``--out`` (and the internal ``--one``/``--one-out`` of a child run) and parse ``argv``."""
    p.add_argument("--out", type=Path, default=None, help="JSON result file (and a .md table next to it)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run index, JSON to --one-out
    p.add_argument("--one-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.run = args.run or [[args.own_model]]
    return args


def load_splits(args: argparse.Namespace):
    """(train, valid, test) with one label index (built from the first ``max_train`` training documents).

    Validation: the dataset's own ``valid`` split (first ``max_valid`` documents) when it has one, else a
    seeded split of train; never the test split.
    """
    from xmtc.data import find_datasets, load
    from xmtc.data.split import validation_split

    (train,) = load(args.data, ("train",), max_docs=args.max_train)
    found = find_datasets(args.data, max_depth=0)
    if found and "valid" in (found[0].get("splits") or []):
        (valid,) = load(args.data, ("valid",), label_index=train.label_index, max_docs=args.max_valid)
    else:
        fraction = min(0.5, max(args.max_valid / len(train), 1 / len(train)))
        train, valid = validation_split(train, fraction, args.seed, args.max_valid)
    (test,) = load(args.data, ("test",), label_index=train.label_index, max_docs=args.max_test)
    return train, valid, test


def metric_row(label: str, test: Any, top: Any, inv_prop: np.ndarray, **extra: Any) -> dict[str, Any]:
    """A result row: P@1/3/5, nDCG@3/5, PSP@1/3/5 in percent, then ``extra``, then ``peak_rss_mib`` (None
    until :func:`child_result` fills it in)."""
    from xmtc import metrics

    rep = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
    return {"model": label, **{k: round(100 * rep[k], 2) for k in METRICS}, **extra, "peak_rss_mib": None}


@dataclass
class FittedRun:
    """One run of a child process, trained and timed by :func:`fit_run`."""

    name: str  # registered model name
    label: str  # the run as given: name and its own overrides
    config: Any
    model: Any
    train: Any
    valid: Any
    test: Any
    train_s: float
    top: Any  # TopK (n_test, 5)
    predict_s: float
    inv_prop: np.ndarray  # from the training labels

    def row(self, **extra: Any) -> dict[str, Any]:
        """:func:`metric_row` of the run's top-5, with ``extra`` then training seconds, docs/s, epochs run."""
        epochs_run = {tag: r.epochs_run for tag, r in getattr(self.model, "train_results_", {}).items()}
        return metric_row(self.label, self.test, self.top, self.inv_prop, **extra,
                          train_s=round(self.train_s, 1), predict_docs_s=round(len(self.test) / self.predict_s, 1),
                          epochs_run=epochs_run)


def fit_run(args: argparse.Namespace) -> FittedRun:
    """Train run number ``args.one`` on :func:`load_splits` and predict the top 5 of its test documents.

    Overrides, in order: ``--set`` (runs of the script's own model only), the run's own, then ``seed``,
    ``progress=false``, ``threads`` and ``epochs`` where the model's config has them.
    """
    import warnings

    from xmtc import metrics, registry

    warnings.simplefilter("ignore")
    name, *own = args.run[int(args.one)]
    cls = registry.get(name)
    fields = cls.Config.field_names()
    overrides = [*(args.set if name == args.own_model else []), *own]
    if "seed" in fields:
        overrides.append(f"seed={args.seed}")
    if "progress" in fields:
        overrides += ["progress=false", f"threads={args.threads}"]
        if args.epochs is not None:
            overrides.append(f"epochs={args.epochs}")
    cfg = cls.Config().with_overrides(overrides)
    train, valid, test = load_splits(args)
    with Timer() as fit_t:
        model = cls(cfg).fit(train, valid)
    with Timer() as predict_t:
        top = model.predict(test, k=5)
    return FittedRun(name=name, label=" ".join([name, *own]), config=cfg, model=model, train=train, valid=valid,
                     test=test, train_s=fit_t.seconds, top=top, predict_s=predict_t.seconds,
                     inv_prop=metrics.inverse_propensity(train.Y))


def child_result(run: FittedRun, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What a child run reports: its rows (with this process's peak RSS), config, data sizes and ``extra``."""
    peak_mib = round(peak_rss_own_mib())
    for r in rows:
        r["peak_rss_mib"] = peak_mib
    return {"rows": rows, "config": run.config.to_dict(), "n_train": len(run.train), "n_valid": len(run.valid),
            "n_test": len(run.test), "n_labels": run.train.n_labels, **extra}


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """:func:`markdown_table` of result rows; ``columns`` are (header, row key, format spec), and a missing or
    None value is an empty cell."""
    cells = [[None if r.get(key) is None else format(r[key], spec) for _, key, spec in columns] for r in rows]
    return markdown_table([head for head, _, _ in columns], cells)


def run_header(script: str | Path, argv: Sequence[str], machine: bool = False) -> dict[str, Any]:
    """``command`` (as typed from the repository root) and ``date`` of a result file (and ``machine``)."""
    head: dict[str, Any] = {"command": f"python benchmarks/{Path(script).name} " + " ".join(argv),
                            "date": time.strftime("%Y-%m-%d")}
    if machine:
        head["machine"] = machine_info()
    return head


def write_results(path: Path | None, results: dict[str, Any], table: str | None = None) -> None:
    """Write ``results`` to ``path`` as JSON (and ``table`` to the ``.md`` next to it); nothing when None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, results, indent=1)
    if table is not None:
        path.with_suffix(".md").write_text(f"`{results['command']}` ({results['date']})\n\n{table}\n")


def runner_main(script: str | Path, argv: Sequence[str] | None, args: argparse.Namespace,
                run_one: Callable[[argparse.Namespace], dict[str, Any]],
                table: Callable[[list[dict[str, Any]]], str], *, machine: bool = False,
                progress: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Child side (``--one``): ``run_one(args)`` as JSON to ``--one-out``. Parent side: every ``--run`` in its own
    child process of ``script``, the results written to ``--out`` after each run (what has finished is kept
    if a later run is stopped), and the markdown ``table`` of all rows printed and written next to it.

    Args:
        script: the script file (``__file__``), run again for each child.
        argv: the command line (None: ``sys.argv[1:]``).
        args: parsed ``argv`` (:func:`parse_runner_args`).
        run_one: trains and evaluates run ``args.one`` in this process; returns a dict with ``rows``.
        table: markdown table of a list of rows.
        machine: record :func:`machine_info` in the results.
        progress: line printed after each run (default: the last line of its table).
    """
    if args.one is not None:
        write_json(args.one_out, run_one(args), indent=1)
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    results = {**run_header(script, argv, machine), "runs": []}
    rows: list[dict[str, Any]] = []
    for i, run in enumerate(args.run):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "one.json"
            child = run_child([sys.executable, str(script), *argv, "--one", str(i), "--one-out", str(out)])
            if child["returncode"] != 0:
                raise SystemExit(f"run {i} ({' '.join(run)}) failed with exit code {child['returncode']}")
            one = read_json(out)
        results["runs"].append(one)
        rows += one["rows"]
        print(progress(one) if progress else table(one["rows"]).splitlines()[-1], flush=True)
        write_results(args.out, results)
    text = table(rows)
    print(text)
    write_results(args.out, results, text)
