"""The HTTP service (xmtc.serve): every endpoint, every 4xx case, micro-batching, and ``xmtc serve``.

Most tests use the tiny fake models of test_explain.py (known answers, call counting, a gate to hold the model
thread).
A real tiny AttentionXML and a real parabel check that the service returns exactly ``model.predict``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from test_explain import WORDS, FakePlain, cli_error, make_fake

from xmtc.errors import XMTCError

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from xmtc.serve import MicroBatcher, ServeLimits, _body_limit_middleware, create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture()
def fake():
    return make_fake()


@pytest.fixture()
def client(fake):
    with TestClient(create_app(fake, ServeLimits(max_texts=4, max_chars=200, max_k=7))) as c:
        yield c


@pytest.fixture(scope="module")
def real_models(tiny_data):
    """A real tiny AttentionXML and parabel, trained on the keyword task."""
    import xmtc
    from xmtc.models.attentionxml.model import AttentionXML

    train, _ = tiny_data
    parabel_cls = xmtc.registry.get("parabel")
    return {"attentionxml": AttentionXML(AttentionXML.tiny_config()).fit(train),
            "parabel": parabel_cls(parabel_cls.tiny_config()).fit(train)}


# --------------------------------------------------------------------------------------------- /predict
def test_predict_returns_ranked_labels(client):
    r = client.post("/predict", json={"texts": ["gamma gamma beta", "epsilon"], "k": 2})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["labels"] for p in preds] == [["gamma", "beta"], ["epsilon", "alpha"]]
    assert preds[0]["scores"][0] == pytest.approx(1.0) and preds[0]["scores"][0] > preds[0]["scores"][1]
    assert "descriptions" not in preds[0]
    r = client.post("/predict", json={"texts": ["delta"]})  # k defaults to 5
    assert len(r.json()["predictions"][0]["labels"]) == 5


@pytest.mark.parametrize("name", ["attentionxml", "parabel"])
def test_predict_equals_model_predict_for_real_models(real_models, tiny_data, name):
    model = real_models[name]
    texts = tiny_data[1].texts[:6]
    top = model.predict(texts, k=3)
    with TestClient(create_app(model)) as c:
        preds = c.post("/predict", json={"texts": texts, "k": 3}).json()["predictions"]
        assert c.get("/health").json()["model"] == name
    for p, ids, scores in zip(preds, top.indices, top.scores, strict=True):
        assert p["labels"] == [model.label_index_.names[i] for i in ids if i >= 0]
        np.testing.assert_allclose(p["scores"], scores[ids >= 0], rtol=1e-6)


def test_descriptions_are_added_when_known(fake):
    with TestClient(create_app(fake, descriptions={"beta": "Second letter", "zzz": "not a label"})) as c:
        p = c.post("/predict", json={"texts": ["beta"], "k": 2}).json()["predictions"][0]
        assert p["labels"][0] == "beta" and p["descriptions"] == ["Second letter", None]
        assert c.get("/labels").json()["descriptions"] == {"beta": "Second letter"}


async def _concurrent(app, bodies):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
        return await asyncio.gather(*(ac.post("/predict", json=b) for b in bodies))


def test_concurrent_requests_are_micro_batched(fake):
    app = create_app(fake, ServeLimits(batch_wait_ms=500))  # wide: a starved loop still gathers
    bodies = [{"texts": [WORDS[i % 5], f"{WORDS[(i + 1) % 5]} x"], "k": 1} for i in range(20)]
    responses = asyncio.run(_concurrent(app, bodies))
    for i, r in enumerate(responses):  # every request got the answer of its own texts
        assert r.status_code == 200
        assert [p["labels"] for p in r.json()["predictions"]] == [[WORDS[i % 5]], [WORDS[(i + 1) % 5]]]
    assert sum(fake.calls) == 40
    assert len(fake.calls) < 20 and max(fake.calls) > 2  # gathered into few model calls


def test_batches_are_split_by_k(fake):
    app = create_app(fake, ServeLimits(batch_wait_ms=500))  # wide: a starved loop still gathers
    bodies = [{"texts": ["alpha"], "k": 1 + i % 3} for i in range(9)]
    responses = asyncio.run(_concurrent(app, bodies))
    for i, r in enumerate(responses):
        assert len(r.json()["predictions"][0]["labels"]) == 1 + i % 3
    assert len(fake.calls) <= 6


def test_one_failing_request_does_not_fail_its_batch(fake):
    app = create_app(fake, ServeLimits(batch_wait_ms=50))
    bodies = [{"texts": ["alpha"]}, {"texts": ["boom"]}, {"texts": ["beta"]}]
    responses = asyncio.run(_concurrent(app, bodies))
    assert [r.status_code for r in responses] == [200, 400, 200]
    assert "boom is not a document" in responses[1].json()["detail"]
    assert responses[2].json()["predictions"][0]["labels"][0] == "beta"


def test_full_queue_answers_503(fake):
    fake.gate = threading.Event()
    app = create_app(fake, ServeLimits(max_queue=1, batch_wait_ms=0))

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            first = asyncio.ensure_future(ac.post("/predict", json={"texts": ["alpha"]}))
            while not fake.entered.is_set():  # the model thread now holds the first request
                await asyncio.sleep(0.005)
            second = asyncio.ensure_future(ac.post("/predict", json={"texts": ["beta"]}))  # queued
            await asyncio.sleep(0.05)
            third = await ac.post("/predict", json={"texts": ["gamma"]})
            fake.gate.set()
            return await first, await second, third

    first, second, third = asyncio.run(scenario())
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 503)
    assert "busy" in third.json()["detail"]


# ----------------------------------------------------------------------------------------- 4xx of /predict
@pytest.mark.parametrize("body, status, message", [
    ({"texts": [], "k": 1}, 422, "texts is empty"),
    ({"texts": ["alpha", "  "], "k": 1}, 422, "texts[1] is empty"),
    ({"texts": ["a"] * 5}, 422, "too many texts: 5, the limit is 4"),
    ({"texts": ["x" * 150, "y" * 51]}, 422, "too many characters: 201, the limit is 200"),
    ({"texts": ["alpha"], "k": 0}, 422, "k must be between 1 and 7, but is 0"),
    ({"texts": ["alpha"], "k": 8}, 422, "k must be between 1 and 7, but is 8"),
    ({"texts": ["alpha"], "k": "3"}, 422, "k: Input should be a valid integer"),
    ({"texts": ["alpha"], "k": 2.5}, 422, "k: Input should be a valid integer"),
    ({"texts": [1, "beta"]}, 422, "texts.0: Input should be a valid string"),
    ({"texts": [None]}, 422, "texts.0: Input should be a valid string"),
    ({"texts": "alpha"}, 422, "texts: Input should be a valid list"),
    ({"k": 3}, 422, "texts: Field required"),
    ({"texts": ["alpha"], "kk": 3}, 422, "kk: Extra inputs are not permitted"),
    ([1, 2], 422, "the body must be a JSON object such as {\"texts\""),
])
def test_predict_rejects_bad_requests(client, body, status, message):
    r = client.post("/predict", json=body)
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_malformed_json_is_422(client):
    r = client.post("/predict", content=b'{"texts": ["a"', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "malformed JSON body" in r.json()["detail"]
    r = client.post("/predict", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 422


# ------------------------------------------------ issue 13: every request gets a 2xx or a clear 4xx, never a 500
def test_lone_surrogate_is_a_clear_422_on_explain_and_predict(fake):
    """Issue 13, failure 4: ``"\\ud800"`` in the JSON text decodes to a lone surrogate (not Unicode); /explain
    answered 500 (UTF-8 encoding of the response failed)."""
    with TestClient(create_app(fake), raise_server_exceptions=False) as c:
        body = '{"text": "fishing \\ud800 quotas", "label": "alpha"}'
        r = c.post("/explain", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "text holds a lone UTF-16 surrogate (\\ud800) at character 8" in r.json()["detail"]
        body = '{"texts": ["fine", "fishing \\udc00 quotas"]}'
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "texts[1] holds a lone UTF-16 surrogate" in r.json()["detail"]
        body = '{"texts": ["a"], "\\ud800": 1}'  # the surrogate in a key (named in pydantic's error location)
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "lone UTF-16 surrogate" in r.json()["detail"]
        body = '{"text": "alpha", "label": "\\ud800"}'
        r = c.post("/explain", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 404 and "unknown label" in r.json()["detail"]
        # a surrogate *pair* is a valid character (an emoji): answered normally
        body = '{"texts": ["\\ud83d\\ude00 alpha"], "k": 1}'
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["predictions"][0]["labels"] == ["alpha"]


@pytest.mark.parametrize("path", ["/predict", "/explain"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415_naming_it(client, path, content_type):
    """Issue 13: a wrong Content-Type got "body: Input should be a valid dictionary"."""
    body = '{"texts": ["alpha"]}' if path == "/predict" else '{"text": "alpha", "label": "alpha"}'
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == 415, r.text
    detail = r.json()["detail"]
    assert (f"Content-Type '{content_type}'" if content_type else "no Content-Type header") in detail
    assert "Content-Type: application/json" in detail
    assert "valid dictionary" not in detail


def test_json_content_types_with_parameters_are_accepted(client):
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        r = client.post("/predict", content='{"texts": ["alpha"], "k": 1}', headers={"content-type": content_type})
        assert r.status_code == 200, r.text


def test_body_that_is_not_utf8_is_400(client):
    r = client.post("/predict", content=b'{"texts": ["a \xff b"]}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid UTF-8" in r.json()["detail"] and "offset 14" in r.json()["detail"]


HOSTILE_BODIES = [
    b"", b"null", b"0", b'"x"', b"[]", b"{}", b"[" * 50_000, b'{"texts": [' * 20_000, b"\xff\xfe\x00",
    b'{"texts": ["\\u0000"]}', b'{"texts": ["a"], "k": 1e400}', b'{"texts": ["a"], "k": 99999999999999999999999}',
    b'{"texts": ["a"], "k": -1}', b'{"texts": ["a"], "k": true}', b'{"texts": [{"a": 1}]}', b'{"text": "\\udfff"}',
    b'{"texts": ["\\ud800\\ud800"]}', b'{"text": "\\ud800 alpha", "label": "alpha"}', b'{"text": "a", "label": ""}',
    b'{"text": "a", "label": null}',
    '{"texts": ["مرحبا 😀"]}'.encode(), b'\xef\xbb\xbf{"texts": ["a"]}',
]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_hostile_bodies_never_get_a_5xx(fake, content_type):
    """Whatever the body, both POST endpoints answer 2xx or a 4xx with a JSON ``detail``."""
    headers = {"content-type": content_type} if content_type else {}
    with TestClient(create_app(fake, ServeLimits(max_chars=1000)), raise_server_exceptions=False) as c:
        for body in HOSTILE_BODIES:
            for path in ("/predict", "/explain"):
                r = c.post(path, content=body, headers=headers)
                assert r.status_code < 500, (path, body[:40], r.status_code, r.text[:200])
                if r.status_code >= 400:
                    assert isinstance(r.json()["detail"], str) and r.json()["detail"], (path, body[:40])


def test_oversized_body_by_content_length_is_413(fake):
    with TestClient(create_app(fake, ServeLimits(max_body_bytes=1000))) as c:
        r = c.post("/predict", json={"texts": ["a" * 2000]})
        assert r.status_code == 413
        assert "Content-Length 2" in r.json()["detail"] and "limit is 1000 bytes" in r.json()["detail"]
        assert c.post("/predict", json={"texts": ["alpha" * 10]}).status_code == 200


def test_oversized_streamed_body_is_413_without_content_length():
    """A chunked body without Content-Length is counted as it arrives; the app never sees it."""
    seen = []

    async def app(scope, receive, send):  # pragma: no cover - must not run
        seen.append(scope)

    wrapped = _body_limit_middleware(app, max_bytes=100)
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 3
    sent = []

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(wrapped(scope, receive, send))
    assert not seen and sent[0]["status"] == 413
    assert "more than 100 bytes received" in json.loads(sent[1]["body"])["detail"]


def test_small_streamed_body_is_replayed_to_the_app():
    got = []

    async def app(scope, receive, send):
        got.append(await receive())

    wrapped = _body_limit_middleware(app, max_bytes=100)
    chunks = [{"type": "http.request", "body": b"ab", "more_body": True},
              {"type": "http.request", "body": b"cd", "more_body": False}]

    async def receive():
        return chunks.pop(0)

    asyncio.run(wrapped({"type": "http", "headers": []}, receive, None))
    assert got == [{"type": "http.request", "body": b"abcd", "more_body": False}]


def test_unknown_route_and_method(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/predict").status_code == 405


# --------------------------------------------------------------------------------------------- /explain
def test_explain_returns_aligned_weights(client):
    text = "The Beta, and beta-blockers: beta!"
    r = client.post("/explain", json={"text": text, "label": "beta"})
    assert r.status_code == 200
    out = r.json()
    assert out["label"] == "beta" and out["text"] == text
    assert out["tokens"] == ["the", "beta", "and", "beta-blockers", "beta"]
    assert [text[s:e] for s, e in out["spans"]] == ["The", "Beta", "and", "beta-blockers", "beta"]
    w = np.array(out["weights"])
    assert w.sum() == pytest.approx(1.0) and w.argmax() in (1, 4) and w[1] == pytest.approx(w[4])
    assert out["n_seen"] == 5


def test_explain_tokens_beyond_max_len_get_zero(fake):
    fake.config.max_len = 3
    with TestClient(create_app(fake)) as c:
        out = c.post("/explain", json={"text": "alpha beta gamma alpha beta", "label": "alpha"}).json()
    assert out["n_seen"] == 3 and len(out["tokens"]) == 5
    assert out["weights"][3:] == [0.0, 0.0] and out["weights"][0] > 0.9


def test_explain_errors(client):
    r = client.post("/explain", json={"text": "alpha", "label": "omega"})
    assert r.status_code == 404 and "unknown label 'omega'" in r.json()["detail"]
    r = client.post("/explain", json={"text": "   ", "label": "alpha"})
    assert r.status_code == 422 and r.json()["detail"] == "text is empty"
    r = client.post("/explain", json={"text": "x" * 201, "label": "alpha"})
    assert r.status_code == 422 and "too many characters" in r.json()["detail"]
    r = client.post("/explain", json={"text": "alpha"})
    assert r.status_code == 422 and "label: Field required" in r.json()["detail"]
    r = client.post("/explain", json={"text": ["alpha"], "label": "alpha"})
    assert r.status_code == 422 and "text: Input should be a valid string" in r.json()["detail"]
    r = client.post("/explain", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_explain_without_attention_is_400(real_models):
    with TestClient(create_app(make_fake(FakePlain))) as c:
        r = c.post("/explain", json={"text": "alpha", "label": "alpha"})
        assert r.status_code == 400 and "has no per-label attention" in r.json()["detail"]
        assert c.get("/health").json()["supports_explain"] is False
    with TestClient(create_app(real_models["parabel"])) as c:
        r = c.post("/explain", json={"text": "some text", "label": "lab0"})
        assert r.status_code == 400 and "'parabel' has no per-label attention" in r.json()["detail"]


def test_explain_with_real_attentionxml(real_models, tiny_data):
    model = real_models["attentionxml"]
    text = tiny_data[1].texts[0]
    tokens, weights = model.explain(text, "lab1")
    with TestClient(create_app(model)) as c:
        out = c.post("/explain", json={"text": text, "label": "lab1"}).json()
    assert out["tokens"] == tokens
    np.testing.assert_allclose(out["weights"], weights, rtol=1e-6)
    assert sum(out["weights"]) == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------------------- other endpoints
def test_labels_health_page_and_docs(client, fake):
    assert client.get("/labels").json() == {"n_labels": 5, "labels": WORDS}
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"] == fake.name and h["n_labels"] == 5 and h["supports_explain"] is True
    assert h["limits"]["max_k"] == 7
    client.post("/predict", json={"texts": ["alpha", "beta"]})
    assert client.get("/health").json()["batching"]["texts"] == 2
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="ask"' in page.text and "http://" not in page.text and "https://" not in page.text
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/explain", "/labels", "/health"} <= set(spec["paths"])


def test_limits_are_validated():
    with pytest.raises(XMTCError, match="max_texts must be positive"):
        ServeLimits(max_texts=0)
    assert ServeLimits(max_chars=1000).max_body_bytes == 8 * 1000 + 65536


def test_batcher_answers_in_order_without_http():
    calls = []

    def predict(texts, k):
        calls.append(list(texts))
        idx = np.array([[len(t)] * k for t in texts])
        return idx, idx.astype(np.float32)

    async def scenario():
        b = MicroBatcher(predict, wait_ms=20)
        out = await asyncio.gather(*(b.submit(["x" * n], 2) for n in range(1, 6)))
        await b.stop()
        return out

    out = asyncio.run(scenario())
    assert [o[0][0, 0] for o in out] == [1, 2, 3, 4, 5] and len(calls) == 1


# --------------------------------------------------------------------------------------------- xmtc serve
@pytest.fixture(scope="module")
def parabel_dir(real_models, tmp_path_factory):
    return real_models["parabel"].save(tmp_path_factory.mktemp("serve") / "parabel")


def test_xmtc_serve_end_to_end(parabel_dir, tiny_data):
    from conftest import cli_env

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xmtc", "serve", str(parabel_dir), "--port", str(port),
                             "--log-level", "warning"], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"server did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
        r = httpx.post(f"{base}/predict", json={"texts": tiny_data[1].texts[:2], "k": 2})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        assert httpx.post(f"{base}/predict", json={"texts": ["a"], "k": 101}).status_code == 422
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_xmtc_serve_errors(parabel_dir, tmp_path, capsys):
    assert "no such run or model folder" in cli_error(["serve", tmp_path / "missing"], capsys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        err = cli_error(["serve", parabel_dir, "--port", s.getsockname()[1]], capsys)
    assert "cannot listen on 127.0.0.1:" in err
    assert "max_texts must be positive" in cli_error(["serve", parabel_dir, "--max-texts", "0"], capsys)
    assert "--port must be in 1..65535" in cli_error(["serve", parabel_dir, "--port", "70000"], capsys)
    assert "--log-level must be" in cli_error(["serve", parabel_dir, "--log-level", "loud"], capsys)
    assert "--keep-alive must be positive" in cli_error(["serve", parabel_dir, "--keep-alive", "0"], capsys)
