"""XML-CNN (Liu et al. 2017) on the shared layers: word vectors -> convolutions of widths (2, 4, 8) -> dynamic max
pooling into p chunks -> bottleneck layer -> dropout -> output layer over all labels; BCE loss.

It scores every label with one output matrix (no label tree), so it suits up to a few thousand labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xmtc.config import check, doc_field
from xmtc.models.base import register
from xmtc.models.deep import DeepConfig, DeepTextModel
from xmtc.models.layers import CNNEncoder, Embedding, full_precision


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
        return full_precision(self.out, self.encoder(self.emb(ids), mask))  # float32 under bf16 (ranked scores)


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


