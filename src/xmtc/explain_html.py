"""The explanation pages: :func:`render_html` (``xmtc explain``) and :func:`server_page` (``xmtc serve``, ``GET /``).

One self-contained page (inline CSS and JS, no external assets): the document(s), the top-k labels with scores
as buttons that switch the highlighted label. All text is HTML-escaped; the data for the script sits in a JSON
block with ``<``, ``>`` and ``&`` escaped, so a document containing ``<script>`` renders inert. Both functions
are also reachable from :mod:`xmtc.explain`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from xmtc.explain_align import Explanation, _round

__all__ = ["render_html", "server_page"]


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
