"""omikuji input and output: the XMLRepository text file it trains from (written fast from CSR), batched top-k
prediction through its C entry point, and its console output.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmtc.errors import DataError, XMTCError

# --------------------------------------------------------------------------- XMLRepository writer
_POW10 = 10.0 ** np.arange(-64, 64)  # _POW10[e + 64] == 10**e
_DIGIT_TRIPLES = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)  # (1000, 3)


_TRIPLES = _DIGIT_TRIPLES.view(np.dtype((np.void, 3))).ravel()  # (1000,) 3-byte records "000".."999"


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative integers below ``10**width``, zero-padded: uint8 (n, width)."""
    groups = -(-width // 3)
    values = values.astype(np.uint32 if width <= 9 else np.uint64)  # unsigned division is the fast one
    out = np.empty((len(values), groups), dtype=_TRIPLES.dtype)  # (n, groups) 3-digit records
    for g in range(groups - 1, -1, -1):
        out[:, g] = _TRIPLES[values % 1000]
        values = values // 1000
    return out.view(np.uint8).reshape(len(out), 3 * groups)[:, 3 * groups - width:]


def _float_tokens(values: np.ndarray) -> np.ndarray:
    """``+123456789e-08``-style ASCII of float32 values (9 significant digits: exact round trip), (n, 14)."""
    v = values.astype(np.float64)
    av = np.abs(v)
    nz = av > 0
    exp = np.zeros(len(v), dtype=np.int64)
    exp[nz] = np.floor(np.log10(av[nz])).astype(np.int64) - 8
    mant = np.rint(av / _POW10[exp + 64])  # in [1e8, 1e9) up to log10 rounding, 0 for zeros
    high = mant >= 1e9
    exp[high] += 1
    mant[high] = np.rint(av[high] / _POW10[exp[high] + 64])
    low = nz & (mant < 1e8)
    exp[low] -= 1
    mant[low] = np.rint(av[low] / _POW10[exp[low] + 64])
    out = np.empty((len(v), 14), dtype=np.uint8)
    out[:, 0] = np.where(v < 0, ord("-"), ord("+"))
    out[:, 1:10] = _digits(mant, 9)
    out[:, 10] = ord("e")
    out[:, 11] = np.where(exp < 0, ord("-"), ord("+"))
    out[:, 12:14] = _digits(np.abs(exp), 2)
    return out


def write_xmlrepo(path: str | Path, X: sp.csr_matrix, Y: sp.csr_matrix, chunk_nnz: int = 1 << 20) -> None:
    """Write features and labels in the Extreme Classification Repository text format.

    Header ``n_docs n_features n_labels``, then per document ``l1,l2, f1:v1 f2:v2 ...``. Every number is
    written with a fixed width (zero-padded integers, ``+123456789e-08`` floats: float32 values round-trip
    exactly), so all tokens of a chunk are formatted by numpy at once; Python only joins each document's two
    byte slices. A trailing comma after the labels is accepted by omikuji (empty label tokens are skipped).

    Args:
        path: output file.
        X: CSR (n, F) features (finite values).
        Y: CSR (n, L) binary labels.
        chunk_nnz: about how many non-zeros are formatted per chunk (bounds memory).
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    Y = sp.csr_matrix(Y)
    X.sort_indices()
    Y.sort_indices()
    n, n_features = X.shape
    n_labels = Y.shape[1]
    if Y.shape[0] != n:
        raise DataError(f"features have {n} rows but labels have {Y.shape[0]}")
    if not np.all(np.isfinite(X.data)):
        raise DataError("features contain NaN or infinite values")
    wl = len(str(max(n_labels - 1, 0)))
    wf = len(str(max(n_features - 1, 0)))
    label_slot, feat_slot = wl + 1, 1 + wf + 1 + 14  # "ddd," and " ddd:+123456789e-08"
    nnz_cum = np.cumsum(np.diff(Y.indptr) + np.diff(X.indptr))  # (n,)
    with open(path, "wb") as fh:
        fh.write(f"{n} {n_features} {n_labels}\n".encode())
        lo = 0
        while lo < n:
            base = nnz_cum[lo - 1] if lo > 0 else 0
            hi = min(n, max(lo + 1, int(np.searchsorted(nnz_cum, base + chunk_nnz, side="right"))))
            lab = Y.indices[Y.indptr[lo]:Y.indptr[hi]]
            tok = np.empty((len(lab), label_slot), dtype=np.uint8)  # (labels in chunk, wl + 1)
            tok[:, :wl] = _digits(lab, wl)
            tok[:, wl] = ord(",")
            lab_bytes = memoryview(tok.tobytes())
            idx = X.indices[X.indptr[lo]:X.indptr[hi]]
            tok = np.empty((len(idx), feat_slot), dtype=np.uint8)  # (non-zeros in chunk, feat_slot)
            tok[:, 0] = ord(" ")
            tok[:, 1:1 + wf] = _digits(idx, wf)
            tok[:, 1 + wf] = ord(":")
            tok[:, 2 + wf:] = _float_tokens(X.data[X.indptr[lo]:X.indptr[hi]])
            feat_bytes = memoryview(tok.tobytes())
            lab_off = ((Y.indptr[lo:hi + 1] - Y.indptr[lo]) * label_slot).tolist()
            feat_off = ((X.indptr[lo:hi + 1] - X.indptr[lo]) * feat_slot).tolist()
            pieces: list = []
            for r in range(hi - lo):  # one line: labels, features, newline
                pieces += (lab_bytes[lab_off[r]:lab_off[r + 1]], feat_bytes[feat_off[r]:feat_off[r + 1]],
                           b"\n")
            fh.write(b"".join(pieces))
            lo = hi


# --------------------------------------------------------------------------- omikuji prediction
def omikuji_predict(model, X: sp.csr_matrix, k: int, beam_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of every row of ``X`` with an omikuji model.

    Calls omikuji's C entry point once per document on views of the CSR arrays (the public
    ``Model.predict`` builds Python lists of ``(feature, value)`` pairs for every document instead).

    Returns:
        (indices int32 (n, k) padded with -1, scores float32 (n, k) padded with -inf).
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    X.sum_duplicates()
    n = X.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.full((n, k), -np.inf, dtype=np.float32)
    try:
        from omikuji._libomikuji import ffi, lib

        model_ptr, pool = model._model_ptr, model._thread_pool.ptr
    except (ImportError, AttributeError):  # pragma: no cover - other omikuji versions: public API
        for r in range(n):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            pairs = model.predict(list(zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist(), strict=True)),
                                  beam_size=beam_size, top_k=k)
            for j, (label, score) in enumerate(pairs):
                out_idx[r, j], out_val[r, j] = label, score
        return out_idx, out_val
    indices = np.ascontiguousarray(X.indices, dtype=np.uint32)
    data = np.ascontiguousarray(X.data, dtype=np.float32)
    if len(indices) == 0:  # from_buffer needs a non-empty buffer
        indices, data = np.zeros(1, dtype=np.uint32), np.zeros(1, dtype=np.float32)
    idx_buf = ffi.from_buffer("uint32_t[]", indices)
    val_buf = ffi.from_buffer("float[]", data)
    lab_out = ffi.new("uint32_t[]", k)
    score_out = ffi.new("float[]", k)
    lab_view = np.frombuffer(ffi.buffer(lab_out), dtype=np.uint32)  # (k,) views of the output buffers
    score_view = np.frombuffer(ffi.buffer(score_out), dtype=np.float32)
    indptr = X.indptr.tolist()
    for r in range(n):
        lo, hi = indptr[r], indptr[r + 1]
        got = lib.omikuji_predict(model_ptr, beam_size, hi - lo, idx_buf + lo, val_buf + lo, k,
                                  lab_out, score_out, pool)
        out_idx[r, :got] = lab_view[:got]
        out_val[r, :got] = score_view[:got]
    return out_idx, out_val


_LOG_LINE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # omikuji's log lines start with a timestamp


@contextlib.contextmanager
def omikuji_output(verbose: bool, what: str):
    """Hide or tidy omikuji's log and progress output (written by Rust straight to file descriptors 1 and 2).

    Without ``verbose`` the output goes to a temporary file; when omikuji fails (``RuntimeError``), its last
    lines are put into the raised :class:`XMTCError`. With ``verbose`` on a terminal nothing is redirected.
    With ``verbose`` elsewhere (a log file, CI, ``nohup``) the output is passed on to stderr as plain lines:
    omikuji's ``\r``-redrawn progress bars become their final states, plus the current state every 30 s while
    a bar runs (:class:`~xmtc.progress.CarriageReturnFilter`), and its log lines go to stderr, not stdout.
    While this is active, anything else the process writes to fds 1/2 takes the same way.
    """
    from xmtc.progress import CarriageReturnFilter, is_terminal

    saved = None
    if not (verbose and is_terminal()):
        try:
            saved = [os.dup(1), os.dup(2)]
        except OSError:  # no standard file descriptors (e.g. a daemon): nothing to hide
            saved = None
    if saved is None:
        try:
            yield
        except RuntimeError as e:
            raise XMTCError(f"omikuji failed while {what}: {e}") from None
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log = tempfile.TemporaryFile(mode="a+b")  # O_APPEND: the reader's offset never moves the writers'

    def to_stderr(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(saved[1], view):]
            except OSError:  # stderr closed: drop the output, never fail the computation
                return

    lines = CarriageReturnFilter(to_stderr if verbose else (lambda data: None), line_start=_LOG_LINE)
    read_at = 0

    def pump() -> None:
        nonlocal read_at
        while chunk := os.pread(log.fileno(), 1 << 16, read_at):
            read_at += len(chunk)
            lines.feed(chunk)
        lines.tick()

    stop = threading.Event()

    def follow() -> None:  # passes the output on while omikuji runs (it may run for many minutes)
        while not stop.wait(0.5):
            pump()

    reader = threading.Thread(target=follow, name="omikuji-output", daemon=True) \
        if verbose and hasattr(os, "pread") else None
    failure = None
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        if reader is not None:
            reader.start()
        try:
            yield
        except RuntimeError as e:
            failure = e
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            stop.set()
            if reader is not None:
                reader.join()
            if verbose or failure is not None:
                if hasattr(os, "pread"):
                    pump()
                else:  # pragma: no cover - no pread (Windows): everything at the end
                    log.seek(0)
                    lines.feed(log.read())
                lines.finish()
        if failure is not None:
            detail = "; ".join(line.decode(errors="replace") for line in lines.lines[-5:])
            said = f" (omikuji said: {detail})" if detail else ""
            raise XMTCError(f"omikuji failed while {what}: {failure}{said}")
    finally:
        os.close(saved[0])
        os.close(saved[1])
        log.close()
