"""Word embeddings for a :class:`~xmtc.text.vocab.Vocab`: trained with word2vec CBOW (gensim) or read from a
user's word2vec/GloVe text file.

Every function returns a float32 matrix (len(vocab), dim) whose row ``i`` belongs to ``vocab.tokens[i]``:
row 0 (``<pad>``) is zeros; words without a vector get small uniform random values from a seeded generator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xmtc.data.lines import iter_lines
from xmtc.errors import DataError
from xmtc.text.vocab import PAD, Vocab

log = logging.getLogger(__name__)

# gensim silently truncates sentences longer than this (its MAX_WORDS_IN_BATCH); longer docs are chunked.
_W2V_MAX_SENTENCE = 10000


def train_word2vec(token_lists: Sequence[Sequence[str]], vocab: Vocab, dim: int = 300, epochs: int = 5,
                   window: int = 5, min_count: int = 1, seed: int = 0, workers: int = 2,
                   deterministic: bool = True) -> np.ndarray:
    """Train word2vec CBOW (``sg=0``, negative sampling) on the corpus and return vectors for ``vocab``.

    Reproducibility: with one worker thread gensim is bit-for-bit deterministic for a fixed ``seed`` (its
    initial vectors come from ``numpy.random.default_rng(seed)``, not from Python's salted ``hash``). With
    ``workers > 1`` the threads race on the shared weights, so results differ slightly from run to run. Hence
    ``deterministic=True`` (the default) forces ``workers=1``; pass ``deterministic=False`` to use ``workers``
    threads when speed matters more than exact reproducibility.

    Args:
        token_lists: tokenized training documents (the same tokenizer as ``vocab``).
        vocab: vocabulary whose rows are returned.
        dim: vector size.
        epochs: passes over the corpus.
        window: context window on each side.
        min_count: words rarer than this get no word2vec vector (their rows are random).
        seed: seed of gensim and of the random rows.
        workers: worker threads when ``deterministic`` is False.
        deterministic: force one worker thread (see above).

    Returns:
        float32 (len(vocab), dim): row 0 (``<pad>``) zeros; vocab words unknown to word2vec (``<unk>``, rare
        words) uniform in ``[-a, a]`` with ``a`` the standard deviation of the trained vectors' entries.
    """
    from gensim.models import Word2Vec

    if dim < 1 or epochs < 1 or window < 1 or min_count < 1:
        raise ValueError(f"dim, epochs, window and min_count must be positive, got dim={dim}, "
                         f"epochs={epochs}, window={window}, min_count={min_count}")
    sentences = [list(doc[i:i + _W2V_MAX_SENTENCE]) for doc in token_lists
                 for i in range(0, len(doc), _W2V_MAX_SENTENCE)]
    if not sentences:
        raise DataError("cannot train word2vec: the corpus has no tokens")
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=0,
                     epochs=epochs, seed=seed, workers=1 if deterministic else max(1, workers))
    kv = model.wv
    return _fill_matrix(vocab, dim, {w: kv[w] for w in vocab.tokens if w in kv.key_to_index}, seed)


def load_word_vectors(path: str | Path, vocab: Vocab, dim: int | None = None, seed: int = 0) -> np.ndarray:
    """Read vectors for ``vocab`` from a word2vec or GloVe *text* file (``.gz`` allowed).

    See :func:`load_word_vectors_with_stats`; this returns only the matrix and logs the coverage.
    """
    matrix, _ = load_word_vectors_with_stats(path, vocab, dim, seed)
    return matrix


def load_word_vectors_with_stats(path: str | Path, vocab: Vocab, dim: int | None = None,
                                 seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """Read vectors for ``vocab`` from a word2vec or GloVe text file.

    Format: one ``word v1 ... vdim`` line per word, separated by spaces. A word2vec text file starts with a
    ``n_words dim`` header line; a GloVe file has none (the first line decides). A word may itself contain
    spaces (GloVe 840B): the last ``dim`` fields are the vector. Exact matches win; otherwise a file word
    matches the vocab token equal to its lowercase form (for cased files such as GoogleNews). Only lines of
    vocabulary words are parsed as numbers, the others are only checked for their number of fields.

    Args:
        path: the text file (optionally gzip-compressed). Binary word2vec files are not supported.
        vocab: vocabulary whose rows are returned.
        dim: expected dimension (None: taken from the file).
        seed: seed of the random rows of words missing from the file.

    Returns:
        (float32 (len(vocab), dim) matrix as in :func:`train_word2vec`, stats) where stats has ``found``
        (vocab words with a vector), ``vocab_words`` (len(vocab) - 2), ``coverage`` (found / vocab_words),
        ``token_coverage`` (share of corpus occurrences, from ``vocab.counts``) and ``file_words``.

    Raises:
        DataError: missing file, binary file, or a malformed line (message ``file:line: ...``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: word vector file not found")
    exact: dict[int, np.ndarray] = {}
    lowered: dict[int, np.ndarray] = {}
    n_file = 0
    file_dim = dim
    hint = ("binary word2vec files are not supported; convert with gensim "
            "KeyedVectors.save_word2vec_format(binary=False)")
    # the project's one line splitter (xmtc.data.lines): \n only, \r\n ok, strict UTF-8
    for lineno, line in enumerate(iter_lines(path, hint=hint), start=1):
        fields = line.rstrip(" ").split(" ")
        if lineno == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            header_dim = int(fields[1])
            if file_dim is not None and header_dim != file_dim:
                raise DataError(f"{path}:1: header says dimension {header_dim}, expected {file_dim}")
            file_dim = header_dim
            continue
        if fields == [""]:
            continue  # blank line
        if file_dim is None:
            file_dim = len(fields) - 1
            if file_dim < 1:
                raise DataError(f"{path}:{lineno}: expected 'word v1 ... vd', got {line[:60]!r}")
        if len(fields) < file_dim + 1:
            raise DataError(f"{path}:{lineno}: expected a word and {file_dim} numbers, got "
                            f"{len(fields)} fields")
        n_file += 1
        word = fields[0] if len(fields) == file_dim + 1 else " ".join(fields[:-file_dim])
        i = vocab.get(word)
        target = exact
        if i is None:
            i = vocab.get(word.lower())
            target = lowered
        if i is None or i == PAD or i in target:
            continue
        try:
            target[i] = np.asarray(fields[-file_dim:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}:{lineno}: vector of {word!r} has a non-numeric value") from None
    if file_dim is None or n_file == 0:
        raise DataError(f"{path}: no word vectors in the file")
    found = {**lowered, **exact}
    matrix = _fill_matrix(vocab, file_dim, {vocab.tokens[i]: v for i, v in found.items()}, seed)
    stats = {**coverage_stats(vocab, list(found)), "file_words": float(n_file)}
    log.info("%s: vectors for %d of %d vocabulary words (%.1f%%, %.1f%% of token occurrences)", path,
             len(found), len(vocab) - 2, 100 * stats["coverage"], 100 * stats["token_coverage"])
    return matrix, stats


def coverage_stats(vocab: Vocab, found: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Coverage of ``vocab`` by the ids ``found`` (those with a pretrained vector).

    Returns:
        ``found`` (ids with a vector), ``vocab_words`` (len(vocab) - 2), ``coverage`` (share of the vocab words,
        ids >= 2, with a vector) and ``token_coverage`` (their share of corpus occurrences, from ``vocab.counts``).
    """
    ids = np.asarray(found, dtype=np.int64)
    words = ids[ids >= 2]
    total = max(int(vocab.counts[2:].sum()), 1)
    return {"found": float(len(ids)), "vocab_words": float(len(vocab) - 2),
            "coverage": len(words) / max(len(vocab) - 2, 1),
            "token_coverage": int(vocab.counts[words].sum()) / total}


def fill_rows(n_rows: int, dim: int, ids: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """Matrix (n_rows, dim): ``rows[j]`` at row ``ids[j]``, row 0 (PAD) zeros, the rest uniform random.

    The random rows are uniform in ``[-a, a]`` with ``a`` the standard deviation of ``rows`` (0.1 when there
    are none), drawn from ``numpy.random.default_rng(seed)``.
    """
    scale = (float(rows.std()) or 0.1) if len(rows) else 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-scale, scale, size=(n_rows, dim)).astype(np.float32)  # (V, dim)
    if len(ids):
        matrix[np.asarray(ids, dtype=np.int64)] = rows
    matrix[PAD] = 0.0
    return matrix


def _fill_matrix(vocab: Vocab, dim: int, vectors: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Matrix (len(vocab), dim): known vectors, PAD zeros, the rest small uniform random from ``seed``."""
    ids = np.asarray([vocab.index(w) for w in vectors], dtype=np.int64)
    rows = (np.stack(list(vectors.values())).astype(np.float32) if vectors
            else np.zeros((0, dim), dtype=np.float32))
    return fill_rows(len(vocab), dim, ids, rows, seed)
