"""The data of the neural text models between encoding and the networks: an encoded split (:class:`Encoded`:
token id arrays, lengths, labels), one padded batch on the model device (:class:`TextBatch`) and the sized,
re-iterable batch sequence (:class:`Batches`) that :class:`~xmtc.models.deep.DeepTextModel` hands to the
training loop and to prediction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from xmtc.errors import XMTCError


@dataclass
class Encoded:
    """A split encoded for the networks: token id arrays (each length >= 1), their lengths, and labels.

    Attributes:
        ids: one int64 array of token ids per document (padding id 0 never occurs inside).
        lengths: int64 (n,) lengths of ``ids``.
        Y: CSR (n, L) labels, or None at prediction time.
        texts: the raw texts (set for the training split, e.g. for TF-IDF label features), or None.
    """

    ids: list[np.ndarray]
    lengths: np.ndarray
    Y: sp.csr_matrix | None = None
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TextBatch:
    """One padded batch on the model device.

    Attributes:
        ids: (batch, seq) int64 token ids, 0 = padding.
        mask: (batch, seq) bool, True at real tokens.
        rows: int64 (batch,) positions of these documents in their :class:`Encoded` split.
        Y: CSR (batch, L) labels of these documents, or None.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    rows: np.ndarray
    Y: sp.csr_matrix | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def targets(self, n_cols: int | None = None) -> torch.Tensor:
        """Dense float targets (batch, L) on the batch device."""
        if self.Y is None:
            raise XMTCError("this batch has no labels")
        y = self.Y if n_cols is None else self.Y[:, :n_cols]
        return torch.from_numpy(np.asarray(y.todense(), dtype=np.float32)).to(self.ids.device)


class Batches:
    """Sized, re-iterable sequence of :class:`TextBatch` (built lazily, one batch at a time)."""

    def __init__(self, data: Encoded, groups: Sequence[np.ndarray], device: torch.device):
        self.data, self.groups, self.device = data, list(groups), device

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[TextBatch]:
        for rows in self.groups:
            yield make_batch(self.data, rows, self.device)


def make_batch(data: Encoded, rows: np.ndarray, device: torch.device) -> TextBatch:
    """Pad documents ``rows`` of ``data`` into a :class:`TextBatch` on ``device``."""
    rows = np.asarray(rows, dtype=np.int64)
    seq = int(data.lengths[rows].max())
    ids = np.zeros((len(rows), seq), dtype=np.int64)
    for r, i in enumerate(rows):
        ids[r, : data.lengths[i]] = data.ids[i]
    ids_t = torch.from_numpy(ids).to(device)
    return TextBatch(ids=ids_t, mask=ids_t != 0, rows=rows, Y=data.Y[rows] if data.Y is not None else None)
