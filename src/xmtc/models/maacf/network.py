"""The MAACF+ network (see :mod:`xmtc.models.maacf.model` for the paper -> code map): the aspect encoders of the
text model, the label model (group co-attention, Eq. 4-8) and the predictor (Eq. 9).

Shapes: ``n`` aspects, representation size ``D``, ``c`` candidate labels per document, group size ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from xmtc.models.deep_batches import TextBatch
from xmtc.models.layers import MLP, Embedding, LabelOutput, MLAttention, candidate_logits, full_precision
from xmtc.models.maacf.aspects import AttentionLSTMEncoder, CNNAspect

if TYPE_CHECKING:
    from xmtc.models.maacf.config import MAACFConfig


@dataclass
class PairBatch:
    """A batch for :class:`MAACFNet`: word ids, sub-word ids (transformer aspect), shortlist candidates.

    Attributes:
        text: the word-level :class:`~xmtc.models.deep_batches.TextBatch` (ids, mask, rows, Y).
        sub_ids: (batch, sub_seq) int64 sub-word ids, or None without a transformer aspect.
        sub_mask: (batch, sub_seq) bool, or None.
        sub_vec: (batch, hidden) float32 cached frozen-transformer embeddings (``transformer_frozen``), or None.
        candidates: (batch, c) int64 shortlisted label ids (-1 padding), or None.
        cand_logp: (batch, c) float32 log-scores of the parabel shortlist (-inf padding), or None.
    """

    text: TextBatch
    sub_ids: torch.Tensor | None = None
    sub_mask: torch.Tensor | None = None
    sub_vec: torch.Tensor | None = None
    candidates: torch.Tensor | None = None
    cand_logp: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.text)


@dataclass
class Doc:
    """What the text model gives the label side for one batch.

    Attributes:
        s: (batch, n, D) aspect vectors s_in.
        words: (batch, seq, d_w) token states of the first XML-CNN aspect with ``word_attention``, else None.
        mask: (batch, seq) bool, True at real tokens (with ``words``), else None.
    """

    s: torch.Tensor
    words: torch.Tensor | None = None
    mask: torch.Tensor | None = None


def _masked_softmax(e: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``valid``; all-invalid rows give zeros (finite gradients)."""
    a = torch.softmax(e.float().masked_fill(~valid, -1e4), dim=-1)
    return (a * valid).to(e.dtype)


class MAACFNet(nn.Module):
    """The MAACF+ network: aspect encoders, label model, predictor (and an optional linear head).

    Args:
        embeddings: (vocab, emb_dim) initial word vectors of the word-level aspects.
        groups: int64 (L, k) global nearest label groups, -1 padded.
        cfg: the model config (``cfg.encoder_head``: the head is also added to every pair logit;
            ``cfg.label_tables``: one label table for H_z and the group members, or two).
        head: add a linear head over the mean aspect vector (shortlist or the 'encoder' variant).
    """

    def __init__(self, embeddings: np.ndarray, groups: np.ndarray, cfg: MAACFConfig, head: bool):
        super().__init__()
        n_labels, D = groups.shape[0], cfg.dim
        self.variant, self.kinds, self.scale = cfg.variant, list(cfg.aspects), D ** -0.5
        shared = Embedding(embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
        aspects = []
        for kind in self.kinds:
            emb = shared if cfg.share_embeddings else Embedding(
                embeddings, trainable=not cfg.freeze_embeddings, dropout=cfg.emb_dropout)
            if kind == "cnn":
                aspects.append(CNNAspect(emb, cfg))
            elif kind == "lstm":
                aspects.append(AttentionLSTMEncoder(emb, cfg.lstm_hidden, D, cfg.dropout))
            elif cfg.transformer_frozen:
                from xmtc.models.maacf.transformer import FrozenTransformerAspect, hidden_size

                aspects.append(FrozenTransformerAspect(hidden_size(), D, dropout=cfg.dropout))
            else:
                from xmtc.models.maacf.transformer import TransformerEncoder

                aspects.append(TransformerEncoder(D, trainable_layers=cfg.transformer_trainable_layers,
                                                  dropout=cfg.dropout))
        self.aspects = nn.ModuleList(aspects)
        self.word_aspect = self.kinds.index("cnn") if cfg.word_attention else None
        if self.word_aspect is not None:  # label-wise attention over the tokens (not in the paper)
            d_w = aspects[self.word_aspect].state_dim
            self.word_att = MLAttention(n_labels, d_w)
            self.word_out = LabelOutput(n_labels, d_w)  # zero at the start: the network without it
        self.register_buffer("groups", torch.as_tensor(np.asarray(groups, dtype=np.int64)))  # (L, k)
        self.add_head = bool(cfg.encoder_head) and self.variant != "encoder"
        self.head = nn.Linear(D, n_labels) if head or self.add_head else None
        if self.variant == "encoder":
            return
        n, k = len(self.kinds), groups.shape[1]
        self.k = k
        self.label_emb = nn.Embedding(n_labels, D)  # H_z (and h_ik with one table)
        nn.init.normal_(self.label_emb.weight, std=D ** -0.5)
        self.group_emb = nn.Embedding(n_labels, D) if k > 0 and cfg.label_tables == "two" else None  # h_ik
        if self.group_emb is not None:
            nn.init.normal_(self.group_emb.weight, std=D ** -0.5)
        if self.variant == "maacf":
            self.aspect_w = nn.Parameter(torch.zeros(n, D))  # W_n of Eq. 6
            self.aspect_b = nn.Parameter(torch.zeros(n))  # b_n of Eq. 6
        else:  # MCF+: label-independent self-attention on both sides
            self.text_att = nn.Linear(D, 1)
            self.group_att = nn.Linear(D, 1)
        self.fuse = nn.Linear(2 * D if k > 0 else D, D)  # W_f, b_f of Eq. 8
        self.product = cfg.predictor_input == "product"
        hidden = [cfg.predictor_hidden] * (cfg.predictor_layers - 1)
        self.predictor = MLP((3 if self.product else 2) * D, hidden, 1, dropout=cfg.dropout)

    def encode(self, batch: PairBatch) -> Doc:
        """The aspect vectors s_in of each document (batch, n, D), and with ``word_attention`` the token states
        of the first XML-CNN aspect."""
        out, words = [], None
        for i, (kind, enc) in enumerate(zip(self.kinds, self.aspects, strict=True)):
            if kind == "transformer" and batch.sub_vec is not None:  # frozen: the cached embeddings
                out.append(enc(batch.sub_vec))
            elif kind == "transformer":
                out.append(enc(batch.sub_ids, batch.sub_mask))
            elif i == self.word_aspect:
                vec, words = enc.with_states(batch.text.ids, batch.text.mask)
                out.append(vec)
            else:
                out.append(enc(batch.text.ids, batch.text.mask))
        return Doc(torch.stack(out, dim=1), words, None if words is None else batch.text.mask)

    def head_logits(self, s: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """Linear head over the mean aspect vector: s (batch, n, D) -> (batch, L)."""
        x = s.mean(1)
        return full_precision(self.head, x.detach() if detach else x)  # float32 under bf16 (ranked scores)

    def head_pairs(self, s: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The head's logits of the given labels only: s (batch, n, D), labels (batch, c) -> (batch, c)."""
        return candidate_logits(self.head, s.mean(1), labels)

    def member_emb(self, ids: torch.Tensor) -> torch.Tensor:
        """Group-member vectors h_ik: rows of the label table (one table) or of ``group_emb`` (two)."""
        return (self.group_emb if self.group_emb is not None else self.label_emb)(ids)

    def score(self, doc: Doc, labels: torch.Tensor) -> torch.Tensor:
        """Matching logits of each document with its candidate labels (Eq. 4-9), plus the encoder head's logit
        of each label with ``encoder_head`` and the label-wise word-attention term with ``word_attention``.

        Args:
            doc: the text model's output (:meth:`encode`).
            labels: (batch, c) int64 label ids (>= 0).

        Returns:
            (batch, c) logits.
        """
        s = doc.s
        Hz = self.label_emb(labels)  # (batch, c, D)
        Hg = None
        if self.k > 0:
            members = self.groups[labels]  # (batch, c, k)
            valid = members >= 0
            h = self.member_emb(members.clamp(min=0))  # (batch, c, k, D)
        if self.variant == "maacf":
            a = torch.softmax(torch.einsum("bcd,bnd->bcn", Hz, s) * self.scale, dim=-1)  # (batch, c, n)
            S = torch.einsum("bcn,bnd->bcd", a, s)  # label-aware attention over the aspects -> S_i
            if self.k > 0:
                e = torch.einsum("bckd,bnd->bcnk", h, s) * self.scale  # Eq. 4 scores
                alpha = _masked_softmax(e, valid.unsqueeze(2))  # (batch, c, n, k)
                h_n = torch.einsum("bcnk,bckd->bcnd", alpha, h)  # Eq. 5
                e6 = torch.einsum("bcnd,nd->bcn", h_n, self.aspect_w) + self.aspect_b
                beta = torch.softmax(e6, dim=-1)  # Eq. 6 (batch, c, n)
                Hg = torch.einsum("bcn,bcnd->bcd", beta, h_n)  # Eq. 7
        else:  # MCF+
            w = torch.softmax(self.text_att(s).squeeze(-1), dim=-1)  # (batch, n)
            S = torch.einsum("bn,bnd->bd", w, s).unsqueeze(1).expand_as(Hz)  # (batch, c, D)
            if self.k > 0:
                alpha = _masked_softmax(self.group_att(h).squeeze(-1), valid)  # (batch, c, k)
                Hg = torch.einsum("bck,bckd->bcd", alpha, h)
        H = self.fuse(torch.cat([Hz, Hg], -1) if Hg is not None else Hz)  # Eq. 8 (batch, c, D)
        x = torch.cat([S, H, S * H] if self.product else [S, H], -1)  # (batch, c, 2D or 3D)
        logit = self.predictor(x).squeeze(-1)  # Eq. 9 (batch, c)
        if self.add_head:
            logit = logit + self.head_pairs(s, labels)
        if self.word_aspect is not None:
            if doc.words is None:
                raise ValueError("this network has word_attention: score() needs the token states of encode()")
            m = self.word_att(doc.words, doc.mask, labels)  # (batch, c, d_w) each label's attended tokens
            logit = logit + self.word_out(m, labels)
        return logit
