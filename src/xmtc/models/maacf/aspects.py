"""MAACF+'s text aspects: the n encoders whose outputs the co-attention reads (an XML-CNN aspect and an
attention-BiLSTM aspect here; the MiniLM aspect is in :mod:`xmtc.models.maacf.transformer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from xmtc.models.layers import CNNEncoder, Embedding, LSTMEncoder

if TYPE_CHECKING:
    from xmtc.models.maacf.config import MAACFConfig


class AttentionLSTMEncoder(nn.Module):
    """AttentionLSTM: one-layer BiLSTM, self-attention pooling over the tokens, projection to ``dim``."""

    def __init__(self, emb: Embedding, hidden: int, dim: int, dropout: float):
        super().__init__()
        self.emb = emb
        self.lstm = LSTMEncoder(emb.dim, hidden, dropout=dropout)
        self.att = nn.Linear(self.lstm.out_dim, 1)
        self.proj = nn.Linear(self.lstm.out_dim, dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> (batch, dim)."""
        h = self.lstm(self.emb(ids), mask)  # (batch, seq, 2*hidden)
        e = self.att(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (batch, seq)
        a = torch.softmax(e.float(), dim=-1).to(h.dtype)
        return self.proj(torch.bmm(a.unsqueeze(1), h).squeeze(1))  # (batch, dim)


class CNNAspect(nn.Module):
    """XML-CNN document encoder whose bottleneck layer is the aspect vector."""

    def __init__(self, emb: Embedding, cfg: MAACFConfig):
        super().__init__()
        self.emb = emb
        self.cnn = CNNEncoder(emb.dim, widths=cfg.cnn_widths, n_filters=cfg.cnn_filters,
                              chunks=cfg.cnn_chunks, bottleneck=cfg.dim, dropout=cfg.dropout)

    @property
    def state_dim(self) -> int:
        """Size of the token states of :meth:`with_states` (filter widths x feature maps)."""
        return len(self.cnn.convs) * self.cnn.convs[0].out_channels

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> (batch, dim)."""
        return self.cnn(self.emb(ids), mask)

    def with_states(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The aspect vector (batch, dim) and the token states it pools: the convolution outputs of every
        width at each token, (batch, seq, :attr:`state_dim`)."""
        maps = self.cnn.feature_maps(self.emb(ids), mask)
        return self.cnn.pool(maps, mask), torch.cat(maps, dim=1).transpose(1, 2)
