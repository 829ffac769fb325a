"""Shared helpers of the benchmark scripts: timing, peak memory, subprocess runs, tables, JSON and CSR files.

Import from a script in ``benchmarks/`` with ``from common import ...`` (the script's folder is on
``sys.path`` when it is run as ``python benchmarks/<script>.py``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
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


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (numpy scalars converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    Path(path).write_text(json.dumps(obj, indent=2, default=default) + "\n", encoding="utf-8")


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
