"""HTTP service over a trained model: ``create_app(model)`` builds a FastAPI app (``xmtc serve RUN`` runs it).

Endpoints: ``POST /predict`` {"texts": [...], "k": 5} -> {"predictions": [{"labels", "scores"}, ...]}
(``"mode": "sets"``: the label sets of the model's saved decision rule, see :mod:`xmtc.decision`; ``k`` unused);
``POST /explain`` {"text": ..., "label": ...} -> {"label", "tokens", "weights", "spans", ...} (attention
models);
``GET /labels``; ``GET /health``; ``GET /`` (an interactive page); ``GET /docs`` (OpenAPI, FastAPI's default).

The model is loaded once. Concurrent ``/predict`` requests are gathered for a few milliseconds by a
:class:`MicroBatcher` (an asyncio queue drained by one worker task) and run as one ``model.predict`` call per
distinct ``k`` over all their texts, in a single worker thread: inference never blocks the event loop and the
model is never used by two threads at once (``/explain`` runs in the same thread).

Every request gets a 2xx or a clear 4xx, never a 500: malformed JSON or wrong types (422), a body that is not
a JSON object (422), a text holding a lone UTF-16 surrogate such as ``"\ud800"`` (not Unicode; 422), an empty
text list or empty text (422), too many texts / characters (422), ``k`` outside 1..max_k (422), a body that is
not UTF-8 (400), a ``Content-Type`` other than JSON (415, naming it), a body larger than ``max_body_bytes`` (413,
checked on ``Content-Length`` and on the bytes actually received), an unknown label (404), ``/explain`` on a
model without attention (400); a full request queue gives 503.
"""

# No ``from __future__ import annotations``: FastAPI reads the request models from the annotations of the
# endpoint functions, which are local to create_app (fastapi is an optional dependency).
import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from xmtc.errors import ConfigError, XMTCError
from xmtc.runs import resolve_model_dir  # re-exported: xmtc.serve.resolve_model_dir predates xmtc.runs

__all__ = ["MicroBatcher", "ServeLimits", "create_app", "resolve_model_dir", "run_server"]


@dataclass
class ServeLimits:
    """Request limits of the service.

    Attributes:
        max_texts: texts per ``/predict`` request.
        max_chars: characters per request (sum over its texts; the ``/explain`` text).
        max_k: largest ``k``.
        max_body_bytes: request body size; 0 derives it from ``max_chars`` (8 bytes per character, room for
            JSON escapes, plus 64 KiB).
        batch_wait_ms: how long the micro-batcher gathers requests after the first one.
        max_batch_texts: texts per model call (a request is never split, so one call may hold more).
        max_queue: queued ``/predict`` requests before the service answers 503.
    """

    max_texts: int = 64
    max_chars: int = 100_000
    max_k: int = 100
    max_body_bytes: int = 0
    batch_wait_ms: float = 5.0
    max_batch_texts: int = 256
    max_queue: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_k", "max_batch_texts", "max_queue"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, but is {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, but is {self.batch_wait_ms}")
        if self.max_body_bytes < 0:
            raise ConfigError(f"max_body_bytes must be >= 0, but is {self.max_body_bytes}")
        if self.max_body_bytes == 0:
            self.max_body_bytes = 8 * self.max_chars + 65536


# ------------------------------------------------------------------------------------------- batching
@dataclass
class _Job:
    texts: list[str]
    k: int
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters of the micro-batcher (shown by ``GET /health``)."""

    requests: int = 0
    texts: int = 0
    model_calls: int = 0
    largest_call: int = 0
    errors: int = 0
    busy_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "texts": self.texts, "model_calls": self.model_calls,
                "largest_call": self.largest_call, "errors": self.errors,
                "busy_seconds": round(self.busy_seconds, 3)}


class MicroBatcher:
    """Gathers concurrent top-k requests and answers them with one model call per distinct ``k``.

    Args:
        predict: ``predict(texts, k) -> (indices int (n, k), scores float (n, k))``, run in the worker thread.
        wait_ms: gathering window after the first queued request.
        max_batch_texts: stop gathering once this many texts are queued.
        max_queue: queued requests before :meth:`submit` raises :class:`asyncio.QueueFull`.
    """

    def __init__(self, predict: Callable[[list[str], int], tuple[np.ndarray, np.ndarray]],
                 wait_ms: float = 5.0, max_batch_texts: int = 256, max_queue: int = 4096):
        self.predict = predict
        self.wait_s = wait_ms / 1000.0
        self.max_batch_texts = max_batch_texts
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the worker on the running event loop (again, when the loop changed); idempotent."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._worker is not None and not self._worker.done():
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xmtc-model")
        self._loop = loop
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._worker = loop.create_task(self._run(self._queue), name="xmtc-micro-batcher")

    async def stop(self) -> None:
        """Cancel the worker, fail queued requests and release the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._worker
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("server shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._worker = self._queue = self._loop = self._executor = None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the model thread (serialised with the batches) and await its result."""
        self.start()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Queue ``texts`` for top-``k``; returns (indices (len(texts), k), scores) once their batch ran.

        Raises:
            asyncio.QueueFull: more than ``max_queue`` requests are waiting.
        """
        self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(texts, k, future))
        return await future

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await queue.get()]
            n = len(jobs[0].texts)
            deadline = loop.time() + self.wait_s
            while n < self.max_batch_texts:
                while not queue.empty() and n < self.max_batch_texts:
                    jobs.append(queue.get_nowait())
                    n += len(jobs[-1].texts)
                remaining = deadline - loop.time()
                if n >= self.max_batch_texts or remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.001))
            await self._answer(jobs)

    async def _answer(self, jobs: list[_Job]) -> None:
        by_k: dict[int, list[_Job]] = {}
        for job in jobs:
            if not job.future.cancelled():  # the client went away while queued
                by_k.setdefault(job.k, []).append(job)
        for k, group in by_k.items():
            texts = [t for job in group for t in job.texts]
            try:
                indices, scores = await self._call_model(texts, k)
            except Exception as e:  # noqa: BLE001  (one bad request must not fail the others: retry alone)
                if len(group) == 1:
                    self.stats.errors += 1
                    if not group[0].future.done():
                        group[0].future.set_exception(e)
                else:
                    for job in group:
                        await self._answer_one(job)
                continue
            self.stats.requests += len(group)
            row = 0
            for job in group:
                m = len(job.texts)
                if not job.future.done():
                    job.future.set_result((indices[row: row + m], scores[row: row + m]))
                row += m

    async def _answer_one(self, job: _Job) -> None:
        try:
            result = await self._call_model(job.texts, job.k)
        except Exception as e:  # noqa: BLE001
            self.stats.errors += 1
            if not job.future.done():
                job.future.set_exception(e)
            return
        self.stats.requests += 1
        if not job.future.done():
            job.future.set_result(result)

    async def _call_model(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, texts, k)
        finally:
            self.stats.busy_seconds += time.perf_counter() - t0
        self.stats.model_calls += 1
        self.stats.texts += len(texts)
        self.stats.largest_call = max(self.stats.largest_call, len(texts))
        return result


# ------------------------------------------------------------------------------------------- the app
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> int:
    """Position of the first lone UTF-16 surrogate in ``text`` (JSON ``"\\ud800"`` decodes to one; it is not
    Unicode and cannot be encoded as UTF-8), or -1 when there is none."""
    m = _SURROGATE.search(text)
    return m.start() if m else -1


def _printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes, so that it can be encoded as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_json_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON (``application/json``, ``application/*+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _body_limit_middleware(app, max_bytes: int):
    """ASGI middleware: 413 when Content-Length or the bytes received exceed ``max_bytes``; 400 when a JSON body
    is not UTF-8 (the body is read once and replayed to the app)."""
    import json

    async def send_error(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def send_413(send, got: str) -> None:
        await send_error(send, 413, f"request body too large: {got}, the limit is {max_bytes} bytes "
                                    "(see --max-chars / --max-texts)")

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        content_type = None
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1")
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > max_bytes:
                    await send_413(send, f"Content-Length {declared} bytes")
                    return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client disconnected
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await send_413(send, f"more than {max_bytes} bytes received")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if _is_json_type(content_type):
            body = b"".join(chunks)
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as e:
                await send_error(send, 400, f"the request body is not valid UTF-8 (byte "
                                            f"{body[e.start:e.start + 1]!r} at offset {e.start}): send JSON "
                                            "encoded as UTF-8")
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return middleware


def create_app(model, limits: ServeLimits | None = None, descriptions: dict[str, str] | None = None,
               title: str | None = None):
    """The FastAPI app serving ``model`` (tests call it directly; ``xmtc serve`` runs it with uvicorn).

    Args:
        model: a fitted :class:`~xmtc.models.base.XMTCModel` (loaded once, shared by all requests).
        limits: request limits and batching settings (defaults: :class:`ServeLimits`).
        descriptions: optional {label name: description} added to predictions and ``/labels``.
        title: page and OpenAPI title.

    Returns:
        An ASGI app (FastAPI wrapped in the body-size middleware; the FastAPI object is ``app.fastapi``).
    """
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse
        from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr
    except ImportError as e:  # pragma: no cover
        raise XMTCError(f"serving needs fastapi and uvicorn ({e.name} is missing): "
                        "pip install 'xmtc[serve]'") from None
    from xmtc.explain import align_weights, server_page

    model._check_fitted()
    limits = limits or ServeLimits()
    names: list[str] = model.label_index_.names
    descriptions = {n: d for n, d in (descriptions or {}).items() if n in model.label_index_}
    title = title or f"xmtc: {model.name}"

    def predict_arrays(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        top = model.predict(texts, k=k)
        return top.indices, top.scores

    batcher = MicroBatcher(predict_arrays, wait_ms=limits.batch_wait_ms,
                           max_batch_texts=limits.max_batch_texts, max_queue=limits.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[StrictStr]
        k: StrictInt = 5
        mode: Literal["topk", "sets"] = "topk"

    class Prediction(BaseModel):
        labels: list[str]
        scores: list[float]
        descriptions: list[str | None] | None = None

    class PredictResponse(BaseModel):
        predictions: list[Prediction]

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr
        label: StrictStr

    class ExplainResponse(BaseModel):
        label: str
        description: str | None = None
        tokens: list[str]
        weights: list[float]
        spans: list[tuple[int, int]]
        n_seen: int
        text: str

    api = FastAPI(title=title, version=_version(), lifespan=lifespan,
                  description="Extreme multi-label text classification: top-k labels and per-label "
                              "attention.")
    api.state.batcher = batcher
    api.state.limits = limits

    examples = {"/predict": '{"texts": ["..."], "k": 5}', "/explain": '{"text": "...", "label": "..."}'}

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        example = examples.get(request.url.path, "{...}")
        whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
        content_type = request.headers.get("content-type")
        if whole_body and not _is_json_type(content_type):
            what = f"Content-Type {_printable(content_type)!r}" if content_type else "no Content-Type header"
            return JSONResponse(status_code=415, content={
                "detail": f"unsupported media type: the request has {what}; send a JSON object such as "
                          f"{example} with the header 'Content-Type: application/json'"})
        problems = []
        for err in errors:
            loc = err.get("loc", ())
            if err.get("type") == "json_invalid":
                reason = (err.get("ctx") or {}).get("error", "invalid JSON")
                problems.append(f"malformed JSON body at character {loc[-1] if loc else '?'}: {reason}")
                continue
            if tuple(loc) == ("body",) and err.get("type") in ("model_attributes_type", "dict_type"):
                problems.append(f"the body must be a JSON object such as {example}, not "
                                f"{_json_type_name(err.get('input'))}")
                continue
            if tuple(loc) == ("body",) and err.get("type") == "missing":
                problems.append(f"the request body is empty: send a JSON object such as {example}")
                continue
            if err.get("type") == "string_unicode":
                problems.append("the body holds a lone UTF-16 surrogate escape such as \"\\ud800\" (not Unicode "
                                "text): surrogates are only valid in pairs")
                continue
            where = ".".join(str(p) for p in loc if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse(status_code=422,
                            content={"detail": _printable("; ".join(problems) or "invalid request"),
                                     "errors": _jsonable_errors(errors)})

    def check_texts(texts: list[str], single: bool = False) -> None:
        if not texts:
            raise HTTPException(422, "texts is empty: send at least one text")
        if len(texts) > limits.max_texts:
            raise HTTPException(422, f"too many texts: {len(texts)}, the limit is {limits.max_texts} per "
                                     "request")
        for i, t in enumerate(texts):
            where = "text" if single else f"texts[{i}]"
            if not t.strip():
                raise HTTPException(422, f"{where} is empty")
            if (pos := lone_surrogate(t)) >= 0:
                raise HTTPException(422, f"{where} holds a lone UTF-16 surrogate ({_printable(t[pos])}) at "
                                         f"character {pos}: not Unicode text; send the text as valid UTF-8 "
                                         "(surrogates only in pairs)")
        total = sum(len(t) for t in texts)
        if total > limits.max_chars:
            raise HTTPException(422, f"too many characters: {total}, the limit is {limits.max_chars} per "
                                     "request")

    @api.post("/predict", response_model=PredictResponse, response_model_exclude_none=True,
              summary="Top-k labels of each text (concurrent requests are micro-batched)")
    async def predict(req: PredictRequest) -> dict[str, Any]:
        check_texts(req.texts)
        rule = getattr(model, "decision_", None) if req.mode == "sets" else None  # label sets (issue 16)
        if req.mode == "sets" and rule is None:
            from xmtc.decision import NO_RULE

            raise HTTPException(400, NO_RULE)
        if rule is None and not 1 <= req.k <= limits.max_k:
            raise HTTPException(422, f"k must be between 1 and {limits.max_k}, but is {req.k}")
        try:
            indices, scores = await batcher.submit(req.texts, rule.depth if rule is not None else req.k)
        except asyncio.QueueFull:
            raise HTTPException(503, f"server busy: {limits.max_queue} requests are queued; retry later") \
                from None
        except XMTCError as e:
            raise HTTPException(400, str(e)) from None
        out = []
        if rule is not None:
            from xmtc.decision import rule_scores
            from xmtc.models.base import TopK

            top = TopK(indices, scores, n_labels=len(names))
            chosen, scores = rule.select(top), rule_scores(rule, top)  # calibrated scores for a calibrated rule
        else:
            chosen = indices >= 0
        for ids, vals, keep in zip(indices, scores, chosen, strict=True):
            labels = [names[i] for i in ids[keep]]
            row: dict[str, Any] = {"labels": labels, "scores": [float(s) for s in vals[keep]]}
            if descriptions:
                row["descriptions"] = [descriptions.get(n) for n in labels]
            out.append(row)
        return {"predictions": out}

    @api.post("/explain", response_model=ExplainResponse,
              summary="Attention weight of each token of the text for one label (attention models)",
              responses={400: {"description": "model without attention"},
                         404: {"description": "unknown label"}})
    async def explain(req: ExplainRequest) -> dict[str, Any]:
        if not model.supports_explain:
            raise HTTPException(400, f"model {model.name!r} has no per-label attention to explain; "
                                     "explanations need an attention model such as 'attentionxml'")
        check_texts([req.text], single=True)
        if req.label not in model.label_index_:
            raise HTTPException(404, f"unknown label {req.label!r}: the model was not trained with it "
                                     "(see GET /labels)")
        try:
            tokens, weights = await batcher.call(model.explain, req.text, req.label)
        except XMTCError as e:
            raise HTTPException(400, str(e)) from None
        shown, all_tokens, spans, full, n_seen = align_weights(req.text, tokens, weights)
        return {"label": req.label, "description": descriptions.get(req.label), "tokens": all_tokens,
                "weights": [float(w) for w in full], "spans": spans, "n_seen": n_seen, "text": shown}

    @api.get("/labels", summary="The label names (and descriptions when known), in id order")
    async def labels() -> dict[str, Any]:
        out: dict[str, Any] = {"n_labels": len(names), "labels": names}
        if descriptions:
            out["descriptions"] = descriptions
        return out

    @api.get("/health", summary="Liveness, the model and the micro-batcher counters")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model.name, "n_labels": len(names),
                "supports_explain": model.supports_explain, "limits": limits.__dict__,
                "decision_rule": rule.describe() if (rule := getattr(model, "decision_", None)) else None,
                "batching": batcher.stats.to_dict()}

    page = server_page(title)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    wrapped = _body_limit_middleware(api, limits.max_body_bytes)
    wrapped.fastapi = api
    return wrapped


def _jsonable_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": [_printable(str(p)) for p in e.get("loc", ())], "msg": _printable(str(e.get("msg", ""))),
             "type": str(e.get("type", ""))} for e in errors]


def _json_type_name(value: Any) -> str:
    """How a message names the JSON type of a parsed body."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def _version() -> str:
    import xmtc

    return xmtc.__version__


def run_server(run: str | Path, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits | None = None,
               log_level: str = "info", keep_alive_s: float = 30.0) -> None:
    """Load the model of ``run`` once and serve it with uvicorn until interrupted (``xmtc serve``).

    Raises:
        XMTCError: missing model, missing fastapi/uvicorn, or the address cannot be bound.
    """
    import socket

    try:
        import uvicorn
    except ImportError:
        raise XMTCError("xmtc serve needs fastapi and uvicorn: pip install 'xmtc[serve]'") from None
    from xmtc.explain import load_label_descriptions
    from xmtc.registry import load

    folder = resolve_model_dir(run)
    model = load(folder)
    descriptions = load_label_descriptions(run) or load_label_descriptions(folder)
    app = create_app(model, limits, descriptions=descriptions)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # a clear error instead of uvicorn's exit(1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise XMTCError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    print(f"serving {model.name} ({len(model.label_index_)} labels) from {folder} on http://{host}:{port} "
          "(page: /, API docs: /docs; Ctrl-C stops)", file=sys.stderr, flush=True)
    # keep-alive above uvicorn's 5 s: on a saturated CPU the idle timer could close a pooled connection whose
    # next request already waits in the socket
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, timeout_keep_alive=keep_alive_s)
