"""Padding and length-bucketed batching of token-id sequences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xmtc.text.vocab import PAD

BUCKET_CHUNK_BATCHES = 50


def pad_batch(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences with ``PAD`` (0) into one tensor.

    Args:
        seqs: int id arrays, one per document (may differ in length; empty ones are allowed).

    Returns:
        (ids LongTensor (batch, max_len), lengths LongTensor (batch,)); ``max_len`` is at least 1.
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max()) if len(seqs) else 0, 1)
    out = np.full((len(seqs), width), PAD, dtype=np.int64)  # (batch, max_len)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out), torch.from_numpy(lengths)


def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None, *,
                   sort: bool | None = None) -> list[np.ndarray]:
    """Split document indices into batches of similar length, so that padding stays small.

    Training (``rng`` given): the indices are shuffled, cut into chunks of ``50 * batch_size``, each chunk
    is sorted by length (stable) and cut into batches, and the batch order is shuffled. The result depends
    only on ``lengths``, ``batch_size`` and the state of ``rng`` (use ``epoch_rng(seed, epoch)`` from
    ``xmtc.train.trainer``).

    Prediction (``rng`` None): consecutive batches in the original order, so concatenating the outputs of the
    batches gives the outputs of the documents in order. Pass ``sort=True`` to sort by length within chunks
    anyway (deterministic, no shuffle); the caller then places results with the returned indices.

    Args:
        lengths: int (n,) sequence length of each document.
        batch_size: documents per batch (the last batch of a chunk may be smaller).
        rng: random generator for training; None for prediction.
        sort: sort by length within chunks; default True when ``rng`` is given, else False.

    Returns:
        List of int64 index arrays that together hold every index in ``0..n-1`` exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, but is {batch_size}")
    lengths = np.asarray(lengths)
    n = len(lengths)
    sort = rng is not None if sort is None else sort
    order = rng.permutation(n) if rng is not None else np.arange(n, dtype=np.int64)
    batches: list[np.ndarray] = []
    chunk = batch_size * BUCKET_CHUNK_BATCHES if sort else batch_size
    for start in range(0, n, chunk):
        idx = order[start:start + chunk]
        if sort:
            idx = idx[np.argsort(-lengths[idx], kind="stable")]
        batches.extend(idx[b:b + batch_size].astype(np.int64) for b in range(0, len(idx), batch_size))
    if rng is not None:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches
