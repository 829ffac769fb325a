"""Word tokenizer shared by every model (deep and sparse), so that all of them see the same tokens.

The cleaning follows AttentionXML's preprocessing in spirit (lowercase, word tokens, punctuation dropped,
numbers kept) but uses one compiled Unicode regex instead of NLTK (dependency-free and fast). A token is

* a number with internal decimal/thousands separators (``3.5``, ``1,000``), or
* a maximal run of Unicode letters/digits, with internal hyphens kept (``anti-dumping``, ``2001-2005``,
  ``covid19``, ``größe``).

Apostrophes, slashes and all other punctuation separate tokens (``commission's`` -> ``commission``, ``s``),
the way NLTK's tokenizer splits the possessive off. Underscores are separators too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# [^\W_] = any Unicode letter or digit (\w minus the underscore).
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:-[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens of ``text``.

    Args:
        text: raw document text (any Unicode).

    Returns:
        Tokens in order of appearance; an empty list for a text without letters or digits.

    Example:
        >>> tokenize("The EC's anti-dumping duty of 3.5% (Regulation No 1234/2001).")
        ['the', 'ec', 's', 'anti-dumping', 'duty', 'of', '3.5', 'regulation', 'no', '1234', '2001']
    """
    return _TOKEN_RE.findall(text.lower())


def tokenize_all(texts: Iterable[str]) -> list[list[str]]:
    """:func:`tokenize` over many texts."""
    findall = _TOKEN_RE.findall
    return [findall(t.lower()) for t in texts]
