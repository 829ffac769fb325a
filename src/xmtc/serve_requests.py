"""Request checks of :mod:`xmtc.serve` below the routes: the ASGI body middleware and message helpers.

``_body_limit_middleware`` answers 413 for a body over the size limit (on ``Content-Length`` and on the bytes
received) and 400 for a JSON body that is not UTF-8; ``lone_surrogate`` finds text that is not Unicode;
``_is_json_type``, ``_printable``, ``_jsonable_errors`` and ``_json_type_name`` help the app word its 4xx
answers. Nothing here imports FastAPI.
"""

import re
from typing import Any

__all__ = ["lone_surrogate"]

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
