"""The one way xmtc reads text lines: every data reader, the ``predict`` input and word-vector files use it.

Rules (the same for files, ``.gz`` files and standard input):

- bytes are split on ``\\n`` only; one trailing ``\\r`` of each line is stripped (so ``\\r\\n`` files read like
  ``\\n`` files); a lone ``\\r`` inside a line is part of the text (universal-newline text mode would split the
  line there, and the rows of a ``predict`` output would no longer match the input lines);
- a final newline adds no line; a UTF-8 byte order mark at the start is dropped;
- the text must be UTF-8: other bytes raise :class:`~xmtc.errors.DataError` naming the file, line, column and
  byte offset (never a silent replacement, on standard input neither);
- a truncated or corrupt ``.gz`` file raises :class:`~xmtc.errors.DataError` naming the file and the line where
  reading stopped.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from xmtc.errors import DataError

Source = str | Path | IO

_BOM = "\ufeff"
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (OSError, EOFError, zlib.error)


def source_name(source: Source, name: str | None = None) -> str:
    """How messages name ``source``: ``name`` if given, the path, ``<stdin>`` or the stream's name."""
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    stream_name = getattr(source, "name", None)
    if stream_name in (0, "<stdin>") or source is sys.stdin or source is getattr(sys.stdin, "buffer", None):
        return "<stdin>"
    return str(stream_name) if isinstance(stream_name, str) else "<stream>"


def _open_path(path: Path):
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None


def _binary(source: IO):
    """The binary stream under ``source`` (``sys.stdin`` -> ``sys.stdin.buffer``), or None for a pure text
    stream such as ``io.StringIO``."""
    if isinstance(source, io.TextIOBase) or hasattr(source, "encoding"):
        return getattr(source, "buffer", None)
    return source


def _decode_error(name: str, raw: bytes, lineno: int, offset: int, e: UnicodeDecodeError, hint: str) -> DataError:
    bad = raw[e.start : e.start + 4]
    where = f"{name}:{lineno}"
    if offset == 0 and raw.startswith(_GZIP_MAGIC):
        why = "the data is gzip-compressed; name the file *.gz (or decompress it)"
    else:
        why = hint or "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    return DataError(
        f"{where}: not valid UTF-8 (bytes {bad!r} at column {e.start + 1}, byte offset {offset + e.start}); {why}"
    )


def _decode(raw: bytes, name: str, lineno: int, offset: int, hint: str) -> str:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _decode_error(name, raw, lineno, offset, e, hint) from None
    if lineno == 1 and text.startswith(_BOM):
        text = text[1:]
    return text


def _truncated(name: str, lineno: int, offset: int, e: Exception) -> DataError:
    return DataError(
        f"{name}:{lineno}: cannot read line {lineno} (byte offset {offset} of the decompressed data): {e}; "
        f"the file is truncated or corrupt (re-download or re-compress it)"
    )


def iter_lines(source: Source, name: str | None = None, *, hint: str = "") -> Iterator[str]:
    """Yield the lines of ``source`` one by one, split and decoded by the rules of the module docstring.

    Args:
        source: a path (``.gz`` is decompressed), or an open stream: binary, or text with a ``buffer``
            (``sys.stdin``); a pure text stream (``io.StringIO``) is split on ``\\n`` the same way.
        name: how error messages name the source (default: the path, or ``<stdin>``).
        hint: what the UTF-8 error message suggests instead of re-encoding the file.

    Raises:
        DataError: missing or unreadable file, broken gzip stream, invalid UTF-8 (file:line, column, offset).
    """
    name = source_name(source, name)
    if isinstance(source, (str, Path)):
        path = Path(source)
        fh = _open_path(path)
        close = True
    else:
        fh = _binary(source)
        close = False
        if fh is None:  # a text stream without bytes underneath: split its text the same way
            text = source.read()
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            for i, line in enumerate(lines):
                line = line[:-1] if line.endswith("\r") else line
                yield line[1:] if i == 0 and line.startswith(_BOM) else line
            return
    try:
        for lineno, (raw, offset) in enumerate(_raw_lines(fh, name), start=1):
            yield _decode(raw, name, lineno, offset, hint)
    finally:
        if close:
            fh.close()


def _raw_lines(fh, name: str) -> Iterator[tuple[bytes, int]]:
    """(line bytes with their line end, byte offset of the line) of a binary stream; read errors (a broken
    gzip stream) raise :class:`DataError` naming the line where reading stopped."""
    lineno, offset = 0, 0
    while True:
        try:
            raw = fh.readline()
        except _READ_ERRORS as e:
            raise _truncated(name, lineno + 1, offset, e) from None
        if not raw:
            return
        lineno += 1
        yield raw, offset
        offset += len(raw)


def read_bytes(path: Path, max_lines: int | None = None) -> bytes:
    """Bytes of ``path`` (decompressed when it ends in ``.gz``), at most ``max_lines`` lines.

    Raises:
        DataError: missing or unreadable file; a broken gzip stream names the line where reading stopped.
    """
    path = Path(path)
    chunks: list[bytes] = []
    with _open_path(path) as f:
        try:
            if max_lines is None:
                while chunk := f.read(1 << 24):
                    chunks.append(chunk)
            else:
                for i, line in enumerate(f):
                    if i >= max_lines:
                        break
                    chunks.append(line)
        except _READ_ERRORS as e:
            error = e
        else:
            return b"".join(chunks)
    chunks = []
    with _open_path(path) as f:
        for _ in _raw_lines(f, str(path)):  # again line by line, to name the exact line where reading stops
            pass
    raise _truncated(str(path), 1, 0, error)  # pragma: no cover - _raw_lines raised already


def split_lines(raw: bytes, name: str, *, hint: str = "") -> list[str]:
    """``raw`` decoded and split by the rules of the module docstring (the fast whole-file path of
    :func:`read_lines`; gives exactly the lines :func:`iter_lines` yields)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        lineno = raw.count(b"\n", 0, e.start) + 1
        end = raw.find(b"\n", e.start)
        line = raw[line_start : end if end >= 0 else len(raw)]
        local = UnicodeDecodeError(e.encoding, line, e.start - line_start, e.end - line_start, e.reason)
        raise _decode_error(name, line, lineno, line_start, local, hint) from None
    if text.startswith(_BOM):
        text = text[1:]
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [s[:-1] if s.endswith("\r") else s for s in lines]
    return lines


def read_lines(source: Source, max_lines: int | None = None, *, name: str | None = None,
               hint: str = "") -> list[str]:
    """All lines of ``source`` (at most ``max_lines``) as a list; the same lines :func:`iter_lines` yields.

    Raises:
        DataError: as :func:`iter_lines`.
    """
    if isinstance(source, (str, Path)):
        return split_lines(read_bytes(Path(source), max_lines), source_name(source, name), hint=hint)
    out = []
    for line in iter_lines(source, name, hint=hint):
        if max_lines is not None and len(out) >= max_lines:
            break
        out.append(line)
    return out


def read_text(source: Source, name: str | None = None, *, hint: str = "") -> str:
    """The whole text of ``source`` (a path, ``.gz`` path or stream), strictly UTF-8, lines joined with
    ``\\n`` (``\\r\\n`` line ends become ``\\n``, a lone ``\\r`` is kept) — for readers of one document.

    Raises:
        DataError: as :func:`iter_lines`.
    """
    return "\n".join(iter_lines(source, name, hint=hint))
