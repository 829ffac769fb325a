"""MAACF+ ranking (see :mod:`xmtc.models.maacf.model` for the paper -> code map): the top-k of a batch over the
shortlist (``all``, ``head`` or ``parabel``), the score fusion ``logit + w * log p`` with its partner (the parabel
shortlist's p_parabel, or without one the encoder head's sigmoid) and its weight w chosen on the validation split,
and the exact label scores that bypass the shortlist.

:class:`MAACFRanking` is a mixin of :class:`~xmtc.models.maacf.model.MAACF` (it reads the model's ``config``,
``n_labels_``, ``shortlist_kind``, ``fusion_weight_``, ``networks_`` and its text pipeline); it never imports the
model module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from xmtc import metrics
from xmtc.data.split import Dataset
from xmtc.errors import XMTCError
from xmtc.models.base import TopK
from xmtc.models.deep_batches import Encoded
from xmtc.models.fusion import choose_weight, fixed_weight, fuse_scores
from xmtc.models.maacf.network import Doc, MAACFNet, PairBatch
from xmtc.train import autocast


class MAACFRanking:
    """Prediction and score fusion of :class:`~xmtc.models.maacf.model.MAACF` (a mixin: no state of its own)."""

    # ----------------------------------------------------------------- score fusion
    @property
    def fusion_partner_(self) -> str | None:
        """What the network's scores are fused with: 'its parabel shortlist'; without one, 'its encoder head'
        (``encoder_head``: the head's own sigmoid, so w = inf is the head alone); None when nothing is."""
        if self.shortlist_kind == "parabel":
            return "its parabel shortlist"
        if self.shortlist_kind in ("all", "head") and self.config.encoder_head:
            return "its encoder head"
        return None

    def _fixed_fusion(self) -> float | None:
        """The fusion weight the config fixes (0 for 'none', inf for 'shortlist'), None for 'auto'."""
        return fixed_weight(self.config.fusion, "shortlist")

    def _choose_fusion(self, net: MAACFNet, valid: Encoded, side: dict) -> tuple[float, dict[str, list]]:
        """The fusion weight w with the best validation ``select_metric`` (ties: the higher nDCG@5, then the
        larger w) among ``fusion_grid``, ``train_fusion`` (the weight it was trained with, when not 0) and inf
        (the partner's own order: the shortlist's, or the head's).

        Returns:
            (w, {str(w): [select_metric, nDCG@5] in percent}).
        """
        cfg = self.config
        cand, logits, logp = self.shortlist_logits(net, valid, side)
        name, k = cfg.select_metric.split("@")
        fn = metrics.precision_at_k if name == "P" else metrics.ndcg_at_k
        kk = max(int(k), 5)

        def score(w: float) -> tuple[float, float]:
            key, _ = fuse_scores(torch.from_numpy(logits), torch.from_numpy(logp), w)
            key = key.numpy().copy()
            key[cand < 0] = -np.inf
            order = _top_positions(key, kk)  # (n, min(kk, c)), best first
            idx = np.take_along_axis(cand, order, 1)
            val = np.take_along_axis(key, order, 1)
            top = TopK(np.where(np.isfinite(val), idx, -1), val, n_labels=self.n_labels_)
            return float(fn(valid.Y, top, int(k))), float(metrics.ndcg_at_k(valid.Y, top, 5))

        grid = sorted({*cfg.fusion_grid, cfg.train_fusion}) if cfg.train_fusion > 0 else cfg.fusion_grid
        return choose_weight(grid, score)

    def shortlist_logits(self, net: MAACFNet, data: Encoded,
                         side: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidates of ``data`` with the network's logits and the fusion partner's log-scores.

        Returns:
            (candidates int64 (n, c) with -1 padding, network logits float32 (n, c), log p float32 (n, c) of
            the partner (:meth:`_candidate_scores`), -inf at padding).
        """
        parts: list[tuple[np.ndarray, ...]] = []
        with torch.no_grad(), autocast(self.device_, self.config.bf16):
            for tb in self.eval_batches(data):
                batch = self._pair_batch(tb, side)
                cand, logits, logp = self._candidate_scores(net, net.encode(batch), batch)
                logp = torch.full_like(logits, -np.inf) if logp is None else logp.float()
                parts.append((tb.rows, cand.cpu().numpy(), logits.cpu().numpy(), logp.cpu().numpy()))
        c = parts[0][1].shape[1] if parts else 0
        out = (np.full((len(data), c), -1, dtype=np.int64), np.zeros((len(data), c), dtype=np.float32),
               np.full((len(data), c), -np.inf, dtype=np.float32))
        for rows, *arrays in parts:
            for dst, src in zip(out, arrays, strict=True):
                dst[rows] = src
        return out

    def _candidate_scores(self, net: MAACFNet, doc: Doc,
                          batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(candidates int64 (b, c) with -1 padding, network logits float32 (b, c), the fusion partner's log p
        (b, c) or None) of one batch with the text model's output ``doc``: the parabel shortlist and log p_parabel; the
        head's top ``shortlist_size`` (``head``) or every label (``all``) and, with ``encoder_head``, the head's
        log sigmoid."""
        kind = self.shortlist_kind
        if kind == "parabel":
            cand = batch.candidates
            return cand, net.score(doc, cand.clamp(min=0)).float(), batch.cand_logp
        head = net.head_logits(doc.s).float() if net.head is not None else None  # (b, L)
        if kind == "head":
            cand = torch.topk(head, min(self.config.shortlist_size, self.n_labels_), dim=1).indices
            logits = net.score(doc, cand).float()
        else:  # all
            cand = torch.arange(self.n_labels_, device=doc.s.device).expand(len(doc.s), -1)
            logits = self._score_labels(net, doc, cand[0])
        logp = F.logsigmoid(torch.gather(head, 1, cand)) if net.add_head else None
        return cand, logits, logp

    # ----------------------------------------------------------------- prediction
    def _topk(self, net: MAACFNet, batch: PairBatch, k: int,
              fusion: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (label ids (b, k'), scores) of one batch; -1 marks empty shortlist slots.

        Scores are sigmoid(logit), or fused with the partner (:attr:`fusion_partner_`) sigmoid(logit + w *
        log p) for the fusion weight w (``fusion``, default ``fusion_weight_``), and p itself for w = inf.
        """
        doc = net.encode(batch)
        if self.shortlist_kind == "encoder":
            val, idx = torch.topk(net.head_logits(doc.s).float(), min(k, self.n_labels_), dim=1)
            return idx, torch.sigmoid(val)
        cand, logits, logp = self._candidate_scores(net, doc, batch)
        w = self.fusion_weight_ if fusion is None else fusion
        key, score = fuse_scores(logits, logp, w)
        key = key.masked_fill(cand < 0, float("-inf"))
        val, pos = torch.topk(key, min(k, cand.shape[1]), dim=1)
        idx = torch.gather(cand, 1, pos).masked_fill(~torch.isfinite(val), -1)
        return idx, torch.gather(score, 1, pos)

    def _score_labels(self, net: MAACFNet, doc: Doc, labels: torch.Tensor) -> torch.Tensor:
        """Logits (batch, len(labels)) of every document with the same 1-D ``labels``, in chunks."""
        step, n = self.config.label_chunk, len(doc.s)
        return torch.cat([net.score(doc, labels[lo: lo + step].expand(n, -1)).float()
                          for lo in range(0, len(labels), step)], 1)

    def _predict(self, data: Dataset | Sequence[str], k: int):
        if self.device_ is None:
            self._setup_runtime()
        net = self.networks_["network"].eval()
        enc = self.encode(self.texts_of(data))
        side = self._side_inputs(enc)
        return self.predict_encoded(enc, k, lambda b, kk: self._topk(net, self._pair_batch(b, side), kk))

    def label_scores(self, data: Dataset | Sequence[str], labels: Sequence[int]) -> np.ndarray:
        """Exact matching scores of every document with ``labels`` (the scores :meth:`predict` reports: sigmoid
        of the logit, or of the fused key), bypassing the shortlist (the tail-label evaluation of Eq. 14 ranks
        all documents for one label). Fused with the encoder head when that is the partner (exact for every
        label); never with a parabel shortlist (Parabel gives no score outside its beam).

        Returns:
            float32 (n, len(labels)).
        """
        self._check_fitted()
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_labels_):
            raise XMTCError(f"label ids must be in [0, {self.n_labels_}), got {labels.min()}..{labels.max()}")
        net = self.networks_["network"].eval()
        enc = self.encode(self.texts_of(data))
        side = self._side_inputs(enc, candidates=False)
        out = np.zeros((len(enc), len(labels)), dtype=np.float32)
        lab = torch.from_numpy(labels).to(self.device_)
        head_partner = self.fusion_partner_ == "its encoder head"
        with torch.no_grad(), autocast(self.device_, self.config.bf16):  # as predict, so the scores agree
            for tb in self.eval_batches(enc):
                doc = net.encode(self._pair_batch(tb, side))
                if net.variant == "encoder":
                    score = torch.sigmoid(net.head_logits(doc.s)[:, lab].float())  # (batch, len(labels))
                else:
                    logits = self._score_labels(net, doc, lab)
                    logp = F.logsigmoid(net.head_logits(doc.s).float()[:, lab]) if head_partner else None
                    score = fuse_scores(logits, logp, self.fusion_weight_)[1]
                out[tb.rows] = score.cpu().numpy()
        return out

    def shortlist_candidates(self, data: Dataset | Sequence[str]) -> np.ndarray:
        """The shortlist of every document: int64 (n, c) label ids (-1 padding); all labels for 'all'."""
        self._check_fitted()
        net = self.networks_["network"].eval()
        enc = self.encode(self.texts_of(data))
        side = self._side_inputs(enc)
        kind, n = self.shortlist_kind, len(enc)
        if kind in ("all", "encoder"):
            return np.tile(np.arange(self.n_labels_, dtype=np.int64), (n, 1))
        if kind == "parabel":
            return side["cand"]
        out = np.full((n, min(self.config.shortlist_size, self.n_labels_)), -1, dtype=np.int64)
        with torch.no_grad():
            for tb in self.eval_batches(enc):
                doc = net.encode(self._pair_batch(tb, side))
                top = torch.topk(net.head_logits(doc.s).float(), out.shape[1], dim=1).indices  # (batch, c)
                out[tb.rows] = top.cpu().numpy()
        return out


def _top_positions(key: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the ``k`` largest values of each row of ``key``, best first (a partial sort: the
    fusion weight is chosen over every label when all are scored)."""
    k = min(k, key.shape[1])
    if k < key.shape[1]:
        part = np.argpartition(-key, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(key.shape[1]), key.shape)
    inner = np.argsort(-np.take_along_axis(key, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, inner, 1)


def _candidates(top: TopK) -> tuple[np.ndarray, np.ndarray]:
    """A shortlist's (label ids int64 (n, c), -1 padding; log-scores float32 (n, c), -inf at padding)."""
    idx = top.indices.astype(np.int64)
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(top.scores, 1e-30, None)).astype(np.float32)
    return idx, np.where(idx >= 0, logp, -np.inf).astype(np.float32)
