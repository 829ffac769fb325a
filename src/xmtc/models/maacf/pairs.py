"""MAACF+'s pairwise training: batches of (document, positive, negative) label pairs and the BPR-style loss (Eq. 10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from xmtc.models.maacf.model import MAACF


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BPR loss (Eq. 10): ``-mean log sigmoid(logit_pos - logit_neg)`` over the valid pairs.

    Args:
        pos: (batch, p) logits of the positive labels.
        neg: (batch, p, Neg) logits of the negatives drawn for each positive.
        valid: (batch, p, Neg) bool, pairs that count.
    """
    diff = pos.float().unsqueeze(-1) - neg.float()  # (batch, p, Neg)
    return -(F.logsigmoid(diff) * valid).sum() / valid.sum().clamp(min=1)


class _PairBatches:
    """Sized iterable of :class:`PairBatch` over the word-level training batches of one epoch."""

    def __init__(self, model: MAACF, batches, side: dict):
        self.model, self.batches, self.side = model, batches, side

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for tb in self.batches:
            yield self.model._pair_batch(tb, self.side)
