"""Token vocabulary: tokens <-> ids with ``<pad>`` = 0 and ``<unk>`` = 1, persisted as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path

import numpy as np

from xmtc.errors import DataError
from xmtc.text.tokenizer import tokenize

PAD = 0
UNK = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_FORMAT = "xmtc-vocab"
_VERSION = 1


class Vocab:
    """Frozen mapping between tokens and ids.

    Id 0 is ``<pad>`` and id 1 is ``<unk>``; words follow, most frequent first, ties in alphabetical order, so
    the same corpus always gives the same ids.

    Attributes:
        tokens: token of each id (``tokens[0] == "<pad>"``, ``tokens[1] == "<unk>"``).
        counts: corpus frequency of each id (0 for the two special tokens), int64 (len,).
    """

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None):
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise DataError(f"a vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}, but starts with "
                            f"{tokens[:2]!r}")
        self.tokens: list[str] = tokens
        self._ids: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        if len(self._ids) != len(tokens):
            dup = next(t for t in tokens if tokens.count(t) > 1)
            raise DataError(f"vocabulary tokens must be unique, but {dup!r} repeats")
        if counts is None:
            counts = [0] * len(tokens)
        if len(counts) != len(tokens):
            raise DataError(f"vocabulary has {len(tokens)} tokens but {len(counts)} counts")
        self.counts = np.asarray(counts, dtype=np.int64)

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1,
              max_size: int | None = None) -> Vocab:
        """Vocabulary of the tokens in ``token_lists``.

        Args:
            token_lists: tokenized documents (e.g. from :func:`xmtc.text.tokenize`).
            min_count: drop words seen fewer times than this.
            max_size: at most this many entries in total, the two special tokens included (None: no limit).

        Returns:
            The vocabulary (words most frequent first, ties alphabetical).
        """
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, but is {min_count}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be at least 2 (room for <pad> and <unk>), but is {max_size}")
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        counter.pop(PAD_TOKEN, None)
        counter.pop(UNK_TOKEN, None)
        words = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], w))
        if max_size is not None:
            words = words[: max_size - 2]
        return cls([PAD_TOKEN, UNK_TOKEN, *words], [0, 0, *(counter[w] for w in words)])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def index(self, token: str) -> int:
        """Id of ``token`` (``UNK`` when unknown)."""
        return self._ids.get(token, UNK)

    def get(self, token: str, default: int | None = None) -> int | None:
        """Id of ``token``, or ``default`` when it is not in the vocabulary."""
        return self._ids.get(token, default)

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> np.ndarray:
        """Ids of ``tokens``, truncated to ``max_len`` (None: no limit); unknown tokens become ``UNK``.

        Returns:
            int64 (min(len(tokens), max_len),), not padded.
        """
        if max_len is not None:
            tokens = tokens[:max_len]
        return np.fromiter(map(self._ids.get, tokens, repeat(UNK)), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``."""
        return [self.tokens[int(i)] for i in ids]

    def to_json(self, path: str | Path) -> None:
        """Write the vocabulary (tokens and counts) as JSON."""
        payload = {"format": _FORMAT, "version": _VERSION, "tokens": self.tokens,
                   "counts": self.counts.tolist()}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`to_json`."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a valid vocabulary JSON file ({e})") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise DataError(f"{path}: not an xmtc vocabulary (missing format {_FORMAT!r})")
        if payload.get("version") != _VERSION:
            raise DataError(f"{path}: vocabulary version {payload.get('version')!r} is not supported "
                            f"(expects {_VERSION})")
        tokens = payload.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{path}: 'tokens' must be a list of strings")
        try:
            return cls(tokens, payload.get("counts"))
        except DataError as e:
            raise DataError(f"{path}: {e}") from None


def encode_texts(texts: Iterable[str], vocab: Vocab, max_len: int | None) -> list[np.ndarray]:
    """Tokenize and encode raw texts.

    Args:
        texts: raw documents.
        vocab: the vocabulary.
        max_len: keep at most this many tokens of each document (None: all).

    Returns:
        One int64 array per text; a text without any token gives ``array([UNK])``, so no sequence is empty.
    """
    out = []
    empty = np.array([UNK], dtype=np.int64)
    for text in texts:
        ids = vocab.encode(tokenize(text), max_len)
        out.append(ids if len(ids) else empty.copy())
    return out
