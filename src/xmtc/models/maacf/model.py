"""MAACF+ (Wang et al.): multi-aspect co-attentional collaborative filtering for XMTC.

A document and a candidate label form a pair; the network scores the pair and is trained with a ranking loss
against negative labels, like a recommender scoring user-item pairs (the paper: BPR against sampled labels;
the default here: a listwise softmax against the document's whole training shortlist).

Paper -> code:

* global nearest label groups, CF-IDF (Sec. 3.2.1, Eq. 1-3) -> :func:`~xmtc.models.maacf.label_groups.cf_idf`,
  :func:`~xmtc.models.maacf.label_groups.nearest_label_groups` (the ``groups`` buffer of :class:`MAACFNet`);
* text model (Sec. 3.2.2): ``n`` independent document encoders, the "aspects" s_in -> :meth:`MAACFNet.encode`
  (``cnn``: XML-CNN, :class:`~xmtc.models.layers.CNNEncoder`; ``lstm``: attention-BiLSTM,
  :class:`~xmtc.models.maacf.network.AttentionLSTMEncoder`; ``transformer``: all-MiniLM-L6-v2,
  :class:`~xmtc.models.maacf.transformer.TransformerEncoder`), then label-aware attention of the target
  label's embedding H_z over the aspects -> S_i in :meth:`MAACFNet.score`;
* label model (Sec. 3.2.3): per-aspect attention over the group members (Eq. 4-5), self-attention fusion over
  the aspects (Eq. 6-7) and the linear fusion H_i = W_f [H_z; H_g] + b_f (Eq. 8) -> :meth:`MAACFNet.score`;
  the members' vectors h_ik are rows of the same label table as H_z (``label_tables="one"``; "two": their own
  table);
* predictor (Sec. 3.3): MLP over [S_i; H_i] (Eq. 9) -> ``MAACFNet.predictor``; BPR loss (Eq. 10) with
  ``negatives`` uniform negatives per positive -> :meth:`MAACF.pair_loss` with ``rank_loss="bpr"`` (not in the
  paper: the default 'listwise', and 'bce', train on the document's whole training shortlist instead); not in
  the paper: with ``encoder_head`` a linear head over the mean aspect vector adds its logit of the label to the
  pair logit and trains with BCE on all labels, so the encoders get a gradient from every label
  (:meth:`MAACFNet.head_pairs`); not in the paper either, off by default: with ``word_attention`` each candidate
  label also attends over the XML-CNN aspect's token states with its own vector (as AttentionXML's labels do)
  and a label-wise term of that joins the pair logit;
* variants: ``variant="mcf"`` (MCF+, self-attention only: no text-label interaction before the predictor),
  ``aspects`` of length 1 (ACF+), ``variant="encoder"`` (the document encoder alone with a linear BCE head
  over all labels: the baselines of Tables 5-6), ``group_size`` k (Fig. 2-3), ``predictor_layers`` (Fig. 4).

Inference at scale: the pair score depends on the document (the group attention is queried by the aspects),
so scoring every label costs an MLP per label. ``shortlist`` picks the labels to rerank: ``all`` (exact, for
small label sets), ``parabel`` (top ``shortlist_size`` of a sparse Parabel label-tree model on TF-IDF, trained
first; the default above ``shortlist_size`` labels) or ``head`` (top ``shortlist_size`` of a linear head over
the mean aspect vector, trained alongside). The shortlist losses train on the same shortlist (and, with
``rank_loss="bpr"``, ``hard_negatives`` draws some negatives from it), so that the reranker sees the
confusable labels it has to order at prediction time; with Parabel the training documents' shortlists are
cross-fitted (``shortlist_folds``: each comes from a Parabel that did not see the document), because
Parabel's in-sample top labels are nearly all gold.

Score fusion (``fusion``): a parabel shortlist is ranked by ``logit + w * log p_parabel``, with w chosen on the
validation split after training among ``fusion_grid`` and w = inf (the shortlist's own order), so a network
that learned nothing gives back the shortlist's order instead of reordering it by noise or popularity.

The prediction side (top-k over the shortlist, the fusion weight's choice, exact label scores) lives in
:class:`~xmtc.models.maacf.ranking.MAACFRanking` and the parabel shortlists (fitted, cross-fitted, kept in the
run directory) in :class:`~xmtc.models.maacf.shortlists.MAACFShortlists`, two mixins of :class:`MAACF`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import load_model, register
from xmtc.models.deep import DeepTextModel, bce_loss
from xmtc.models.deep_batches import Encoded, TextBatch
from xmtc.models.fusion import weight_json as _weight_json
from xmtc.models.maacf.config import SHORTLIST_DIR, MAACFConfig
from xmtc.models.maacf.label_groups import (
    nearest_label_groups,
    sample_hard_negatives,
    sample_negatives,
)
from xmtc.models.maacf.network import MAACFNet, PairBatch
from xmtc.models.maacf.pairs import _PairBatches, bpr_loss, shortlist_loss, shortlist_prior
from xmtc.models.maacf.ranking import MAACFRanking, _candidates
from xmtc.models.maacf.shortlists import MAACFShortlists
from xmtc.train import train_loop


@register("maacf")
class MAACF(MAACFRanking, MAACFShortlists, DeepTextModel):
    """MAACF+: document-label matching with multi-aspect co-attention, label groups and an NCF predictor.

    Fitted state (besides :class:`~xmtc.models.deep.DeepTextModel`'s): ``groups_`` int64 (L, k) label groups,
    ``shortlister_`` (a fitted ``parabel`` model with ``shortlist='parabel'``), ``fusion_weight_`` (w of
    ``logit + w * log p_parabel``; inf = the shortlist's own order, 0 = the network alone), ``stats_`` (the
    validation table of the fusion weights, saved), ``tokenizer_`` (transformer aspect).
    """

    Config = MAACFConfig

    def __init__(self, config: MAACFConfig | None = None):
        super().__init__(config)
        self.groups_: np.ndarray | None = None
        self.shortlister_ = None
        self.tokenizer_ = None
        self.embedder_ = None  # frozen transformer aspect (not saved: the weights come from the package)
        self.fusion_weight_: float = 0.0
        self.stats_: dict[str, Any] = {}

    @classmethod
    def tiny_config(cls) -> MAACFConfig:
        """A config that trains in a few seconds on the tiny synthetic data (no transformer aspect)."""
        return MAACFConfig(aspects=["cnn", "lstm"], emb_dim=16, w2v_epochs=1, dim=16, cnn_filters=8,
                           cnn_chunks=2, lstm_hidden=8, predictor_hidden=16, negatives=3, epochs=10,
                           batch_size=16, lr=1e-2, dropout=0.0, emb_dropout=0.0, max_len=64, patience=0,
                           progress=False, device="cpu", threads=1)

    # ----------------------------------------------------------------- settings resolved from the data
    @property
    def shortlist_kind(self) -> str:
        """'encoder' (head only), 'all', 'head' or 'parabel' for the fitted label count."""
        cfg = self.config
        if cfg.variant == "encoder":
            return "encoder"
        if cfg.shortlist == "auto":
            return "all" if self.n_labels_ <= cfg.shortlist_size else "parabel"
        return cfg.shortlist

    @property
    def uses_words(self) -> bool:
        return any(a != "transformer" for a in self.config.aspects)

    @property
    def uses_subwords(self) -> bool:
        return "transformer" in self.config.aspects

    def _check_fit(self) -> None:
        cfg = self.config
        if cfg.train_fusion > 0 and self.shortlist_kind != "parabel":
            raise XMTCError(f"train_fusion={cfg.train_fusion} needs a parabel shortlist, but this model's is "
                            f"{self.shortlist_kind!r} (shortlist={cfg.shortlist!r}, {self.n_labels_} labels, "
                            f"shortlist_size={cfg.shortlist_size}): set train_fusion=0 or shortlist=parabel")

    # ----------------------------------------------------------------- text pipeline
    def _build_vocab(self, tokens: list[list[str]]) -> np.ndarray:
        if self.uses_words:
            return super()._build_vocab(tokens)
        from xmtc.text import Vocab

        self.vocab_ = Vocab.build(tokens, min_count=self.config.min_count, max_size=self.config.vocab_size)
        self.emb_dim_ = 1  # no word-level aspect: a placeholder, no word2vec training
        return np.zeros((len(self.vocab_), 1), dtype=np.float32)

    def encode(self, texts: Sequence[str], Y: sp.csr_matrix | None = None) -> Encoded:
        enc = super().encode(texts, Y)
        enc.texts = list(texts)  # the transformer aspect and the parabel shortlist read the raw texts
        return enc

    def _side_inputs(self, data: Encoded, candidates: bool = True) -> dict:
        """Sub-word ids (transformer aspect) and (with ``candidates``) the parabel shortlist of ``data``."""
        cfg, out = self.config, {"sub": None, "cand": None}
        if self.uses_subwords:
            from xmtc.models.maacf.transformer import MiniLMEmbedder, load_tokenizer, subword_ids

            if self.tokenizer_ is None:
                self.tokenizer_ = load_tokenizer()
            out["sub"] = subword_ids(self.tokenizer_, data.texts, cfg.transformer_max_len)
            if cfg.transformer_frozen:  # once per document and call: the network reads the cached vectors
                if self.embedder_ is None:
                    self.embedder_ = MiniLMEmbedder(self.device_)
                out["sub_vec"], out["sub"] = self.embedder_.embed(out["sub"]), None
        if candidates and self.shortlist_kind == "parabel":
            out["cand"], out["cand_logp"] = _candidates(self.shortlister_.predict(data.texts,
                                                                                  k=cfg.shortlist_size))
        return out

    def _pair_batch(self, tb: TextBatch, side: dict) -> PairBatch:
        batch = PairBatch(text=tb)
        if side["sub"] is not None:
            from xmtc.models.maacf.transformer import pad_subwords

            batch.sub_ids, batch.sub_mask = pad_subwords([side["sub"][i] for i in tb.rows], tb.ids.device)
        if side.get("sub_vec") is not None:
            batch.sub_vec = torch.from_numpy(side["sub_vec"][tb.rows]).to(tb.ids.device)
        if side["cand"] is not None:
            batch.candidates = torch.from_numpy(side["cand"][tb.rows]).to(tb.ids.device)
        if side.get("cand_logp") is not None:
            batch.cand_logp = torch.from_numpy(side["cand_logp"][tb.rows]).to(tb.ids.device)
        return batch

    # ----------------------------------------------------------------- networks and training
    def _make_networks(self, embeddings: np.ndarray) -> dict[str, nn.Module]:
        groups = self.groups_
        if groups is None:  # loading: the real groups come with the weights
            groups = np.full((self.n_labels_, self.config.group_size), -1, dtype=np.int64)
        head = self.shortlist_kind in ("encoder", "head")
        return {"network": MAACFNet(embeddings, groups, self.config, head=head)}

    def _train(self, train: Encoded, valid: Encoded, embeddings: np.ndarray, *, run_dir: Path | None,
               resume: bool) -> None:
        from xmtc.train.distributed import share, share_object

        cfg = self.config
        self.stats_ = {}
        self.groups_ = nearest_label_groups(train.Y, cfg.group_size)
        kept = run_dir / "shortlist" if run_dir is not None else None
        if self.shortlist_kind == "parabel":
            # data-parallel (torchrun): omikuji is unseeded, so rank 0 fits it and every rank loads rank 0's copy
            self.shortlister_ = share_object(lambda: self._kept_shortlister(kept, resume, train),
                                             lambda m, path: m.save(path), load_model)
        self.networks_ = {name: net.to(self.device_) for name, net in self._make_networks(embeddings).items()}
        net = self.networks_["network"]
        side_train = self._side_inputs(train, candidates=False)
        if (cfg.hard_negatives > 0 or cfg.rank_loss != "bpr") and self.shortlist_kind == "parabel":
            # rank 0's (unseeded omikuji) on every rank
            got = share(lambda: self._kept_training_shortlist(kept, resume, train))
            side_train["cand"] = got["cand"]
            if cfg.train_fusion > 0:
                if got.get("logp") is None:
                    raise XMTCError(f"{kept}: the kept training shortlists have no scores (made before "
                                    "train_fusion existed); resume them without train_fusion, or use a new "
                                    "run directory")
                side_train["cand_logp"] = got["logp"]
            self.stats_.update(shortlist_folds=got["folds"], train_shortlist_recall=got["recall"])
        side_v = self._side_inputs(valid)

        def batches(epoch: int):
            return _PairBatches(self, self.train_batches(train, epoch), side_train)

        fixed = self._fixed_fusion()
        # 'auto': validated as trained (the network alone, or on top of the shortlist with train_fusion)
        during = fixed if fixed is not None and math.isfinite(fixed) else cfg.train_fusion

        def evaluate(module: nn.Module) -> float:
            def topk(b: TextBatch, k: int):
                return self._topk(module, self._pair_batch(b, side_v), k, fusion=during)

            return self.validation_score(valid, topk)

        self.train_results_["network"] = train_loop(
            net, cfg=cfg, batches=batches, loss=self.pair_loss, evaluate=evaluate, run_dir=run_dir,
            tag="network", resume=resume, parameters=self._param_groups(net))
        net.eval()
        if self.fusion_partner_ is None:
            self.fusion_weight_ = 0.0  # no shortlist or head scores to fuse with
        elif fixed is not None:
            self.fusion_weight_ = fixed
        else:
            self.fusion_weight_, table = self._choose_fusion(net, valid, side_v)
            self.stats_["fusion_validation"] = table
        self.stats_["fusion_weight"] = _weight_json(self.fusion_weight_)

    def _param_groups(self, net: MAACFNet) -> list[dict]:
        """Optimizer groups: the pretrained transformer layers get ``transformer_lr_scale`` times the lr."""
        pretrained = {id(p) for enc in net.aspects if hasattr(enc, "bert") for p in enc.bert.parameters()}
        own = [p for p in net.parameters() if id(p) not in pretrained and p.requires_grad]
        tuned = [p for p in net.parameters() if id(p) in pretrained and p.requires_grad]
        groups = [{"params": own}]
        if tuned:
            groups.append({"params": tuned, "lr_scale": self.config.transformer_lr_scale})
        return groups

    def pair_loss(self, net: MAACFNet, batch: PairBatch) -> torch.Tensor:
        """The ``rank_loss`` of the pair logits, plus ``head_weight`` times the head's BCE over all labels if
        there is a head; for the 'encoder' variant the BCE of the head alone.

        'bpr' (Eq. 10): ``-mean log sigmoid(logit_pos - logit_neg)`` over positives x ``negatives`` sampled
        negatives (``hard_negatives`` of them from the shortlist). 'bce' / 'listwise': over the positives and
        every other label of the document's training shortlist (:meth:`_training_candidates`). With
        ``encoder_head`` the pair logits include the head's.
        """
        cfg = self.config
        doc = net.encode(batch)
        s = doc.s  # (batch, n, D)
        targets = batch.text.targets()  # (batch, L)
        if net.variant == "encoder":
            return bce_loss(net.head_logits(s), targets)
        pos, pos_mask = self._positives(batch.text.Y, s.device)  # (batch, p)
        b, p = pos.shape
        if cfg.rank_loss != "bpr":
            cand = self._training_candidates(net, s, batch)  # (batch, c)
            is_gold = (cand >= 0) & (targets.gather(1, cand.clamp(min=0)) > 0)  # the positives score already
            ids = torch.cat([pos, cand.clamp(min=0)], 1)  # (batch, p + c)
            positive = torch.cat([pos_mask, torch.zeros_like(is_gold)], 1)
            valid = torch.cat([pos_mask, (cand >= 0) & ~is_gold], 1)
            logits = net.score(doc, ids).float()
            if cfg.train_fusion > 0:
                logits = logits + cfg.train_fusion * shortlist_prior(pos, cand, batch.cand_logp)
            loss = shortlist_loss(cfg.rank_loss, logits, positive, valid)
        else:
            n_hard = cfg.hard_negatives if self.shortlist_kind in ("head", "parabel") else 0
            neg, neg_ok = sample_negatives(pos, targets > 0, cfg.negatives - n_hard)  # (batch, p, Neg - hard)
            if n_hard:
                cand = self._training_candidates(net, s, batch)
                hard, hard_ok = sample_hard_negatives(cand, targets > 0, p, n_hard)  # (batch, p, hard)
                neg, neg_ok = torch.cat([neg, hard], -1), torch.cat([neg_ok, hard_ok], -1)
            logits = net.score(doc, torch.cat([pos, neg.reshape(b, -1)], 1)).float()  # (batch, p + p*Neg)
            valid = pos_mask[:, :, None] & neg_ok  # (batch, p, Neg)
            loss = bpr_loss(logits[:, :p], logits[:, p:].reshape(b, p, cfg.negatives), valid)
        if net.head is not None:
            loss = loss + cfg.head_weight * bce_loss(net.head_logits(s, cfg.head_detach), targets)
        return loss

    def _training_candidates(self, net: MAACFNet, s: torch.Tensor, batch: PairBatch) -> torch.Tensor:
        """The shortlist of a training batch, (batch, c) int64 label ids with -1 padding: the precomputed
        (cross-fitted) parabel shortlist, the top ``shortlist_size`` of the head's detached logits, or every
        label (shortlist 'all')."""
        if batch.candidates is not None:  # parabel: precomputed for the training documents
            return batch.candidates
        if self.shortlist_kind == "all":
            return torch.arange(self.n_labels_, device=s.device).expand(len(s), -1)
        size = min(self.config.shortlist_size, self.n_labels_)
        return torch.topk(net.head_logits(s.detach()).float(), size, dim=1).indices

    def _positives(self, Y: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive label ids (batch, p) padded with 0, mask (batch, p)); at most ``max_positives`` each,
        a random subset (torch RNG) when a document has more."""
        rows = []
        for r in range(Y.shape[0]):
            ids = Y.indices[Y.indptr[r]:Y.indptr[r + 1]]
            if len(ids) > self.config.max_positives:
                keep = torch.randperm(len(ids))[: self.config.max_positives].numpy()
                ids = ids[np.sort(keep)]
            rows.append(ids)
        p = max(1, max(len(ids) for ids in rows))
        pos = np.zeros((len(rows), p), dtype=np.int64)
        mask = np.zeros((len(rows), p), dtype=bool)
        for r, ids in enumerate(rows):
            pos[r, : len(ids)], mask[r, : len(ids)] = ids, True
        return torch.from_numpy(pos).to(device), torch.from_numpy(mask).to(device)

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {"fusion_weight": _weight_json(self.fusion_weight_), "stats": self.stats_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.fusion_weight_ = float(state.get("fusion_weight", 0.0))  # folders from before the fusion: 0
        self.stats_ = dict(state.get("stats", {}))
        old = {"label_tables": "two", "encoder_head": False}  # a folder saved before these options existed
        if "fusion_weight" not in state and not set(old) & set(self.config.explicit_fields()):
            self.config = self.config.replace(**old)

    def _save_extra(self, path: Path) -> list[str]:
        if self.shortlister_ is None:
            return []
        folder = self.shortlister_.save(path / SHORTLIST_DIR)
        return sorted(str(f.relative_to(path)) for f in folder.rglob("*") if f.is_file())

    def _load_extra(self, path: Path) -> None:
        self.groups_ = None  # read back from the network weights (the 'groups' buffer)
        if self.shortlist_kind == "parabel":
            from xmtc.models.baselines.parabel import ParabelModel

            if not (path / SHORTLIST_DIR / "meta.json").is_file():
                raise ModelLoadError(f"{path}: the parabel shortlist folder {SHORTLIST_DIR}/ is missing")
            self.shortlister_ = ParabelModel.load(path / SHORTLIST_DIR)

    def _load_state(self, path: Path) -> None:
        super()._load_state(path)
        self.groups_ = self.networks_["network"].groups.cpu().numpy()
