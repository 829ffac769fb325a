"""Explanations (xmtc.explain): token alignment, explain_text, the self-contained page, ``xmtc explain``.

Also home of the tiny fake models (``FakeAttention``, ``FakePlain``: known answers, call counting, a gate to
hold the model thread) that test_serve.py, test_report.py and test_browser.py import.
"""

from __future__ import annotations

import gzip
import html
import html.parser
import json
import re
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from xmtc.config import Config, doc_field
from xmtc.data.labels import LabelIndex
from xmtc.errors import DataError, XMTCError
from xmtc.explain import (
    Explanation,
    LabelAttention,
    align_weights,
    explain_text,
    load_label_descriptions,
    render_html,
    server_page,
    token_spans,
)
from xmtc.models.base import TopK, XMTCModel
from xmtc.registry import MODELS, register
from xmtc.text import tokenize

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]
FAKE_ATTENTION, FAKE_PLAIN = "test-fake-attention", "test-fake-plain"


@dataclass
class FakeConfig(Config):
    """Config of the fake models."""

    max_len: int = doc_field(50, "tokens the model reads")


class _FakeBase(XMTCModel):
    """Score of a label = occurrences of its name among the first ``max_len`` tokens (+ a tie-break by id).

    ``calls`` records the texts per model call; a text "boom" raises XMTCError; ``gate`` (threading.Event)
    holds the model thread until set (``entered`` is set when a call starts).
    """

    Config = FakeConfig

    def __init__(self, config: FakeConfig | None = None):
        super().__init__(config)
        self.calls: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def fit(self, train, valid=None, *, run_dir=None, resume=False):
        self.label_index_ = train.label_index
        return self

    def _tokens(self, text: str) -> list[str]:
        return tokenize(text)[: self.config.max_len]

    def _predict(self, data, k: int) -> TopK:
        texts = self.texts_of(data)
        self.calls.append(len(texts))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if "boom" in texts:
            raise XMTCError("boom is not a document")
        names = self.label_index_.names
        S = np.zeros((len(texts), len(names)), dtype=np.float32)
        for r, text in enumerate(texts):
            toks = self._tokens(text)
            for j, name in enumerate(names):
                S[r, j] = toks.count(name) + 0.01 * (len(names) - j) / len(names)
        return TopK.from_scores(S / S.max(axis=1, keepdims=True), k)

    def _save_state(self, path):
        return []

    def _load_state(self, path):
        pass


class FakeAttention(_FakeBase):
    """Attention: weight 1 on tokens equal to the label name, 0.01 elsewhere, normalised."""

    def explain(self, text: str, label):
        self._check_fitted()
        if str(label) not in self.label_index_:
            raise XMTCError(f"unknown label {label!r}")
        toks = self._tokens(text)
        w = np.array([1.0 if t == label else 0.01 for t in toks], dtype=np.float32)
        return toks, w / w.sum() if len(w) else w


class FakePlain(_FakeBase):
    """No attention (``supports_explain`` is False)."""


def make_fake(cls=FakeAttention, labels=WORDS, max_len: int = 50) -> XMTCModel:
    """A fitted fake model over ``labels``."""
    model = cls(FakeConfig(max_len=max_len))
    model.label_index_ = LabelIndex(list(labels))
    return model


def register_fakes() -> list[str]:
    """Register the fakes (for registry.load); returns the names added (pop them afterwards)."""
    added = []
    for name, cls in ((FAKE_ATTENTION, FakeAttention), (FAKE_PLAIN, FakePlain)):
        if name not in MODELS:
            register(name)(cls)
            added.append(name)
    return added


XSS = '<script>document.title="pwned"</script><img src=x onerror="alert(1)"> beta'


# --------------------------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("text", [
    "The EC's anti-dumping duty of 3.5% (Regulation No 1234/2001).",
    "İstanbul İİ straße ΣΊΣΥΦΟΣ ok",  # lowercasing changes the length of 'İ'
    "  leading\n\nnew lines\tand\ttabs  ",
    "under_score a--b ...x...",
    "",
])
def test_token_spans_locate_every_tokenizer_token(text):
    tokens = tokenize(text)
    spans = token_spans(text, tokens)
    assert spans is not None and len(spans) == len(tokens)
    for (s, e), tok in zip(spans, tokens, strict=True):
        # 'İ'.lower() is 'i' + a combining dot the tokenizer drops: the span covers the whole original 'İ'
        assert text[s:e].lower() == tok or (text[s:e] == "İ" and tok == "i")
    assert all(a[1] <= b[0] for a, b in zip(spans[:-1], spans[1:], strict=True))  # in order, not overlapping


def test_token_spans_of_foreign_tokens_is_none():
    assert token_spans("hello world", ["hello", "planet"]) is None
    assert token_spans("hello world", ["world", "hello"]) is None  # order matters


def test_align_weights_pads_tokens_beyond_max_len():
    text = "Alpha beta, gamma delta"
    shown, tokens, spans, w, n_seen = align_weights(text, ["alpha", "beta"], np.array([0.25, 0.75]))
    assert shown == text and tokens == ["alpha", "beta", "gamma", "delta"] and n_seen == 2
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0, 0.0])
    assert [text[s:e] for s, e in spans] == ["Alpha", "beta", "gamma", "delta"]


def test_align_weights_with_a_foreign_tokenizer():
    text = "Hello, World"
    shown, tokens, spans, w, n_seen = align_weights(text, ["hello", ","], np.array([0.5, 0.5]))
    assert tokens == ["hello", ","] and n_seen == 2 and [shown[s:e] for s, e in spans] == ["Hello", ","]
    shown, tokens, spans, w, _ = align_weights(text, ["HEL", "LO"], np.array([0.5, 0.5]))
    assert shown == text and spans == [(0, 3), (3, 5)]  # a case-preserving tokenizer is located too
    shown, tokens, spans, w, _ = align_weights(text, ["▁hel", "lo"], np.array([0.5, 0.5]))
    assert shown == "▁hel lo" and spans == [(0, 4), (5, 7)]  # not in the text: the tokens themselves
    with pytest.raises(XMTCError, match="2 tokens but 1 weights"):
        align_weights(text, ["hello", "world"], np.array([1.0]))


# --------------------------------------------------------------------------------------------- explain_text
def test_explain_text_top_labels_by_default():
    model = make_fake()
    exp = explain_text(model, "Gamma and beta and gamma.", k=3)
    assert [la.label for la in exp.labels] == ["gamma", "beta", "alpha"]
    assert exp.labels[0].score == pytest.approx(1.0) and exp.labels[2].score < exp.labels[1].score
    w = exp.labels[0].weights
    assert w.shape == (5,) and w.argmax() == 0 and w[0] == pytest.approx(w[4])
    assert exp.tokens == ["gamma", "and", "beta", "and", "gamma"] and exp.n_seen == 5
    assert exp.model == "" and json.loads(json.dumps(exp.to_dict()))["labels"][0]["label"] == "gamma"


def test_explain_text_chosen_labels_and_descriptions():
    model = make_fake()
    exp = explain_text(model, "delta delta", labels=["epsilon", "delta", "epsilon"], k=1,
                       descriptions={"delta": "Fourth"})
    assert [(la.label, la.description) for la in exp.labels] == [("epsilon", None), ("delta", "Fourth")]
    assert exp.labels[0].score is None and exp.labels[1].score == pytest.approx(1.0)  # k=1: delta only


def test_explain_text_errors():
    with pytest.raises(XMTCError, match="unknown label 'omega'.*close: omega|unknown label 'omega'"):
        explain_text(make_fake(), "alpha", labels=["omega"])
    with pytest.raises(XMTCError, match="close: beta"):
        explain_text(make_fake(), "alpha", labels=["betta"])
    with pytest.raises(XMTCError, match="has no per-label attention"):
        explain_text(make_fake(FakePlain), "alpha")
    with pytest.raises(XMTCError, match="empty"):
        explain_text(make_fake(), " \n ")


def test_explain_text_marks_tokens_beyond_max_len():
    exp = explain_text(make_fake(max_len=2), "beta beta beta beta", labels=["beta"])
    assert exp.n_seen == 2 and len(exp.tokens) == 4
    np.testing.assert_allclose(exp.labels[0].weights, [0.5, 0.5, 0.0, 0.0])


# --------------------------------------------------------------------------------------------- HTML
class _Collect(html.parser.HTMLParser):
    """Tags and attributes of a page, and the text inside each <script>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    return p


def test_page_is_self_contained_and_highlights_the_first_label():
    exp = explain_text(make_fake(max_len=3), "Beta gamma beta alpha", k=2)
    page = render_html(exp, title="demo")
    doc = _parse(page)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page) and "<link" not in page
    spans = [a for t, a in doc.tags if t == "span" and "tok" in a.get("class", "")]
    assert [s["data-i"] for s in spans] == ["0", "1", "2", "3"]
    alpha = [float(re.search(r",([0-9.]+)\)", sp["style"]).group(1)) for sp in spans[:3]]
    assert alpha[0] == alpha[2] == 1.0 and alpha[1] < 0.1  # beta highlighted, gamma barely
    assert spans[0]["class"] == "tok strong" and spans[0]["data-w"] == "0.4975"
    assert spans[3]["class"] == "tok out" and "style" not in spans[3]  # beyond max_len
    buttons = [a["data-label"] for t, a in doc.tags if t == "button"]
    assert buttons == ["beta", "gamma"]  # alpha lies beyond max_len: the model never saw it
    data = json.loads(doc.scripts[0])
    assert data["docs"][0]["n_seen"] == 3 and [la["label"] for la in data["docs"][0]["labels"]] == buttons
    assert data["docs"][0]["labels"][0]["weights"][3] == 0.0


def test_page_escapes_documents_and_labels():
    model = make_fake(labels=["beta", '"><img src=x onerror=alert(2)>', "</script><b>x"])
    exp = explain_text(model, XSS, k=3)
    page = render_html(exp)
    doc = _parse(page)
    assert [t for t, _ in doc.tags].count("script") == 2  # the data block and the page script, nothing else
    assert [t for t, _ in doc.tags].count("img") == 0 and "<b>x" not in page
    assert "<script>document" not in page and "pwned" not in doc.scripts[0] + doc.scripts[1]
    body = re.search(r'<div class="text">(.*?)</div>', page, re.S).group(1)
    assert html.unescape(re.sub(r"</?span[^>]*>", "", body)) == XSS  # shown as text, exactly
    assert "onerror" not in doc.scripts[0] or "\\u003cimg" in doc.scripts[0]
    data = json.loads(doc.scripts[0])  # the escaped JSON still decodes to the real names
    assert {la["label"] for la in data["docs"][0]["labels"]} == set(model.label_index_.names)


def test_page_with_several_documents():
    model = make_fake()
    exps = [explain_text(model, t, k=2) for t in ("alpha beta", "gamma")]
    page = render_html(exps)
    assert 'id="doc-0"' in page and 'id="doc-1"' in page
    assert len(json.loads(_parse(page).scripts[0])["docs"]) == 2


def test_page_without_labels_and_tokens():
    exp = Explanation(text="!!!", tokens=[], spans=[], n_seen=0)
    assert "!!!" in render_html(exp)
    exp = Explanation(text="a b", tokens=["a", "b"], spans=[(0, 1), (2, 3)], n_seen=2,
                      labels=[LabelAttention("x", np.zeros(2, dtype=np.float32), 0.5)])
    assert 'data-w="0.0000"' in render_html(exp)  # all-zero weights: nothing highlighted, no division by 0


def test_server_page_has_the_form_and_no_external_assets():
    page = server_page("t")
    assert 'id="ask"' in page and 'name="text"' in page and "xmtc-data" not in page.split("<script>")[0]
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)


# --------------------------------------------------------------------------------------------- descriptions
def test_label_descriptions_from_the_run_dataset(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "label_names.tsv.gz", "wt", encoding="utf-8") as fh:
        fh.write("id\tlabel\talt\nbeta\tSecond letter\tb\n")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"data": str(data)}))
    assert load_label_descriptions(run) == {"beta": "Second letter"}
    assert load_label_descriptions(run / "model") == {"beta": "Second letter"}
    assert load_label_descriptions(tmp_path / "elsewhere") is None
    assert load_label_descriptions(run, data=data) == {"beta": "Second letter"}
    with pytest.raises(DataError, match="no such dataset folder"):
        load_label_descriptions(run, data=tmp_path / "missing")


# ----------------------------------------------------------------------------------------- real model, CLI
@pytest.fixture(scope="module")
def axml_run(tiny_data, tmp_path_factory):
    """A run folder with a real tiny AttentionXML (run.json points at a folder with label descriptions)."""
    from xmtc.models.attentionxml.model import AttentionXML

    root = tmp_path_factory.mktemp("explain")
    (root / "data").mkdir()
    (root / "data" / "label_names.tsv").write_text("lab1\tLabel one <b>\n", encoding="utf-8")
    model = AttentionXML(AttentionXML.tiny_config()).fit(tiny_data[0])
    model.save(root / "run" / "model")
    (root / "run" / "run.json").write_text(json.dumps({"model": "attentionxml", "data": str(root / "data")}))
    return root / "run", model


def test_real_attentionxml_explanation(axml_run, tiny_data):
    _, model = axml_run
    text = "Header line.\n" + tiny_data[1].texts[3].upper() + " " + " ".join(["filler"] * 80)
    exp = explain_text(model, text, k=3)
    assert len(exp.labels) == 3 and exp.n_seen == model.config.max_len < len(exp.tokens)
    for la in exp.labels:
        assert la.weights[: exp.n_seen].sum() == pytest.approx(1.0, abs=1e-4)
        assert not la.weights[exp.n_seen:].any()
    assert all(text[s:e].lower() == t for (s, e), t in zip(exp.spans, exp.tokens, strict=True))
    assert render_html(exp).count('class="tok out"') == len(exp.tokens) - exp.n_seen


def test_xmtc_explain_cli(axml_run, xmtc_cli, tmp_path):
    run, _ = axml_run
    doc = tmp_path / "doc.txt"
    doc.write_text("Some <script>x</script> text\nkaloton lomiton\n", encoding="utf-8")
    out = tmp_path / "pages" / "e.html"
    r = xmtc_cli("explain", run, "--input", doc, "--label", "lab1", "--label", "lab0", "--html", out)
    assert r.returncode == 0, r
    assert "wrote" in r.stdout and "labels: lab1" in r.stdout
    page = out.read_text(encoding="utf-8")
    assert "Label one &lt;b&gt;" in page and "<script>x" not in page and "&lt;" in page
    assert [a["data-label"] for t, a in _parse(page).tags if t == "button"] == ["lab1", "lab0"]


def cli_error(argv, capsys) -> str:
    """Run ``xmtc ARGV`` in-process (no interpreter start-up); it must fail with status 2. Returns stderr."""
    from xmtc.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: "), err
    return err


def test_xmtc_explain_cli_errors(axml_run, tiny_data, tmp_path, capsys):
    import xmtc

    run, _ = axml_run
    out = tmp_path / "x.html"
    assert "exactly one of --text or --input" in cli_error(
        ["explain", run, "--text", "a", "--input", "f.txt", "--html", out], capsys)
    assert "exactly one of --text or --input" in cli_error(["explain", run, "--html", out], capsys)
    assert "missing.txt: no such input file" in cli_error(
        ["explain", run, "--input", tmp_path / "missing.txt", "--html", out], capsys)
    assert "unknown label 'nope'" in cli_error(["explain", run, "--text", "kaloton", "--label", "nope",
                                                "--html", out], capsys)
    assert "--k must be a positive integer" in cli_error(["explain", run, "--text", "a", "--k", "0",
                                                          "--html", out], capsys)
    assert "no such run or model folder" in cli_error(["explain", tmp_path / "nothing", "--text", "a",
                                                       "--html", out], capsys)
    cls = xmtc.registry.get("parabel")
    folder = cls(cls.tiny_config()).fit(tiny_data[0]).save(tmp_path / "parabel")
    assert "has no per-label attention" in cli_error(["explain", folder, "--text", "kaloton", "--html", out],
                                                     capsys)
    assert not out.exists()


def test_fake_attention_is_an_attention_model():
    assert FakeAttention(None).supports_explain and not FakePlain(None).supports_explain
