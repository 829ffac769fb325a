"""Deep baselines built from the shared layers: XML-CNN (Liu et al. 2017) and XML-RNN (AttentionXML paper).

* XML-CNN: word vectors -> convolutions of widths (2, 4, 8) -> dynamic max pooling into p chunks -> bottleneck
  layer -> dropout -> output layer over all labels; BCE loss.
* XML-RNN: AttentionXML without its attention: word vectors -> BiLSTM -> max pooling over time -> fully
  connected layer(s) -> output layer over all labels; BCE loss.

Both score every label with one output matrix (no label tree), so they suit up to a few thousand labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xmtc.config import check, doc_field
from xmtc.models.base import register
from xmtc.models.deep import DeepConfig, DeepTextModel
from xmtc.models.layers import MLP, CNNEncoder, Embedding, LSTMEncoder, MaxPoolEncoder


@dataclass
class XMLCNNConfig(DeepConfig):
    """XML-CNN settings (defaults follow Liu et al. 2017 for EUR-Lex-sized data)."""

    widths: list[int] = doc_field([2, 4, 8], "convolution filter widths")
    n_filters: int = doc_field(128, "feature maps per filter width")
    chunks: int = doc_field(8, "p: pieces of the dynamic max pooling")
    bottleneck: int = doc_field(512, "size of the bottleneck (hidden) layer")
    dropout: float = doc_field(0.5, "dropout after the bottleneck")

    def validate(self) -> None:
        super().validate()
        check(len(self.widths) > 0 and all(w > 0 for w in self.widths),
              f"widths must be a non-empty list of positive ints, but is {self.widths}")
        check(self.n_filters > 0, f"n_filters must be positive, but is {self.n_filters}")
        check(self.chunks > 0, f"chunks must be positive, but is {self.chunks}")
        check(self.bottleneck > 0, f"bottleneck must be positive, but is {self.bottleneck}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), but is {self.dropout}")


class XMLCNNNet(nn.Module):
    """Embedding -> CNNEncoder (with bottleneck) -> Linear over all labels."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, cfg: XMLCNNConfig):
        super().__init__()
        self.emb = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        self.encoder = CNNEncoder(self.emb.dim, widths=cfg.widths, n_filters=cfg.n_filters, chunks=cfg.chunks,
                                  bottleneck=cfg.bottleneck, dropout=cfg.dropout)
        self.out = nn.Linear(self.encoder.out_dim, n_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> logits (batch, labels)."""
        return self.out(self.encoder(self.emb(ids), mask))


@register("xmlcnn")
class XMLCNN(DeepTextModel):
    """XML-CNN: convolutional text encoder with dynamic max pooling and a bottleneck layer."""

    Config = XMLCNNConfig

    @classmethod
    def tiny_config(cls) -> XMLCNNConfig:
        """A config that trains in about a second on the tiny synthetic data."""
        return XMLCNNConfig(emb_dim=16, w2v_epochs=1, n_filters=8, chunks=2, bottleneck=32, epochs=12,
                            batch_size=16, lr=5e-3, dropout=0.1, emb_dropout=0.0, max_len=64, patience=0,
                            progress=False, device="cpu", threads=1)

    def build_network(self, n_labels: int, embeddings: np.ndarray) -> nn.Module:
        return XMLCNNNet(embeddings, n_labels, self.config)


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
