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

The explanation data and the alignment live in :mod:`xmtc.explain_align`, the pages in :mod:`xmtc.explain_html`;
this module asks the model and re-exports their public names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from xmtc.errors import DataError, XMTCError
from xmtc.explain_align import Explanation, LabelAttention, align_weights, token_spans  # noqa: F401
from xmtc.explain_html import (  # noqa: F401 (re-exported)
    render_html,
    server_page,
)

__all__ = ["Explanation", "LabelAttention", "align_weights", "explain_text", "label_id",
           "load_label_descriptions", "render_html", "server_page", "token_spans"]


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
