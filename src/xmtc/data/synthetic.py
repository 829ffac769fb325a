"""Synthetic power-law multi-label text data that models can actually learn, up to millions of labels.

Each label owns ``words_per_label`` characteristic words; a document mixes words of its labels with shared
noise words. Label frequencies follow a power law (label id ``j`` has probability proportional to
``(j + 1) ** -alpha``, so label ``"0"`` is the most frequent). Nothing of size ``n_labels * vocab_size`` is
ever built: the words of label ``j`` are computed by a bijective hash of ``(j, slot)``, and everything else is
vectorised over tokens.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.data.split import Dataset
from xmtc.errors import ConfigError

_FIRST = [c + v for c in "kvz" for v in "aeiou"]  # first syllable: no English stop word starts like this
_REST = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
_PRIMES = (1_000_000_007, 998_244_353, 1_000_003)


def word_of(i: int) -> str:
    """The letters-only word with id ``i`` (distinct ids give distinct words, at least 6 letters)."""
    out = [_FIRST[i % len(_FIRST)]]
    i //= len(_FIRST)
    while i > 0 or len(out) < 3:
        out.append(_REST[i % len(_REST)])
        i //= len(_REST)
    return "".join(out)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def make_synthetic(
    n_docs: int = 1000,
    n_labels: int = 100,
    *,
    vocab_size: int | None = None,
    doc_len: int = 50,
    labels_per_doc: float = 3.0,
    alpha: float = 1.1,
    words_per_label: int = 4,
    noise: float = 0.5,
    n_groups: int = 0,
    seed: int = 0,
    split_test: float = 0.2,
) -> tuple[Dataset, Dataset]:
    """Make a seeded synthetic (train, test) pair of text datasets.

    Args:
        n_docs: documents in total (train + test).
        n_labels: size of the label space; label names are ``"0" .. str(n_labels - 1)`` and name = id.
        vocab_size: words in total; default ``min(1000 + words_per_label * n_labels, 2_000_000)``. A tenth of
            it (at most 5,000) are noise words shared by all labels; the rest are characteristic words,
            disjoint between labels while ``words_per_label * n_labels`` fits, shared by several labels
            otherwise.
        doc_len: mean words per document (lengths are uniform in ``[doc_len / 2, 1.5 * doc_len]``).
        labels_per_doc: mean labels per document (1 + Poisson; duplicates of frequent labels merge).
        alpha: power-law exponent of label frequencies.
        words_per_label: characteristic words owned by each label.
        noise: share of a document's words that are noise words.
        n_groups: when positive, a two-level hierarchy ``label -> "group{j % n_groups}"``.
        seed: the same seed gives identical data.
        split_test: share of documents in the test split.

    Returns:
        (train, test): Datasets sharing one LabelIndex of all ``n_labels`` labels (no label is unseen).
    """
    _check(n_docs >= 1, f"n_docs must be positive, but is {n_docs}")
    _check(n_labels >= 1, f"n_labels must be positive, but is {n_labels}")
    _check(doc_len >= 1, f"doc_len must be positive, but is {doc_len}")
    _check(labels_per_doc >= 1, f"labels_per_doc must be at least 1, but is {labels_per_doc}")
    _check(alpha >= 0, f"alpha must be non-negative, but is {alpha}")
    _check(words_per_label >= 1, f"words_per_label must be positive, but is {words_per_label}")
    _check(0 <= noise < 1, f"noise must be in [0, 1), but is {noise}")
    _check(0 <= split_test < 1, f"split_test must be in [0, 1), but is {split_test}")
    _check(n_groups >= 0, f"n_groups must be non-negative, but is {n_groups}")
    if vocab_size is None:
        vocab_size = min(1000 + words_per_label * n_labels, 2_000_000)
    _check(vocab_size >= 2, f"vocab_size must be at least 2, but is {vocab_size}")
    rng = np.random.default_rng(seed)
    L, W = n_labels, words_per_label

    # Labels: 1 + Poisson per document, drawn from the power law, duplicates merged.
    cap = max(1, min(L, int(np.ceil(4 * labels_per_doc))))
    k = np.clip(1 + rng.poisson(labels_per_doc - 1, n_docs), 1, cap)  # (n_docs,)
    cdf = np.cumsum(np.arange(1, L + 1, dtype=np.float64) ** -alpha)  # (L,)
    drawn = np.minimum(np.searchsorted(cdf, rng.random(int(k.sum())) * cdf[-1], side="right"), L - 1)
    keys = np.unique(np.repeat(np.arange(n_docs, dtype=np.int64), k) * L + drawn)  # sorted by (doc, label)
    lab_doc, labels = keys // L, keys % L
    k = np.bincount(lab_doc, minlength=n_docs)
    lab_ptr = np.concatenate([[0], np.cumsum(k)])
    Y = sp.csr_matrix(
        (np.ones(labels.size, dtype=np.float32), labels.astype(np.int32), lab_ptr), shape=(n_docs, L)
    )

    # Tokens: one characteristic word of every label first, then label or noise words at random.
    lengths = np.maximum(
        rng.integers(max(1, doc_len // 2), doc_len + doc_len // 2 + 1, n_docs), k
    )  # (n_docs,)
    tok_ptr = np.concatenate([[0], np.cumsum(lengths)])
    T = int(tok_ptr[-1])
    tok_doc = np.repeat(np.arange(n_docs), lengths)  # (T,)
    pos = np.arange(T) - tok_ptr[tok_doc]
    forced = pos < k[tok_doc]
    slot = np.where(forced, pos, (rng.random(T) * k[tok_doc]).astype(np.int64))
    tok_label = labels[lab_ptr[tok_doc] + slot]  # (T,)
    n_noise = max(1, min(5000, vocab_size // 10))
    M = vocab_size - n_noise
    prime = next(p for p in _PRIMES if M % p)
    char_word = n_noise + ((tok_label * W + rng.integers(0, W, T)) * prime) % M
    noise_cdf = np.cumsum(1.0 / np.arange(1, n_noise + 1))
    noise_word = np.minimum(
        np.searchsorted(noise_cdf, rng.random(T) * noise_cdf[-1], side="right"), n_noise - 1
    )
    is_noise = (rng.random(T) < noise) & ~forced
    words = np.where(is_noise, noise_word, char_word)
    words = words[np.lexsort((rng.random(T), tok_doc))]  # shuffle within each document

    uniq, inverse = np.unique(words, return_inverse=True)
    strs = np.array([word_of(int(u)) for u in uniq], dtype=object)[inverse]
    texts = [" ".join(strs[tok_ptr[i] : tok_ptr[i + 1]].tolist()) for i in range(n_docs)]

    index = LabelIndex([str(j) for j in range(L)])
    hierarchy = Hierarchy([(str(j), f"group{j % n_groups}") for j in range(L)]) if n_groups else None
    data = Dataset(Y=Y, label_index=index, texts=texts, hierarchy=hierarchy, name=f"synthetic-{n_docs}x{L}")
    n_test = min(int(round(n_docs * split_test)), n_docs - 1)
    perm = rng.permutation(n_docs)
    return data.subset(np.sort(perm[n_test:]), split="train"), data.subset(
        np.sort(perm[:n_test]), split="test"
    )
