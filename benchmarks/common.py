"""Shared helpers of the benchmarks: timing, peak memory, child processes, machine and version facts, seeded
subsets and the train/valid/test splits of a run, JSON and markdown output.

Import as ``from benchmarks.common import ...``; a script run as ``python benchmarks/<script>.py`` first puts
the repository root on ``sys.path`` (see the top of each script).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.allocator import allocator_env

REPO = Path(__file__).resolve().parents[1]


class Timer:
    """Wall and CPU timer: ``with Timer() as t: ...`` then ``t.seconds`` and ``t.cpu_seconds`` (CPU time of
    every thread of this process)."""

    def __enter__(self) -> Timer:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.seconds = self.cpu_seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


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


def child_env() -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH`` (``-m benchmarks.*``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


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


def doc_parser(doc: str, **kw: Any) -> argparse.ArgumentParser:
    """An argument parser whose description is the first paragraph of a script's docstring ``doc`` and whose
    epilog (shown verbatim by ``--help``) is the rest: the usage examples and notes."""
    first, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(description=first, epilog=rest,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any, indent: int = 1) -> None:
    """Write ``obj`` as indented JSON (numpy scalars and arrays, paths converted)."""
    Path(path).write_text(json.dumps(obj, indent=indent, default=_json_default) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_results(path: str | Path | None, results: dict[str, Any], table: str | None = None) -> None:
    """Write a result file (JSON in the schema of :mod:`benchmarks.schema`) and, with ``table``, the markdown
    next to it (``.md``, headed by the command and date); nothing when ``path`` is None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, results)
    if table is not None:
        path.with_suffix(".md").write_text(f"`{results['command']}` ({results['date']})\n\n{table}\n",
                                           encoding="utf-8")


def save_csr(path: str | Path, m: sp.spmatrix) -> None:
    """CSR matrix as ``.npz`` of plain arrays (read back with ``allow_pickle=False``)."""
    m = sp.csr_matrix(m)
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape, dtype=np.int64))


def load_csr(path: str | Path) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as z:
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))


# --------------------------------------------------------------------------------------- machine and versions
def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, OS, GPU and load: the context a benchmark number needs."""
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
    if "torch" in sys.modules:  # never import torch just for this
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name`` (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


VERSIONED = ("xmtc", "numpy", "scipy", "scikit-learn", "torch", "gensim", "omikuji", "libpecos", "napkinxc")


def versions() -> dict[str, str | None]:
    """Python and the installed versions of xmtc and the libraries the benchmarks use."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in VERSIONED}}


def git_commit() -> dict[str, Any] | None:
    """The repository's commit and whether the working tree differs from it (None outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if sha.returncode != 0:
        return None
    return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def with_env(command: str, env: Mapping[str, str] | None = None) -> str:
    """``command`` prefixed with the allocator variables set in ``env`` (default: this process's;
    :func:`xmtc.train.device.allocator_env`), so that a recorded command reruns as it ran."""
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in allocator_env(env).items()), command])


def loop_adam(params, lr: float):
    """``torch.optim.Adam`` over ``params`` as xmtc's training loop builds it (the fused step where it can), with
    the allocator the deep models' fit sets: micro-benchmarks of a step then time what training runs."""
    import torch

    from xmtc.allocator import tune_allocator
    from xmtc.train.device import fusable

    tune_allocator()
    params = list(params)
    return torch.optim.Adam(params, lr=lr, fused=fusable(params) or None)


def result_header(command: str) -> dict[str, Any]:
    """The first keys of a result file: ``command`` (with :func:`with_env`), ``date``, ``machine``, then
    ``versions`` and ``commit``."""
    return {"command": with_env(command), "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
            "versions": versions(), "commit": git_commit()}


# ---------------------------------------------------------------------------------------------- data splits
def timed(fn, *args) -> tuple[Any, float, float]:
    """(``fn(*args)``, process CPU seconds (all threads), wall seconds) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


def seeded_rows(n: int, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted row numbers of a seeded random sample of ``size`` of ``n`` rows, without replacement
    (``np.random.default_rng(seed).choice``); None when ``size`` is None or not below ``n`` (take all)."""
    if size is None or size >= n:
        return None
    if size < 1:
        raise ValueError(f"a subset needs at least 1 document, got {size}")
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def dataset_name(path: str | Path) -> str:
    """The dataset's folder name (``../shared/data/eurlex57k`` -> ``eurlex57k``)."""
    path = Path(path).expanduser().resolve()
    return path.name if path.is_dir() else path.parent.name


def has_split(data: str | Path, split: str) -> bool:
    """Whether the dataset folder has the split (``valid``: its own validation split)."""
    from xmtc.data import find_datasets

    found = find_datasets(data, max_depth=0)
    return bool(found) and split in (found[0].get("splits") or {})


def _labels_of_subset(train: Any) -> Any:
    """``train`` over the labels that occur in it (a subset of a split can miss labels of the full split), so
    that labels without any training document count as unseen gold labels of valid and test."""
    from xmtc.data import LabelIndex

    cols = np.flatnonzero(np.diff(sp.csc_matrix(train.Y).indptr) > 0)
    if len(cols) == train.n_labels:
        return train
    names = train.label_index.names
    Y = sp.csr_matrix(train.Y[:, cols])
    Y.sort_indices()
    return dataclasses.replace(train, Y=Y, label_index=LabelIndex([names[j] for j in cols]))


@dataclasses.dataclass
class Splits:
    """The documents of one run: ``train`` (fitted on), ``valid`` (early stopping; None: the model carves its
    own from train, or needs none) and ``test`` (evaluated once)."""

    train: Any
    valid: Any
    test: Any
    valid_source: str | None  # "valid" (the dataset's own split), "holdout" (of train) or None

    def info(self) -> dict[str, Any]:
        return {"dataset": self.train.name, "n_train": len(self.train),
                "n_valid": None if self.valid is None else len(self.valid), "n_test": len(self.test),
                "n_labels": self.train.n_labels, "valid_source": self.valid_source,
                "test_unseen_gold": int(self.test.unseen.sum())}


def load_splits(data: str | Path, *, seed: int = 0, max_train: int | None = None, max_test: int | None = None,
                max_valid: int | None = None, valid: str = "none", holdout_fraction: float = 0.05,
                holdout_max: int | None = 2000, max_tokens: int | None = None) -> Splits:
    """Load a dataset folder's train and test splits (and validation documents) for one run.

    Subsets are seeded random samples (:func:`seeded_rows`, the same ``seed`` for every split), never the first
    N documents. The label index comes from the training documents used (labels of the whole train split when
    ``max_train`` is None, else those occurring in the sample); gold labels outside it count as misses.

    Args:
        data: dataset folder.
        seed: seed of the samples and of the hold-out.
        max_train, max_test: sample sizes of the train and test splits (None: all).
        max_valid: sample size of the validation documents (None: all of the valid split; a hold-out of
            ``holdout_fraction`` of train, at most ``holdout_max``).
        valid: ``"valid"`` the dataset's own valid split, ``"holdout"`` a seeded hold-out of the training
            documents (:func:`xmtc.data.validation_split`), ``"none"`` no validation documents. Never test.
        holdout_fraction, holdout_max: size of a hold-out without ``max_valid``.
        max_tokens: keep only the first N word tokens of every document of every split (the tokens of
            :func:`xmtc.text.tokenize`, joined by spaces), so that the sparse peers see the same words as a
            network with ``max_len=N`` (None: whole documents).
    """
    from xmtc.data import load, validation_split

    (train,) = load(data, ("train",))
    rows = seeded_rows(len(train), max_train, seed)
    if rows is not None:
        train = _labels_of_subset(train.subset(rows, split="train"))
    (test,) = load(data, ("test",), label_index=train.label_index)
    rows = seeded_rows(len(test), max_test, seed)
    test = test if rows is None else test.subset(rows, split="test")
    valid_set = None
    if valid == "valid":
        (valid_set,) = load(data, ("valid",), label_index=train.label_index)
        rows = seeded_rows(len(valid_set), max_valid, seed)
        valid_set = valid_set if rows is None else valid_set.subset(rows, split="valid")
    elif valid == "holdout":
        n = len(train)
        fraction = min(0.5, max(max_valid / n, 1 / n)) if max_valid else holdout_fraction
        train, valid_set = validation_split(train, fraction, seed, max_valid or holdout_max)
    elif valid != "none":
        raise ValueError(f"valid must be 'valid', 'holdout' or 'none', got {valid!r}")
    if max_tokens is not None:
        train, test = truncate_tokens(train, max_tokens), truncate_tokens(test, max_tokens)
        valid_set = None if valid_set is None else truncate_tokens(valid_set, max_tokens)
    return Splits(train=train, valid=valid_set, test=test, valid_source=None if valid == "none" else valid)


def truncate_tokens(ds: Any, n: int) -> Any:
    """``ds`` with each text cut to its first ``n`` word tokens (the tokenizer every model uses)."""
    import dataclasses

    from xmtc.text import tokenize_all

    if n <= 0:
        raise ValueError(f"max_tokens must be positive, got {n}")
    if ds.texts is None:
        raise ValueError(f"{ds.name} {ds.split}: max_tokens needs raw texts (this dataset has features only)")
    return dataclasses.replace(ds, texts=[" ".join(t[:n]) for t in tokenize_all(ds.texts)])


# --------------------------------------------------------------------------------------- training stage times
def time_stages() -> dict[str, dict[str, float]]:
    """Record wall and CPU seconds of every call of xmtc's training loop, by its ``tag``.

    Wraps ``train_loop`` wherever an imported ``xmtc`` module holds it (import the model class first). CPU
    seconds show a stage's cost even when other jobs share the cores. Returns the dict that fills up.
    """
    times: dict[str, dict[str, float]] = {}
    try:
        from xmtc.train import train_loop as original
    except ImportError:
        return times

    def timed(*args: Any, **kw: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = original(*args, **kw)
        times[kw.get("tag", "model")] = {"stage_wall_s": round(time.perf_counter() - wall, 1),
                                         "stage_cpu_s": round(time.process_time() - cpu, 1)}
        return result

    for name, module in list(sys.modules.items()):
        if name.startswith("xmtc") and getattr(module, "train_loop", None) is original:
            module.train_loop = timed
    return times


def import_first(modules: Sequence[str], attr: str) -> Any:
    """``attr`` of the first of ``modules`` that imports and has it (for names that moved between modules)."""
    import importlib

    for name in modules:
        try:
            return getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {list(modules)} provides {attr!r}")
