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

This module holds the app and its routes; the micro-batcher and :class:`ServeLimits` live in
:mod:`xmtc.serve_batching`, the body middleware and the message helpers in :mod:`xmtc.serve_requests` (both
re-exported here).

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
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from xmtc.errors import XMTCError
from xmtc.runs import resolve_model_dir  # re-exported: xmtc.serve.resolve_model_dir predates xmtc.runs
from xmtc.serve_batching import BatchStats, MicroBatcher, ServeLimits  # noqa: F401  (re-exported)
from xmtc.serve_requests import (  # tests import _body_limit_middleware from here
    _body_limit_middleware,
    _is_json_type,
    _json_type_name,
    _jsonable_errors,
    _printable,
    lone_surrogate,
)

__all__ = ["MicroBatcher", "ServeLimits", "create_app", "resolve_model_dir", "run_server"]


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
