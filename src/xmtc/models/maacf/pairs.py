"""MAACF+'s ranking losses: the BPR-style pairwise loss (Eq. 10) over sampled pairs, and the shortlist losses
(``rank_loss='bce'`` or ``'listwise'``) over a document's positives and its whole training shortlist; the
batches of one epoch.
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


def shortlist_loss(kind: str, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The loss of one batch of scored shortlists.

    Args:
        kind: ``"bce"`` (mean binary cross-entropy over the valid entries) or ``"listwise"`` (for each valid
            positive, ``-log softmax`` of its logit against the document's valid negatives; mean over the
            positives).
        logits: (batch, m) pair logits of each document's positives and shortlisted negatives.
        positive: (batch, m) bool, the entry is a gold label.
        valid: (batch, m) bool, the entry counts (False: padding, or a duplicate of a positive).
    """
    logits = logits.float()
    if kind == "bce":
        bce = F.binary_cross_entropy_with_logits(logits, positive.float(), reduction="none")
        return (bce * valid).sum() / valid.sum().clamp(min=1)
    pos_ok, neg_ok = valid & positive, valid & ~positive
    lse_neg = torch.logsumexp(logits.masked_fill(~neg_ok, float("-inf")), dim=1, keepdim=True)  # (batch, 1)
    nll = torch.logaddexp(logits, lse_neg) - logits  # (batch, m): -log p(positive | it + the negatives)
    return (nll * pos_ok).sum() / pos_ok.sum().clamp(min=1)


def shortlist_prior(pos: torch.Tensor, cand: torch.Tensor, cand_logp: torch.Tensor) -> torch.Tensor:
    """The shortlist's log-scores of the entries that :func:`shortlist_loss` scores: a document's positives,
    then its shortlist (``train_fusion``).

    A positive takes its shortlist entry's log-score, or, outside the shortlist, the document's lowest one (the
    shortlist says only that it ranks below its last candidate). Padding gets 0, so that it stays finite in the
    loss, which masks it.

    Args:
        pos: (batch, p) positive label ids (padding masked by the caller).
        cand: (batch, c) shortlisted label ids, -1 padding.
        cand_logp: (batch, c) their log-scores, -inf at padding.

    Returns:
        (batch, p + c) float32 log-scores.
    """
    ok = cand >= 0
    logp = cand_logp.float().masked_fill(~ok, 0.0)  # (batch, c)
    floor = cand_logp.float().masked_fill(~ok, float("inf")).min(1, keepdim=True).values  # (batch, 1)
    floor = torch.where(ok.any(1, keepdim=True), floor, torch.zeros_like(floor))  # an empty shortlist: 0
    same = (pos[:, :, None] == cand[:, None, :]) & ok[:, None, :]  # (batch, p, c)
    pos_logp = torch.where(same, logp[:, None, :], torch.zeros_like(logp[:, None, :])).sum(-1)  # no 0 * -inf
    pos_logp = torch.where(same.any(-1), pos_logp, floor)  # (batch, p)
    return torch.cat([pos_logp, logp], 1)


class _PairBatches:
    """Sized iterable of :class:`PairBatch` over the word-level training batches of one epoch."""

    def __init__(self, model: MAACF, batches, side: dict):
        self.model, self.batches, self.side = model, batches, side

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for tb in self.batches:
            yield self.model._pair_batch(tb, self.side)
