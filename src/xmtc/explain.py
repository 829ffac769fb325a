"""Per-label attention over a document's tokens, mapped back onto the original text, rendered as HTML.

``explain_text(model, text)`` asks an attention model (``model.explain(text, label)``) for the weights of the
top-k predicted labels (or chosen ones) and aligns them with the tokens of the *original* text: every token
of :func:`xmtc.text.tokenize` gets a character span, so the page shows the document as written (case,
punctuation, line breaks) with each token highlighted by its weight (AttentionXML, Figure 2). Tokens beyond
the model's ``max_len`` were never seen by it: they get weight 0 and are shown unhighlighted.

``render_html(explanations)`` writes one self-contained page (inline CSS and JS, no external assets): the
document(s), the top-k labels with scores as buttons that switch the highlighted label. All text is
HTML-escaped; the data for the script sits in a JSON block with ``<``, ``>`` and ``&`` escaped, so a
document containing ``<script>`` renders inert. ``server_page()`` is the same page for ``xmtc serve``
(``GET /``), with a text box that calls ``/predict`` and ``/explain``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmtc.errors import DataError, XMTCError

__all__ = ["Explanation", "LabelAttention", "align_weights", "explain_text", "label_id",
           "load_label_descriptions", "render_html", "server_page", "token_spans"]


@dataclass
class LabelAttention:
    """Attention of one label over a document.

    Attributes:
        label: label name.
        weights: float32 (n_tokens,) one weight per token of the document (0 beyond the model's max_len).
        score: the model's score of the label for the document (None when it is not among the top-k).
        description: human-readable label name, when known.
    """

    label: str
    weights: np.ndarray
    score: float | None = None
    description: str | None = None


@dataclass
class Explanation:
    """One document with its tokens located in the text and the attention of several labels.

    Attributes:
        text: the document as shown (the original text, or the tokens joined by spaces when the model's own
            tokens cannot be located in it).
        tokens: the tokens, in order.
        spans: (start, end) character offsets of each token in ``text``.
        n_seen: tokens the model saw (the first ``n_seen``; the rest lie beyond its ``max_len``).
        labels: attention per label, in display order (top-k by score first).
        model: the model name.
    """

    text: str
    tokens: list[str]
    spans: list[tuple[int, int]]
    n_seen: int
    labels: list[LabelAttention] = field(default_factory=list)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (weights rounded to 6 decimals)."""
        return {"model": self.model, "text": self.text, "tokens": self.tokens,
                "spans": [list(s) for s in self.spans], "n_seen": self.n_seen,
                "labels": [{"label": la.label, "score": la.score, "description": la.description,
                            "weights": _round(la.weights)} for la in self.labels]}


def _round(weights: np.ndarray) -> list[float]:
    return [round(float(w), 6) for w in np.asarray(weights, dtype=np.float64)]


# ------------------------------------------------------------------------------------------- alignment
def token_spans(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Character spans of ``tokens`` in ``text``, located in order in the lowercased text.

    Works for any tokenizer whose (lowercased) tokens are substrings of ``text.lower()`` in order (as
    :func:`xmtc.text.tokenize`); offsets refer to the original ``text`` even where lowercasing changes the
    length of a character (``"İ".lower()`` has two characters).

    Args:
        text: the original document.
        tokens: its tokens in order.

    Returns:
        One (start, end) per token, or None when a token cannot be found (a different tokenizer).
    """
    lowered = text.lower()
    # position in ``lowered`` -> position in ``text``; per-character lowering keeps the lengths of the
    # whole-string lowering (only the final sigma is context dependent, and it keeps its length).
    orig_of = [i for i, ch in enumerate(text) for _ in range(len(ch.lower()))]
    if len(orig_of) != len(lowered):
        return None
    orig_of.append(len(text))
    spans, cursor = [], 0
    for tok in tokens:
        low = tok.lower()
        start = lowered.find(low, cursor) if low else -1
        if start < 0:
            return None
        end = start + len(low)
        spans.append((orig_of[start], orig_of[end - 1] + 1))
        cursor = end
    return spans


def align_weights(text: str, model_tokens: Sequence[str],
                  weights: np.ndarray) -> tuple[str, list[str], list[tuple[int, int]], np.ndarray, int]:
    """Map a model's per-token weights onto every token of the original text.

    Args:
        text: the original document.
        model_tokens: the tokens the model attended to (``model.explain``; truncated to its max_len).
        weights: float (len(model_tokens),) attention weights.

    Returns:
        (display text, tokens, spans, weights float32 (len(tokens),), n_seen). When the model's tokens are a
        prefix of :func:`xmtc.text.tokenize` (the shared tokenizer) every text token is shown and those beyond
        the prefix get weight 0; otherwise the model's own tokens are shown, located in the text when possible
        and else joined by spaces.
    """
    from xmtc.text import tokenize

    weights = np.asarray(weights, dtype=np.float32).ravel()
    model_tokens = list(model_tokens)
    if weights.shape[0] != len(model_tokens):
        raise XMTCError(f"explain returned {len(model_tokens)} tokens but {weights.shape[0]} weights")
    n_seen = len(model_tokens)
    full = tokenize(text)
    tokens = full if full[:n_seen] == model_tokens else model_tokens
    spans = token_spans(text, tokens)
    if spans is None:  # a tokenizer whose tokens are not substrings of the text: show the tokens themselves
        text = " ".join(tokens)
        starts = np.cumsum([0] + [len(t) + 1 for t in tokens[:-1]]).tolist() if tokens else []
        spans = [(int(a), int(a) + len(t)) for a, t in zip(starts, tokens, strict=True)]
    out = np.zeros(len(tokens), dtype=np.float32)
    out[:n_seen] = weights
    return text, tokens, spans, out, n_seen


# ------------------------------------------------------------------------------------------- explaining
def label_id(model, label: str) -> int:
    """Id of label name ``label`` in ``model``; unknown names raise with close matches."""
    lid = model.label_index_.get(str(label))
    if lid < 0:
        import difflib

        close = difflib.get_close_matches(str(label), model.label_index_.names, n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise XMTCError(f"unknown label {label!r}: the model was not trained with it{hint}")
    return lid


def explain_text(model, text: str, labels: Sequence[str] | None = None, k: int = 5,
                 descriptions: Mapping[str, str] | None = None) -> Explanation:
    """Attention of ``labels`` (default: the model's top-``k`` predicted labels) over ``text``.

    Args:
        model: a fitted model with per-label attention (``model.supports_explain``).
        text: a raw document.
        labels: label names to explain, in display order; None explains the top-``k`` predictions.
        k: predictions shown (and explained when ``labels`` is None).
        descriptions: optional {label name: description} shown next to the names.

    Returns:
        An :class:`Explanation`; chosen labels outside the top-k get ``score`` None.

    Raises:
        XMTCError: the model has no attention, a label is unknown, or the text is empty.
    """
    if not model.supports_explain:
        raise XMTCError(f"model {model.name!r} has no per-label attention to explain; explanations need an "
                        "attention model such as 'attentionxml'")
    if not isinstance(text, str) or not text.strip():
        raise XMTCError("the text to explain is empty")
    top = model.predict([text], k=k)
    names = model.label_index_.names
    scores = {names[i]: float(s) for i, s in zip(top.indices[0], top.scores[0], strict=True) if i >= 0}
    chosen = list(scores) if labels is None else list(dict.fromkeys(str(la) for la in labels))
    for la in chosen:
        label_id(model, la)
    descriptions = descriptions or {}
    result = None
    for la in chosen:
        model_tokens, weights = model.explain(text, la)
        shown, tokens, spans, full, n_seen = align_weights(text, model_tokens, weights)
        if result is None:
            result = Explanation(text=shown, tokens=tokens, spans=spans, n_seen=n_seen, model=model.name)
        result.labels.append(LabelAttention(la, full, scores.get(la), descriptions.get(la)))
    if result is None:  # no label predicted (cannot happen for a fitted model with labels) -> tokens only
        from xmtc.text import tokenize

        tokens = tokenize(text)
        result = Explanation(text=text, tokens=tokens, spans=token_spans(text, tokens) or [], n_seen=0,
                             model=model.name)
    return result


def load_label_descriptions(run: str | Path, data: str | Path | None = None) -> dict[str, str] | None:
    """Label descriptions (``label_names.tsv[.gz]``: ``id<TAB>name``) of the dataset a run was trained on.

    Args:
        run: run folder (its ``run.json`` records the dataset path) or model folder.
        data: dataset folder to read them from instead.

    Returns:
        {label name: description}, or None when no file is found.
    """
    from xmtc.data.readers import read_label_names

    folder = Path(data).expanduser() if data is not None else None
    if folder is None:
        for cand in (Path(run) / "run.json", Path(run).parent / "run.json"):
            if cand.is_file():
                try:
                    recorded = json.loads(cand.read_text(encoding="utf-8")).get("data")
                except (OSError, ValueError, AttributeError):
                    recorded = None
                folder = Path(recorded) if isinstance(recorded, str) else None
                break
    if folder is None or not folder.is_dir():
        if data is not None:
            raise DataError(f"{folder}: no such dataset folder (for label descriptions)")
        return None
    for name in ("label_names.tsv", "label_names.tsv.gz"):
        if (folder / name).is_file():
            return read_label_names(folder / name)
    return None


# ------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#2b3a55;color:#fff;padding:10px 20px}header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;font-size:13px;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:16px 20px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px;margin-bottom:16px}
.grid{display:grid;grid-template-columns:minmax(0,1fr) 300px;gap:16px}
@media (max-width:800px){.grid{grid-template-columns:1fr}}
.text{white-space:pre-wrap;word-wrap:break-word;line-height:1.9}
.tok{border-radius:3px;padding:1px 0}.tok.out{color:#999}
.labels{list-style:none;margin:0;padding:0}.labels li{margin:0 0 6px}
.labels button{width:100%;text-align:left;border:1px solid #ccc;background:#fff;border-radius:4px;
 padding:6px 8px;cursor:pointer;font:inherit}
.labels button.active{border-color:#d9480f;background:#fff4e6}
.name{font-weight:600}.desc{display:block;font-size:13px;color:#555}
.score{float:right;font-variant-numeric:tabular-nums;color:#333}
.bar{height:4px;background:#eee;border-radius:2px;margin-top:4px}
.bar i{display:block;height:4px;background:#d9480f;border-radius:2px}
.tok.strong{color:#fff}
.note{font-size:13px;color:#666}.error{color:#b00020;font-weight:600}
textarea{width:100%;box-sizing:border-box;min-height:140px;font:inherit}
form .row{margin-top:8px;display:flex;gap:10px;align-items:center}
"""

# Weights of the shown label colour the tokens: alpha = weight / max weight of that label over the document.
# All DOM text is set with textContent (never innerHTML), so documents and labels cannot inject markup.
_JS = r"""
(function(){
"use strict";
var COLOR="217,72,15";
function paint(doc, weights, nSeen){
  var max=0, i; for(i=0;i<weights.length;i++){ if(weights[i]>max) max=weights[i]; }
  var spans=doc.querySelectorAll("span.tok");
  for(i=0;i<spans.length;i++){
    var s=spans[i], j=+s.getAttribute("data-i"), w=(j<weights.length)?weights[j]:0;
    s.setAttribute("data-w", w.toFixed(4));
    if(j>=nSeen){ s.title="beyond max_len: not seen by the model"; s.style.backgroundColor=""; continue; }
    var a=(max>0 && w>0)?0.08+0.92*w/max:0;
    s.title="weight "+w.toFixed(4);
    s.style.backgroundColor=a>0?"rgba("+COLOR+","+a.toFixed(3)+")":"";
    s.classList.toggle("strong", a>0.6);
  }
}
function activate(box, label){
  var bs=box.querySelectorAll(".labels button");
  for(var i=0;i<bs.length;i++){ bs[i].classList.toggle("active", bs[i].getAttribute("data-label")===label); }
  box.setAttribute("data-active", label);
}
function el(tag, cls, text){ var e=document.createElement(tag); if(cls) e.className=cls;
  if(text!==undefined && text!==null) e.textContent=String(text); return e; }
function labelButton(item, selectCb){
  var li=el("li"), b=el("button"); b.type="button"; b.setAttribute("data-label", item.label);
  var scored=(item.score!==null && item.score!==undefined);
  if(scored) b.appendChild(el("span","score",Number(item.score).toFixed(4)));
  b.appendChild(el("span","name",item.label));
  if(item.description) b.appendChild(el("span","desc",item.description));
  if(scored){ var bar=el("div","bar"), f=el("i");
    f.style.width=Math.max(0,Math.min(1,item.score))*100+"%"; bar.appendChild(f); b.appendChild(bar); }
  b.addEventListener("click", function(){ selectCb(item.label); }); li.appendChild(b); return li;
}
function buildText(target, text, spans, nSeen){
  target.textContent=""; var pos=0;
  for(var i=0;i<spans.length;i++){
    if(spans[i][0]>pos) target.appendChild(document.createTextNode(text.slice(pos,spans[i][0])));
    var s=el("span", i<nSeen?"tok":"tok out", text.slice(spans[i][0],spans[i][1]));
    s.setAttribute("data-i", String(i)); target.appendChild(s); pos=spans[i][1];
  }
  if(pos<text.length) target.appendChild(document.createTextNode(text.slice(pos)));
}
function hashLabel(){ var m=/(?:^|[#&])label=([^&]*)/.exec(location.hash);
  return m?decodeURIComponent(m[1]):null; }

// Static page (xmtc explain): data embedded, document pre-rendered by Python.
function initStatic(data){
  var boxes=document.querySelectorAll(".explained");
  for(var d=0; d<boxes.length; d++){ (function(box, doc){
    var byName={}; doc.labels.forEach(function(l){ byName[l.label]=l; });
    function select(label){ var l=byName[label]; if(!l) return;
      paint(box.querySelector(".text"), l.weights, doc.n_seen); activate(box, label);
      var sel=box.querySelector("select"); if(sel) sel.value=label; }
    var bs=box.querySelectorAll(".labels button");
    for(var i=0;i<bs.length;i++){ (function(b){ b.addEventListener("click", function(){
      select(b.getAttribute("data-label")); }); })(bs[i]); }
    var sel=box.querySelector("select");
    if(sel) sel.addEventListener("change", function(){ select(sel.value); });
    var wanted=hashLabel();
    select(wanted && byName[wanted] ? wanted : (doc.labels.length ? doc.labels[0].label : ""));
  })(boxes[d], data.docs[d]); }
}

// Served page (xmtc serve, GET /): a text box calling /predict and /explain.
function initServed(){
  var form=document.getElementById("ask"), box=document.querySelector(".explained");
  var status=document.getElementById("status"), textOut=box.querySelector(".text");
  var list=box.querySelector(".labels"), cache={}, current=null, canExplain=true;
  function post(url, body){ return fetch(url,{method:"POST",headers:{"Content-Type":"application/json"},
    body:JSON.stringify(body)}).then(function(r){ return r.json().then(function(j){
      if(!r.ok){ var d=j.detail; throw new Error(typeof d==="string"?d:JSON.stringify(d)); }
      return j; }); }); }
  function select(label){ if(!current) return; activate(box, label);
    if(!canExplain){ return; }
    var hit=cache[label]; var p=hit?Promise.resolve(hit):post("explain",{text:current,label:label});
    p.then(function(r){ cache[label]=r; if(box.getAttribute("data-active")!==label) return;
      buildText(textOut, r.text, r.spans, r.n_seen); paint(textOut, r.weights, r.n_seen);
      status.textContent=""; box.setAttribute("data-ready","1"); })
     .catch(function(e){ status.textContent=e.message; status.className="error"; });
  }
  function run(){
    var text=form.elements.text.value, k=parseInt(form.elements.k.value,10)||5;
    status.className="note"; status.textContent="predicting ..."; cache={}; current=text;
    post("predict",{texts:[text],k:k}).then(function(r){
      var p=r.predictions[0]; list.textContent="";
      p.labels.forEach(function(name,i){ list.appendChild(labelButton({label:name,score:p.scores[i],
        description:p.descriptions?p.descriptions[i]:null}, select)); });
      textOut.textContent=text;
      if(!p.labels.length){ status.textContent="no labels predicted"; return; }
      if(!canExplain){ status.textContent="this model has no attention: labels only";
        box.setAttribute("data-ready","1"); }
      select(p.labels[0]);
    }).catch(function(e){ status.textContent=e.message; status.className="error"; });
  }
  form.addEventListener("submit", function(ev){ ev.preventDefault(); run(); });
  fetch("health").then(function(r){ return r.json(); }).then(function(h){ canExplain=!!h.supports_explain;
    document.getElementById("model").textContent=h.model+" ("+h.n_labels+" labels)";
    var q=new URLSearchParams(location.search); if(q.get("k")) form.elements.k.value=q.get("k");
    if(q.get("text")){ form.elements.text.value=q.get("text"); run(); } });
}
var dataEl=document.getElementById("xmtc-data");
if(dataEl){ initStatic(JSON.parse(dataEl.textContent)); }
else if(document.getElementById("ask")){ initServed(); }
document.body.setAttribute("data-js","1");
})();
"""


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no HTML-significant characters)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text_html(exp: Explanation, weights: np.ndarray | None) -> str:
    """The document with one ``<span class="tok">`` per token, coloured by ``weights`` (the first label)."""
    top = float(weights[: exp.n_seen].max()) if weights is not None and exp.n_seen else 0.0
    parts, pos = [], 0
    for i, (start, end) in enumerate(exp.spans):
        parts.append(_esc(exp.text[pos:start]))
        if i >= exp.n_seen:
            attrs = ' class="tok out" title="beyond max_len: not seen by the model"'
        else:
            w = float(weights[i]) if weights is not None else 0.0
            alpha = 0.08 + 0.92 * w / top if top > 0 and w > 0 else 0.0
            cls = "tok strong" if alpha > 0.6 else "tok"
            style = f' style="background-color:rgba(217,72,15,{alpha:.3f})"' if alpha else ""
            attrs = f' class="{cls}" title="weight {w:.4f}" data-w="{w:.4f}"{style}'
        parts.append(f'<span{attrs} data-i="{i}">{_esc(exp.text[start:end])}</span>')
        pos = end
    parts.append(_esc(exp.text[pos:]))
    return "".join(parts)


def _labels_html(exp: Explanation) -> str:
    items = []
    for n, la in enumerate(exp.labels):
        active = ' class="active"' if n == 0 else ""
        score = "" if la.score is None else f'<span class="score">{la.score:.4f}</span>'
        desc = f'<span class="desc">{_esc(la.description)}</span>' if la.description else ""
        bar = "" if la.score is None else \
            f'<div class="bar"><i style="width:{100 * min(max(la.score, 0.0), 1.0):.1f}%"></i></div>'
        items.append(f'<li><button type="button"{active} data-label="{_esc(la.label)}">{score}'
                     f'<span class="name">{_esc(la.label)}</span>{desc}{bar}</button></li>')
    return "\n".join(items)


def _page(title: str, subtitle: str, body: str, script_data: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>"
            f"<header><h1>{_esc(title)}</h1><p>{subtitle}</p></header>\n<main>{body}</main>\n"
            f"{script_data}<script>{_JS}</script></body></html>\n")


def render_html(explanations: Explanation | Sequence[Explanation], title: str = "xmtc explanation") -> str:
    """A self-contained HTML page: each document highlighted by the attention of the selected label.

    Args:
        explanations: one or several :class:`Explanation` (one card per document).
        title: page title.

    Returns:
        The page (inline CSS/JS, no external assets). Without JavaScript the first label's attention is shown;
        with it the label buttons (or ``#label=NAME`` in the address) switch the highlighted label.
    """
    exps = [explanations] if isinstance(explanations, Explanation) else list(explanations)
    cards = []
    for d, exp in enumerate(exps):
        first = exp.labels[0].weights if exp.labels else None
        options = "".join(f'<option value="{_esc(la.label)}">{_esc(la.label)}</option>' for la in exp.labels)
        beyond = len(exp.tokens) - exp.n_seen
        note = f"{len(exp.tokens)} tokens" + (f"; the last {beyond} lie beyond the model's max_len and are "
                                               "not highlighted" if beyond else "")
        active = _esc(exp.labels[0].label) if exp.labels else ""
        cards.append(
            f'<section class="card explained" id="doc-{d}" data-active="{active}">'
            f'<div class="grid"><div><div class="note">Document {d + 1}: {note}. Highlight: attention of the '
            f'selected label (darker = more weight). Label: <select aria-label="label">{options}</select>'
            '</div>'
            f'<div class="text">{_text_html(exp, first)}</div></div>'
            f'<div><div class="note">Top labels (click to show their attention)</div>'
            f'<ul class="labels">{_labels_html(exp)}</ul></div></div></section>')
    model = exps[0].model if exps else ""
    data = {"docs": [{"n_seen": e.n_seen, "labels": [{"label": la.label, "weights": _round(la.weights)}
                                                       for la in e.labels]} for e in exps]}
    script = f'<script id="xmtc-data" type="application/json">{_json_for_script(data)}</script>\n'
    return _page(title, f"model: {_esc(model)}", "\n".join(cards), script)


def server_page(title: str = "xmtc") -> str:
    """The page of ``xmtc serve`` (``GET /``): a text box that calls ``/predict`` and ``/explain``.

    ``?text=...&k=...`` in the address fills the box and runs it on load.
    """
    body = ('<form id="ask" class="card"><label for="text" class="note">Document</label>'
            '<textarea id="text" name="text" placeholder="Paste a document ..."></textarea>'
            '<div class="row"><label>k <input name="k" type="number" min="1" value="5" style="width:60px">'
            '</label><button type="submit">Predict and explain</button><span id="status" class="note"></span>'
            '</div></form>'
            '<section class="card explained" data-active=""><div class="grid"><div>'
            '<div class="note">Highlight: attention of the selected label (darker = more weight).</div>'
            '<div class="text"></div></div><div><div class="note">Top labels (click to show their attention)'
            '</div><ul class="labels"></ul></div></div></section>'
            '<p class="note">API: <a href="docs">docs</a> (OpenAPI), <a href="labels">labels</a>, '
            '<a href="health">health</a></p>')
    return _page(title, 'model: <span id="model">...</span>', body)
