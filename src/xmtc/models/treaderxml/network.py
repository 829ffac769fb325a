"""TReaderXML's network: Reading (MMHSA + residual + MHSA over the text and the teacher's items), Interaction and
Prediction (Section 3, Eq. 6-17).

Two extensions (docs/MODELS.md): ``reading_residual`` wraps every attention block (Reading and Interaction) as
``LayerNorm(x + block(x))``; ``interaction="lcf"`` joins the two branches along the features, as LCF (the paper's
reference [4] for its MHSA) joins its two views: position i holds [teacher item i; word i], then a 2d -> d layer.
A third, ``pooling="label_attention"``, replaces Eq. 18's mean pooling by one attention vector per label over the
Interaction's output (AttentionXML's multi-label attention), each label scored from its own attended vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from xmtc.errors import ConfigError
from xmtc.models.layers import Embedding, MLAttention, candidate_logits, full_precision
from xmtc.models.treaderxml.teacher import (
    TeacherBatch,
)

if TYPE_CHECKING:
    from xmtc.models.treaderxml.config import TReaderXMLConfig


def parse_reading(spec: str) -> list[tuple[bool, bool]]:
    """``"mmhsa+r+mhsa"`` -> [(causal, residual), ...]: ``mmhsa`` / ``mhsa`` add a layer, ``r`` puts a
    residual connection around the layer before it."""
    blocks: list[list[bool]] = []
    for part in [p.strip().lower() for p in spec.split("+")] if spec.strip() else []:
        if part in ("mmhsa", "mhsa"):
            blocks.append([part == "mmhsa", False])
        elif part == "r" and blocks and not blocks[-1][1]:
            blocks[-1][1] = True
        else:
            raise ConfigError(f"reading must be layers 'mmhsa'/'mhsa' joined by '+', each optionally "
                              f"followed by '+r' (e.g. 'mmhsa+r+mhsa'), but is {spec!r}")
    return [(c, r) for c, r in blocks]


class SelfAttention(nn.Module):
    """Multi-head self-attention with a ``tanh`` output projection (Eq. 3-13); ``causal`` gives MMHSA (the
    upper-triangular mask of Eq. 8-9), otherwise MHSA. Padding keys are never attended."""

    def __init__(self, dim: int, heads: int, causal: bool):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"the model dimension {dim} must be a multiple of heads={heads}")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # W^q, W^k, W^v
        self.proj = nn.Linear(dim, dim, bias=False)  # W^MH
        for lin in (self.qkv, self.proj):
            nn.init.xavier_uniform_(lin.weight)  # keeps the signal's scale through stacked layers

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, seq, dim), mask (batch, seq) bool -> (batch, seq, dim), zeros at padding."""
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads)  # Eq. 4-6
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, h, t, d_k)
        allowed = mask[:, None, None, :]  # (b, 1, 1, t) keys
        if self.causal:
            allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=x.device).tril()  # (b, 1, t, t)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # Eq. 7-11: (b, h, t, d_k)
        out = torch.tanh(self.proj(h.transpose(1, 2).reshape(b, t, d)))  # (b, t, d)
        return out * mask.unsqueeze(-1).to(out.dtype)


def residual_norm(norm: nn.LayerNorm, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``LayerNorm(x + y)`` at real positions, zeros at padding (batch, seq, dim)."""
    return norm(x + y) * mask.unsqueeze(-1).to(x.dtype)


class Reading(nn.Module):
    """One branch's Reading: a stack of (M)MHSA layers, each optionally wrapped in a residual connection (``+r``,
    Eq. 14-15), or, with ``norm``, every layer wrapped as ``LayerNorm(x + layer(x))``."""

    def __init__(self, dim: int, heads: int, spec: str, norm: bool = False):
        super().__init__()
        blocks = parse_reading(spec)
        self.layers = nn.ModuleList(SelfAttention(dim, heads, causal) for causal, _ in blocks)
        self.residual = [r for _, r in blocks]
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in blocks) if norm else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, seq, dim) -> (batch, seq, dim)."""
        for i, (layer, residual) in enumerate(zip(self.layers, self.residual, strict=True)):
            y = layer(x, mask)
            if self.norms is not None:
                x = residual_norm(self.norms[i], x, y, mask)
            else:
                x = x + y if residual else y  # Eq. 14-15
        return x


class TReaderNet(nn.Module):
    """Encoding -> Reading (text and teacher branches) -> Interaction -> Prediction."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, cfg: TReaderXMLConfig):
        super().__init__()
        self.emb = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        d = self.emb.dim
        self.use_teacher = cfg.teacher
        self.read_x = Reading(d, cfg.heads, cfg.reading, norm=cfg.reading_residual)
        self.read_y = Reading(d, cfg.heads, cfg.reading, norm=cfg.reading_residual) if cfg.teacher else None
        self.fuse = nn.Linear(2 * d, d) if cfg.teacher and cfg.interaction == "lcf" else None  # LCF: 2d -> d
        if self.fuse is not None:
            nn.init.xavier_uniform_(self.fuse.weight)
        self.bottleneck = nn.Linear(d, cfg.bottleneck, bias=False)  # W^HB
        nn.init.xavier_uniform_(self.bottleneck.weight)
        self.interaction = SelfAttention(cfg.bottleneck, cfg.heads, causal=True)
        self.interaction_norm = nn.LayerNorm(cfg.bottleneck) if cfg.reading_residual else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.bottleneck, n_labels)  # W^Output (with label attention: u_j, b_j per label)
        self.label_attention = MLAttention(n_labels, cfg.bottleneck) if cfg.pooling == "label_attention" else None
        self.prior = nn.Parameter(torch.tensor([float(v) for v in cfg.teacher_prior_init])) \
            if cfg.teacher and cfg.teacher_prior else None  # (a, b) of the teacher-prior extension

    def init_output_bias(self, Y: sp.csr_matrix) -> None:
        """Start every label's bias at the log-odds of its training frequency (instead of 0, where the
        one-vs-all loss first spends many steps pushing thousands of rare labels down)."""
        counts = np.bincount(sp.csr_matrix(Y).indices, minlength=self.out.out_features)
        p = np.clip(np.maximum(counts, 0.5) / max(Y.shape[0], 1), 1e-7, 1 - 1e-7)
        with torch.no_grad():
            self.out.bias.copy_(torch.from_numpy(np.log(p / (1 - p)).astype(np.float32)))

    def encode_teacher(self, tb: TeacherBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """E_y' (batch, K, dim) and its mask (batch, K); slot 0 always counts (an empty set reads as
        zeros)."""
        b, K = tb.slots.shape
        w = self.emb.embed.weight
        if len(tb.offsets):
            items = F.embedding_bag(tb.tokens, w, tb.offsets, mode="sum",
                                    per_sample_weights=tb.weights)  # (U, d) Encode(T_k)
            e = items[tb.slots.clamp(min=0)] * (tb.slots >= 0).unsqueeze(-1).to(items.dtype)  # (b, K, d)
        else:
            e = w.new_zeros(b, K, w.shape[1])
        mask = tb.slots >= 0
        mask[:, 0] = True
        return self.emb.dropout(e), mask

    def fuse_features(self, oy: torch.Tensor, ymask: torch.Tensor, ox: torch.Tensor,
                      xmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LCF-style Interaction input: position i = ``fuse([O_y'_i; O_x_i])`` (2d -> d), the shorter branch
        zero-padded to S = max(K, T); a position counts when either branch has a real entry there.

        Returns:
            (fused (b, S, d), mask (b, S) bool).
        """
        S = max(oy.shape[1], ox.shape[1])

        def pad(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = x * m.unsqueeze(-1).to(x.dtype)  # padding contributes nothing
            return F.pad(x, (0, 0, 0, S - x.shape[1])), F.pad(m, (0, S - m.shape[1]), value=False)

        (y, ym), (x, xm) = pad(oy, ymask), pad(ox, xmask)
        mask = ym | xm
        return self.fuse(torch.cat([y, x], dim=-1)) * mask.unsqueeze(-1).to(x.dtype), mask

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, teacher: TeacherBatch | None = None,
                candidates: torch.Tensor | None = None, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of all labels (batch, L), or of ``candidates`` (batch, C) when given.

        Args:
            ids, mask: (batch, seq) token ids and real-token mask.
            teacher: the batch's teacher items (needed when the teacher branch is on).
            candidates: (batch, C) label ids, -1 padded, or None.
            prior: (batch, L | C) teacher vote share of each scored label (``teacher_prior`` only).
        """
        o = self.read_x(self.emb(ids), mask)  # O_x (b, T, d)
        if self.use_teacher:
            ey, ymask = self.encode_teacher(teacher)
            oy = self.read_y(ey, ymask)  # O_y' (b, K, d)
            if self.fuse is None:
                o = torch.cat([oy, o], dim=1)  # Eq. 16: [O_y'; O_x] along the sequence (b, K + T, d)
                mask = torch.cat([ymask, mask], dim=1)
            else:
                o, mask = self.fuse_features(oy, ymask, o, mask)  # (b, max(K, T), d)
        h = self.bottleneck(o)  # Eq. 17 (b, S, hb)
        z = self.interaction(h, mask)  # MMHSA
        if self.interaction_norm is not None:
            z = residual_norm(self.interaction_norm, h, z, mask)
        if self.label_attention is not None:
            logits = self.label_logits(z, mask, candidates)
        else:
            m = mask.unsqueeze(-1).to(z.dtype)
            z = self.dropout((z * m).sum(1) / m.sum(1))  # masked mean pooling (b, hb)
            if candidates is None:  # Eq. 18, in float32 under bf16 autocast (ranked scores)
                logits = full_precision(self.out, z)  # (b, L)
            else:
                logits = candidate_logits(self.out, z, candidates.clamp(min=0))  # (b, C)
        if self.prior is not None and prior is not None:  # per label: a * vote share + b * [proposed]
            logits = logits + self.prior[0] * prior + self.prior[1] * (prior > 0).to(logits.dtype)
        return logits

    #: labels attended at once when all labels are scored without gradient (prediction memory)
    LABEL_BLOCK = 512

    def label_logits(self, z: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        """``pooling="label_attention"``: label j attends over the Interaction output z (b, S, hb) with its own
        vector, and its logit is ``u_j . m_j + b_j`` (``u_j``, ``b_j`` = row j of W^Output), in float32.

        Returns:
            (b, L) logits, or (b, C) for ``candidates`` (b, C) (-1 padded).
        """
        if candidates is None and not torch.is_grad_enabled():  # all labels at prediction: blocks of labels,
            ids = torch.arange(self.out.out_features, device=z.device)  # so (b, L, S) is never held at once
            return torch.cat([self.label_logits(z, mask, blk.expand(z.shape[0], -1))
                              for blk in ids.split(self.LABEL_BLOCK)], dim=1)
        c = None if candidates is None else candidates.clamp(min=0)
        m = self.dropout(self.label_attention(z, mask, c)).float()  # (b, L | C, hb)
        if c is None:
            w, b = self.out.weight, self.out.bias  # (L, hb), (L,)
        else:
            w, b = self.out.weight[c], self.out.bias[c]  # (b, C, hb), (b, C)
        return (m * w.float()).sum(-1) + b.float()
