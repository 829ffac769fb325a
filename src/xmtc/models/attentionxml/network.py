"""AttentionXML's network: word vectors -> BiLSTM -> multi-label attention -> fully connected layers -> one score per
candidate label (Section 2.3 of the paper).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from xmtc.models.layers import MLP, Embedding, LSTMEncoder, MLAttention

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
        self.head = MLP(self.encoder.out_dim, cfg.fc, 1, dropout=cfg.dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor | None = None,
                return_weights: bool = False):
        """ids, mask (batch, seq); candidates (batch, c) or None -> logits (batch, c|labels) [, attention]."""
        h = self.encoder(self.emb(ids), mask)  # (batch, seq, 2*hidden)
        m, alpha = self.attention(h, mask, candidates, return_weights=True)  # (batch, c, 2*hidden)
        logits = self.head(m).squeeze(-1)  # (batch, c)
        return (logits, alpha) if return_weights else logits

    def init_from(self, upper: AttentionNet, parents: np.ndarray) -> None:
        """Copy the level above's weights; each node's attention vector starts as its parent's."""
        own = self.state_dict()
        for key, value in upper.state_dict().items():
            if key != "attention.weight":
                own[key].copy_(value)
        upper_w = upper.attention.weight.detach()  # (n_upper, dim)
        own["attention.weight"].copy_(upper_w[torch.as_tensor(parents, device=upper_w.device)])
