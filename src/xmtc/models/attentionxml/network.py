"""AttentionXML's network: word vectors -> BiLSTM -> multi-label attention -> fully connected layers -> one score per
candidate label (Section 2.3 of the paper).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from xmtc.models.deep import fc_options
from xmtc.models.layers import MLP, Embedding, LabelOutput, LSTMEncoder, MLAttention

if TYPE_CHECKING:
    from xmtc.models.attentionxml.model import AttentionXMLConfig


class AttentionNet(nn.Module):
    """One AttentionXML network: embedding -> BiLSTM -> multi-label attention -> shared MLP -> logit/label.

    ``sparse`` gives the attention vectors a sparse gradient on the candidate path (levels below the top)."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, cfg: AttentionXMLConfig, sparse: bool = False):
        super().__init__()
        self.emb = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        self.encoder = LSTMEncoder(self.emb.dim, cfg.hidden, dropout=cfg.dropout, packed=cfg.packed)
        self.attention = MLAttention(n_labels, self.encoder.out_dim, sparse=sparse)
        self.head = MLP(self.encoder.out_dim, cfg.fc, 1, **fc_options(cfg))
        self.label_output = LabelOutput(n_labels, self.encoder.out_dim) if cfg.label_output else None

    #: True when ``emb`` and ``encoder`` belong to the level above and stay frozen (``share_encoder``).
    frozen_encoder: bool = False

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> token vectors (batch, seq, 2*hidden); no gradient when frozen."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_encoder):
            return self.encoder(self.emb(ids), mask)

    def score(self, h: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor | None = None,
              return_weights: bool = False):
        """Token vectors (batch, seq, 2*hidden) -> logits (batch, c|labels) [, attention (batch, c, seq)]."""
        m, alpha = self.attention(h, mask, candidates, return_weights=True)  # (batch, c, 2*hidden)
        logits = self.head(m).squeeze(-1)  # (batch, c)
        if self.label_output is not None:
            logits = logits.float() + self.label_output(m, candidates)
        return (logits, alpha) if return_weights else logits

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor | None = None,
                return_weights: bool = False):
        """ids, mask (batch, seq); candidates (batch, c) or None -> logits (batch, c|labels) [, attention]."""
        return self.score(self.encode(ids, mask), mask, candidates, return_weights=return_weights)

    def share_encoder_of(self, upper: AttentionNet) -> None:
        """Use ``upper``'s embedding and BiLSTM (the same modules), frozen while this network trains."""
        self.emb, self.encoder, self.frozen_encoder = upper.emb, upper.encoder, True

    #: state keys with one row per label: a node starts from its parent's row (:meth:`init_from`)
    PER_LABEL = ("attention.weight", "label_output.weight", "label_output.bias")

    def init_from(self, upper: AttentionNet, parents: np.ndarray) -> None:
        """Copy the level above's weights; each node's attention vector (and label-wise output term) starts as
        its parent's."""
        own, rows = self.state_dict(), torch.as_tensor(parents)
        for key, value in upper.state_dict().items():  # per-label rows: (n_upper, ...) -> (n_nodes, ...)
            own[key].copy_(value[rows.to(value.device)] if key in self.PER_LABEL else value)
