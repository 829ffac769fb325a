"""LightAttention's network: one shared AttentionXML encoder, a generator scoring label clusters and a
discriminator scoring the labels of the clusters it samples (Algorithm 2, Eq. 2-7).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from xmtc.models.deep import fc_options
from xmtc.models.layers import MLP, Embedding, LabelOutput, LSTMEncoder, MaxPoolEncoder, MLAttention

if TYPE_CHECKING:
    from xmtc.models.lightattention.model import LightAttentionConfig

_ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "none": lambda x: x}


class LightAttentionNet(nn.Module):
    """Shared BiLSTM encoder, a generator over the K label clusters and a discriminator over candidate labels.

    Args:
        embeddings: (vocab, dim) initial word vectors.
        n_labels: L.
        n_clusters: K.
        cfg: the model config.
    """

    def __init__(self, embeddings: np.ndarray, n_labels: int, n_clusters: int, cfg: LightAttentionConfig):
        super().__init__()
        self.emb = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        self.encoder = LSTMEncoder(self.emb.dim, cfg.hidden, dropout=cfg.dropout, packed=cfg.packed)
        dim = self.encoder.out_dim
        # generator: multi-label attention over the clusters + fully connected layers + one output per cluster
        self.cluster_attention = MLAttention(n_clusters, dim)
        self.generator = MLP(dim, cfg.fc, 1, **fc_options(cfg))
        # discriminator: text representation -> FC -> hidden bottleneck (W_h, b_h) -> dot with label embedding
        self.label_attention = MLAttention(n_labels, dim) if cfg.label_attention else None
        self.pool = None if cfg.label_attention else MaxPoolEncoder()
        self.disc_fc = MLP(dim, cfg.fc, None, **fc_options(cfg))
        self.bottleneck = nn.Linear(self.disc_fc.out_dim, cfg.label_emb_dim)
        self.label_emb = nn.Parameter(torch.randn(n_labels, cfg.label_emb_dim) / math.sqrt(cfg.label_emb_dim))
        self.activation = cfg.bottleneck_activation
        self.label_output = LabelOutput(n_labels, dim) if cfg.label_output else None

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, seq) -> BiLSTM token vectors (batch, seq, 2*hidden)."""
        return self.encoder(self.emb(ids), mask)

    def cluster_logits(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Generator G(e): h (batch, seq, dim), mask (batch, seq) -> logits of all clusters (batch, K)."""
        m = self.cluster_attention(h, mask)  # (batch, K, dim)
        return self.generator(m).squeeze(-1)  # (batch, K)

    def label_logits(self, h: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Discriminator D(e, M) (Eqs. 4-5) before the outer sigmoid.

        Args:
            h: (batch, seq, dim) token vectors.
            mask: (batch, seq) bool.
            candidates: (batch, c) int64 label ids (>= 0).

        Returns:
            (batch, c) logits ``M_i . act(W_h e_i + b_h)`` (``+ u_i . e_i + b_i`` with ``label_output``).
        """
        if self.label_attention is not None:
            e = self.label_attention(h, mask, candidates)  # (batch, c, dim)
        else:
            e = self.pool(h, mask).unsqueeze(1)  # (batch, 1, dim)
        z = _ACTIVATIONS[self.activation](self.bottleneck(self.disc_fc(e)))  # (batch, c | 1, emb)
        M = self.label_emb[candidates]  # (batch, c, emb), float32
        logits = (M * z.float()).sum(-1)  # (batch, c), in float32 under bf16 autocast (ranked scores)
        return logits if self.label_output is None else logits + self.label_output(e, candidates)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor,
                candidates: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids, mask (batch, seq); candidates (batch, c) or None -> (cluster logits (batch, K), label logits
        (batch, c) or None)."""
        h = self.encode(ids, mask)
        g = self.cluster_logits(h, mask)
        return g, (self.label_logits(h, mask, candidates) if candidates is not None else None)


def candidate_clusters(cluster_logits: torch.Tensor, positives: torch.Tensor | None, b: int) -> torch.Tensor:
    """Clusters whose labels are the candidates S_g (Eq. 3): the generator's top-``b`` clusters, plus (in
    training) every cluster holding a positive label.

    Args:
        cluster_logits: (batch, K) generator scores.
        positives: optional (batch, K) 0/1 cluster targets.
        b: clusters taken from the generator (clamped to K).

    Returns:
        int64 (batch, W) cluster ids in ascending order per row, ``-1`` padded; W is the largest row count.
    """
    batch, n_clusters = cluster_logits.shape
    top = torch.topk(cluster_logits.detach().float(), min(b, n_clusters), dim=1).indices  # (batch, b)
    sel = torch.zeros(batch, n_clusters, dtype=torch.bool, device=cluster_logits.device)
    sel.scatter_(1, top, True)
    if positives is not None:
        sel |= positives > 0
    counts = sel.sum(1)  # (batch,)
    width = int(counts.max())
    order = torch.argsort((~sel).to(torch.int8), dim=1, stable=True)[:, :width]  # selected first, ascending
    pad = torch.arange(width, device=sel.device).unsqueeze(0) >= counts.unsqueeze(1)  # (batch, W)
    return order.masked_fill(pad, -1)
