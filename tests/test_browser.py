"""The explanation pages in a real browser: headless Chromium renders them and runs their JavaScript.

``--dump-dom`` prints the DOM after the page's scripts ran (``--virtual-time-budget`` lets fetches finish),
so these tests see what a user sees: highlighted tokens (``data-w`` and a background set by the script), the
label list, the label chosen by ``#label=...``, and that a document containing markup renders inert.
Skipped when ``/usr/bin/chromium`` is absent (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import html.parser
import os
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from test_explain import make_fake
from test_serve import free_port

from xmtc.explain import explain_text, render_html

CHROMIUM = Path(os.environ.get("XMTC_CHROMIUM", "/usr/bin/chromium"))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"headless Chromium not found at {CHROMIUM} "
                       "(apt-get install -y chromium, or set XMTC_CHROMIUM)"),
]
XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'"> beta gamma'


def dump_dom(url: str, tmp_path: Path) -> str:
    """The DOM of ``url`` after its scripts ran, serialised by headless Chromium."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--virtual-time-budget=5000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class DOM(html.parser.HTMLParser):
    """Elements of a dumped page: (tag, attrs, own text) in document order, and the title."""

    def __init__(self, page: str):
        super().__init__()
        self.elements: list[list] = []
        self._open: list[list] = []
        self.title = ""
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        el = [tag, dict(attrs), ""]
        self.elements.append(el)
        if tag not in ("img", "input", "meta", "br"):
            self._open.append(el)

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self._open:
            self._open[-1][2] += data
            if self._open[-1][0] == "title":
                self.title += data

    def find(self, tag: str, cls: str | None = None) -> list[list]:
        return [e for e in self.elements
                if e[0] == tag and (cls is None or cls in e[1].get("class", "").split())]

    def body(self) -> dict:
        return self.find("body")[0][1]


def test_static_page_renders_highlights_and_switches_label(tmp_path):
    model = make_fake(max_len=15)  # sees the text up to "beta." (2 x beta, 1 x gamma), not the alphas
    text = XSS + " beta. " + "alpha " * 3
    exp = explain_text(model, text, k=3)
    labels = [la.label for la in exp.labels]
    assert labels[:2] == ["beta", "gamma"]
    page = tmp_path / "explain.html"
    page.write_text(render_html(exp, title="browser test"), encoding="utf-8")

    dom = DOM(dump_dom(page.as_uri() + "#label=gamma", tmp_path))
    assert dom.body().get("data-js") == "1" and dom.title == "browser test"  # the script ran, no injection
    assert not dom.find("img") and [e[2] for e in dom.find("span", "tok")][:2] == ["script", "document"]
    assert [e[1]["data-label"] for e in dom.find("button")] == labels
    assert [e[1]["data-label"] for e in dom.find("button", "active")] == ["gamma"]  # chosen by #label=
    section = dom.find("section", "explained")[0][1]
    assert section["data-active"] == "gamma"
    toks = dom.find("span", "tok")
    weights = exp.labels[1].weights
    assert [float(e[1]["data-w"]) for e in toks] == pytest.approx(np.round(weights, 4), abs=1e-4)
    strongest = int(np.argmax(weights))
    assert toks[strongest][2] == "gamma" and "background-color" in toks[strongest][1]["style"]
    beyond = [e for e in toks if "out" in e[1]["class"].split()]
    assert len(beyond) == len(exp.tokens) - exp.n_seen > 0
    assert all("background-color" not in e[1].get("style", "") for e in beyond)


@pytest.fixture()
def live_server():
    """The service of a fake attention model on a loopback port (uvicorn in a thread)."""
    uvicorn = pytest.importorskip("uvicorn")
    from xmtc.serve import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(make_fake()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_served_page_predicts_and_explains(live_server, tmp_path):
    text = XSS + " delta delta"
    url = f"{live_server}/?k=3&text={urllib.parse.quote(text)}"
    dom = DOM(dump_dom(url, tmp_path))
    section = dom.find("section", "explained")[0][1]
    assert section.get("data-ready") == "1", "the page did not finish /predict + /explain"
    shown = [e[1]["data-label"] for e in dom.find("button") if "data-label" in e[1]]
    assert shown == ["delta", "beta", "gamma"]
    assert [e[1]["data-label"] for e in dom.find("button", "active")] == ["delta"]
    assert [e[2] for e in dom.find("span", "score")][0] == "1.0000"
    toks = dom.find("span", "tok")
    assert [e[2] for e in toks][-2:] == ["delta", "delta"]
    assert all("background-color" in e[1]["style"] for e in toks[-2:])
    assert float(toks[-1][1]["data-w"]) > 0.4 and float(toks[0][1]["data-w"]) < 0.01
    assert not dom.find("img") and dom.title != "pwned"
    assert "xmtc" in dom.title
