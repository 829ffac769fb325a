"""Progress output that suits where it goes: a live bar on a terminal, plain lines in a log file.

On a terminal (stderr is a TTY) :func:`progress` is a tqdm bar. Anywhere else (a log file, CI, ``nohup``, a
pipe) it writes one plain line every :data:`INTERVAL` seconds and one when the loop ends, never ``\\r``
updates: a 30-minute run writes a few dozen short lines instead of one multi-megabyte line.

:class:`CarriageReturnFilter` does the same for output of other programs that draws bars with ``\\r`` (omikuji's
progress bars): it keeps the final state of each bar, complete lines, and the current state every
:data:`INTERVAL` seconds.

``TQDM_DISABLE=1`` in the environment turns both kinds of progress output off.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

INTERVAL = 30.0  # seconds between two plain progress lines


def is_terminal(stream: IO | None = None) -> bool:
    """Whether ``stream`` (default: ``sys.stderr``) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def disabled_by_env() -> bool:
    """``TQDM_DISABLE`` set to a true value (tqdm's own switch) turns progress output off."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s"


def epoch_summary(record: dict[str, Any], metric: str, n_epochs: int, *, swa: bool = False,
                  stopped: bool = False) -> str:
    """The one line the training loop prints after an epoch (terminal and log file alike), e.g.
    ``level-1 epoch 2/5: train loss 0.0281, valid nDCG@5 88.80 (best 88.80), SWA weights, 8m53s``.

    Args:
        record: the epoch's history record (``tag``, ``epoch``, ``train_loss``, ``valid_<metric>``, ``best``,
            ``epoch_seconds``; a missing or None score is left out).
        metric: the selection metric (``P@1``, ``nDCG@5``, ``recall``...); scores are fractions, shown in %.
        n_epochs: the epoch budget.
        swa: the score is that of the averaged (SWA) weights.
        stopped: early stopping ends the stage here.
    """
    parts = []
    if record.get("train_loss") is not None:
        parts.append(f"train loss {record['train_loss']:.4f}")
    score = record.get(f"valid_{metric}")
    if score is not None:
        best = record.get("best")
        parts.append(f"valid {metric} {100 * score:.2f}" + (f" (best {100 * best:.2f})" if best is not None else ""))
    if swa:
        parts.append("SWA weights")
    parts.append(format_duration(record.get("epoch_seconds") or 0.0))
    return (f"{record.get('tag', 'train')} epoch {record['epoch']}/{n_epochs}: " + ", ".join(parts)
            + ("; early stop" if stopped else ""))


class PlainProgress:
    """An iterable wrapper that logs ``desc: n/total (pct%) elapsed, rate [postfix]`` every ``interval`` seconds
    and once at the end (``done``, or ``stopped`` when the loop left early). tqdm-compatible where the training
    loop needs it: ``set_postfix``, ``set_postfix_str``, ``update``, ``close``, ``write``."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", *,
                 interval: float = INTERVAL, stream: IO | None = None, unit: str = "it",
                 clock: Callable[[], float] = time.monotonic):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.interval, self.unit = total, desc, interval, unit
        self.stream, self.clock = stream, clock
        self.n = 0
        self.postfix = ""
        self.start = self.last = clock()
        self.closed = False

    # ---------------------------------------------------------------- tqdm-like interface
    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._line("")

    def write(self, s: str) -> None:
        self._emit(s)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        finished = self.total is None or self.n >= self.total
        self._line("done" if finished else "stopped")

    # ---------------------------------------------------------------- output
    def _line(self, state: str) -> None:
        elapsed = self.clock() - self.start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = f", {self.n / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.n else ""
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        word = f"{state} " if state else ""
        self._emit(f"{head}{word}{count} {self.unit}{pct} in {format_duration(elapsed)}{rate}{tail}")

    def _emit(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):  # a closed stream must not stop training
            pass


class _Silent(PlainProgress):
    def _emit(self, text: str) -> None:
        pass


def progress(iterable: Iterable, total: int | None = None, desc: str = "", *, enabled: bool = True,
             interval: float = INTERVAL, stream: IO | None = None, leave: bool = False, unit: str = "it"):
    """Wrap ``iterable`` with progress output on ``stream`` (default: stderr).

    Args:
        iterable: what the loop iterates.
        total: its length (None: ``len(iterable)`` when it has one).
        desc: the label of the bar / the lines (e.g. ``"model epoch 3/10"``).
        enabled: False returns ``iterable`` itself (no output).
        interval: seconds between plain lines when ``stream`` is not a terminal.
        stream: where to write (default: ``sys.stderr``).
        leave: keep the finished bar on a terminal (tqdm's ``leave``).
        unit: what one step is called (``batch``, ``doc``...).

    Returns:
        a tqdm bar when ``stream`` is a terminal, else a :class:`PlainProgress`; both support ``set_postfix``.
    """
    if not enabled:
        return iterable
    if disabled_by_env():
        return _Silent(iterable, total, desc, interval=interval, stream=stream, unit=unit)
    if is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=leave, dynamic_ncols=True, mininterval=1.0,
                    file=stream, unit=unit)
    return PlainProgress(iterable, total, desc, interval=interval, stream=stream, unit=unit)


# --------------------------------------------------------------------------- \r-drawn bars of other programs
_KEY = re.compile(rb"^\D*")  # the label of a bar state: what comes before its first number


class CarriageReturnFilter:
    """Turn output that redraws bars with ``\\r`` into plain lines.

    Feed it bytes (:meth:`feed`), call :meth:`tick` now and then and :meth:`finish` at the end; ``write``
    receives whole lines (bytes ending in ``\\n``). Kept: every ``\\n``-terminated line, the final state of
    each bar (the last state before a bar with another label starts, or before the output ends), and the
    current state once per ``interval`` seconds while a bar runs.
    """

    def __init__(self, write: Callable[[bytes], Any], interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic, line_start: re.Pattern[bytes] | None = None):
        self.write, self.interval, self.clock = write, interval, clock
        self.line_start = line_start  # where a log line written right after a bar state begins (a timestamp)
        self.buf = b""
        self.pending = b""  # the latest complete bar state (terminated by the next \r)
        self.pending_shown = True
        self.last_shown = b""
        self.last_time = clock()
        self.lines: list[bytes] = []  # everything written, for error messages (last lines)

    def _show(self, text: bytes) -> None:
        text = text.strip()
        if text and text != self.last_shown:
            self.last_shown = text
            self.lines = [*self.lines[-49:], text]
            self.write(text + b"\n")

    def _state(self, state: bytes) -> None:
        if not state.strip():
            return
        if self.pending and not self.pending_shown and _KEY.match(self.pending)[0] != _KEY.match(state)[0]:
            self._show(self.pending)  # another bar starts: the previous one's final state
        self.pending, self.pending_shown = state, False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            cut = min((i for i in (self.buf.find(b"\r"), self.buf.find(b"\n")) if i >= 0), default=-1)
            if cut < 0:
                break
            piece, sep, self.buf = self.buf[:cut], self.buf[cut:cut + 1], self.buf[cut + 1:]
            if sep == b"\r":
                self._state(piece)
            else:
                glued = self.line_start.search(piece, 1) if self.line_start is not None else None
                if glued is not None:  # "<bar state><log line>\n": the state, then the line
                    self._state(piece[:glued.start()])
                    piece = piece[glued.start():]
                elif self.pending and _KEY.match(self.pending)[0] == _KEY.match(piece)[0]:
                    self.pending_shown = True  # the line is the bar's final state: the pending one is older
                if self.pending and not self.pending_shown:
                    self._show(self.pending)
                    self.pending_shown = True
                self._show(piece)
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        if now - self.last_time < self.interval:
            return
        self.last_time = now
        current = self.buf if self.buf.strip() else (self.pending if not self.pending_shown else b"")
        if current.strip():
            self._show(current)
            if current is self.pending:
                self.pending_shown = True

    def finish(self) -> None:
        self._state(self.buf)
        self.buf = b""
        if self.pending and not self.pending_shown:
            self._show(self.pending)
            self.pending_shown = True
