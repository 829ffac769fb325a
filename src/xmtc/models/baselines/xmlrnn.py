"""XML-RNN (AttentionXML paper's baseline): AttentionXML without its attention. Word vectors -> BiLSTM -> max
pooling over time -> fully connected layer(s) -> output layer over all labels; BCE loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xmtc.config import check, doc_field
from xmtc.models.base import register
from xmtc.models.deep import DeepConfig, DeepTextModel
from xmtc.models.layers import MLP, Embedding, LSTMEncoder, MaxPoolEncoder


@dataclass
class XMLRNNConfig(DeepConfig):
    """XML-RNN settings (AttentionXML's medium-scale setting with max pooling instead of attention)."""

    hidden: int = doc_field(256, "LSTM hidden units per direction")
    fc: list[int] = doc_field([256], "sizes of the fully connected layers before the output layer")
    dropout: float = doc_field(0.5, "dropout after the BiLSTM and the fully connected layers")

    def validate(self) -> None:
        super().validate()
        check(self.hidden > 0, f"hidden must be positive, but is {self.hidden}")
        check(all(s > 0 for s in self.fc), f"fc sizes must be positive, but are {self.fc}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), but is {self.dropout}")


class XMLRNNNet(nn.Module):
    """Embedding -> BiLSTM -> max pooling over time -> MLP -> logits over all labels."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, cfg: XMLRNNConfig):
        super().__init__()
        self.emb = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        self.encoder = LSTMEncoder(self.emb.dim, cfg.hidden, dropout=cfg.dropout)
        self.pool = MaxPoolEncoder()
        self.head = MLP(self.encoder.out_dim, cfg.fc, n_labels, dropout=cfg.dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> logits (batch, labels)."""
        h = self.encoder(self.emb(ids), mask)  # (batch, seq, 2*hidden)
        return self.head(self.pool(h, mask))  # (batch, labels)


@register("xmlrnn")
class XMLRNN(DeepTextModel):
    """XML-RNN: BiLSTM + max pooling + fully connected layers (AttentionXML without attention)."""

    Config = XMLRNNConfig

    @classmethod
    def tiny_config(cls) -> XMLRNNConfig:
        """A config that trains in about a second on the tiny synthetic data."""
        return XMLRNNConfig(emb_dim=16, w2v_epochs=1, hidden=16, fc=[32], epochs=20, batch_size=16, lr=1e-2,
                            dropout=0.1, emb_dropout=0.0, max_len=64, patience=0, progress=False,
                            device="cpu", threads=1)

    def build_network(self, n_labels: int, embeddings: np.ndarray) -> nn.Module:
        return XMLRNNNet(embeddings, n_labels, self.config)
