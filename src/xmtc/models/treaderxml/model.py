"""TReaderXML (Wang et al.): teacher knowledge from nearest-neighbour texts and parent labels, read together
with the text by a dual cooperative network of masked / plain multi-head self-attention.

Paper -> code (details and every deviation: docs/MODELS.md, section TReaderXML):

* Teacher knowledge (Section 3.2, Eq. 1-2, Algorithm 1) -> :mod:`xmtc.models.treaderxml.teacher`: TF-IDF of the
  model's tokens (default; ``teacher_encoder="mean_w2v"`` = Eq. 1's mean word vectors), cosine top-k neighbours
  among the training texts (never the document itself), their labels plus parent labels as the ranked item
  list ``SET_nearest``; items are encoded from their descriptions (``E_y'``).
* Encoding ``E_x = Encode(x)`` -> the shared :class:`~xmtc.models.layers.Embedding` (the items use the same
  table, so both live in one space).
* Reading (Eq. 3-15) -> :class:`Reading` of :class:`SelfAttention` blocks: MMHSA (causal mask, Eq. 8-9),
  residual (Eq. 14-15), MHSA; h = 4 heads, ``tanh`` output projection (Eq. 12-13). ``reading_residual``
  (default) wraps every block, here and in the Interaction, as ``LayerNorm(x + block(x))``.
* Interaction (Eq. 16-17) -> :meth:`TReaderNet.forward`: ``[O_y'; O_x]`` stacked along the sequence (teacher
  items first; ``interaction="lcf"``: along the features, then 2d -> d), hidden bottleneck ``W^HB``, MMHSA.
* Prediction (Eq. 18-19) -> masked mean pooling, output layer ``W^Output`` and the one-vs-all BCE loss; for
  large label sets only a shortlist (teacher labels + their label-tree clusters) is scored; ``teacher_prior``
  (default) adds a learned per-label bonus for the labels the teacher proposes.
* Ablations (Table 3) -> ``ablation`` 0-6 sets ``teacher`` and ``reading``
  (:data:`~xmtc.models.treaderxml.config.ABLATIONS`); the settings: :mod:`xmtc.models.treaderxml.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from xmtc.data.split import Dataset
from xmtc.errors import ModelLoadError
from xmtc.models.attentionxml.levels import candidate_targets
from xmtc.models.base import load_arrays, register, save_arrays
from xmtc.models.deep import DeepTextModel, bce_loss
from xmtc.models.deep_batches import Encoded, TextBatch
from xmtc.models.fusion import choose_weight, fixed_weight, fuse_scores, weight_json
from xmtc.models.treaderxml.candidates import gather_csr, shortlist, shortlist_recall, top_per_row
from xmtc.models.treaderxml.config import TReaderXMLConfig
from xmtc.models.treaderxml.network import TReaderNet
from xmtc.models.treaderxml.teacher import TeacherKnowledge, build_items, resolve_parent_mode
from xmtc.train import train_loop

CLUSTER_FILE = "clusters.npz"
VOTE_EPS = 1e-3  # log(vote share + VOTE_EPS): labels no neighbour has stay rankable below the voted ones


@dataclass
class _SplitKnowledge:
    """Teacher items (n, K), shortlist candidates (n, C), teacher label scores CSR (n, L) and the teacher
    prior (the scores again, when ``teacher_prior`` is on) of one encoded split; None when unused."""

    items: np.ndarray | None
    candidates: np.ndarray | None
    prior: sp.csr_matrix | None = None
    scores: sp.csr_matrix | None = None


@register("treaderxml")
class TReaderXML(DeepTextModel):
    """TReaderXML. Fitted: ``teacher_`` (TeacherKnowledge or None), ``clusters_`` (int64 (L,) leaf cluster of
    every label, or None), ``stats_`` (teacher and shortlist recall on the validation split)."""

    Config = TReaderXMLConfig

    def __init__(self, config: TReaderXMLConfig | None = None):
        super().__init__(config)
        self.teacher_: TeacherKnowledge | None = None
        self.clusters_: np.ndarray | None = None
        self.parent_mode_ = "none"
        self.use_shortlist_ = False
        self.stats_: dict[str, Any] = {}
        self.fusion_weight_ = 0.0  # w of teacher_fusion (0: the network alone)
        self._source: tuple[Any, Any] = (None, None)
        self._saved: tuple[bool, bool] = (False, False)

    @classmethod
    def tiny_config(cls) -> TReaderXMLConfig:
        """A config that trains in a second or two on the tiny synthetic data."""
        return TReaderXMLConfig(emb_dim=16, w2v_epochs=1, bottleneck=16, epochs=15, decay_epochs=1,
                                batch_size=16, lr=1e-2, dropout=0.1, emb_dropout=0.0, max_len=64,
                                n_neighbours=3, teacher_size=8, cluster_size=4, patience=0, progress=False,
                                device="cpu", threads=1)

    # ----------------------------------------------------------------- training
    def fit(self, train: Dataset, valid: Dataset | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False) -> TReaderXML:
        """Train on ``train`` (its ``hierarchy`` and ``label_descriptions`` feed the teacher); see
        :meth:`xmtc.models.deep.DeepTextModel.fit`."""
        self._source = (train.hierarchy, train.label_descriptions)
        return super().fit(train, valid, run_dir=run_dir, resume=resume)

    def _needs_teacher(self) -> bool:
        return self.config.teacher or self.use_shortlist_

    def _train(self, train: Encoded, valid: Encoded, embeddings: np.ndarray, *, run_dir: Path | None,
               resume: bool) -> None:
        cfg = self.config
        self.fusion_weight_ = 0.0  # validation during training scores the network alone
        self._prepare_teacher(train, embeddings)
        # data-parallel (torchrun): the training split's neighbour lists come from rank 0 (one kNN search)
        know_train = self._shared(lambda: self._knowledge(train, training=True), vars,
                                  lambda shared: _SplitKnowledge(**shared))
        know_valid = self._knowledge(valid)
        self._record_stats(valid, know_valid)
        self.networks_ = {k: v.to(self.device_) for k, v in self._make_networks(embeddings).items()}
        net = self.networks_["network"]
        net.init_output_bias(train.Y)

        def loss(module: TReaderNet, batch: TextBatch) -> torch.Tensor:
            tb, cand, prior = self._batch_inputs(know_train, batch)
            logits = module(batch.ids, batch.mask, tb, cand, prior).float()  # (b, L | C)
            if cand is None:
                return bce_loss(logits, batch.targets())
            target = torch.from_numpy(candidate_targets(cand.cpu().numpy(), batch.Y)).to(logits.device)
            weight = (cand >= 0).float()
            return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") \
                / weight.sum().clamp(min=1)

        def evaluate(module: TReaderNet) -> float:
            return self.validation_score(valid, lambda b, k: self._topk(module, know_valid, b, k))

        stage = train_loop(net, cfg=cfg, batches=lambda epoch: self.train_batches(train, epoch), loss=loss,
                           evaluate=evaluate, run_dir=run_dir, tag="network", resume=resume)
        self.train_results_["network"] = stage
        if cfg.decay_epochs > 0:
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
            decayed = train_loop(net, cfg=cfg.replace(lr=cfg.lr * cfg.lr_decay), batches=lambda epoch:
                                 self.train_batches(train, epoch, salt=1), loss=loss, evaluate=evaluate,
                                 run_dir=run_dir, tag="network-decay", resume=resume, epochs=cfg.decay_epochs)
            self.train_results_["network-decay"] = decayed
            if decayed.best_score <= stage.best_score:
                net.load_state_dict(best)  # the decayed stage did not improve on validation: keep stage one
        net.eval()
        self._set_fusion(net, valid, know_valid)

    @property
    def fusion_partner_(self) -> str | None:
        """What the network's scores are fused with ('its teacher votes'), None when nothing is."""
        return "its teacher's votes" if self.config.teacher and self.teacher_ is not None else None

    def _set_fusion(self, net: TReaderNet, valid: Encoded, know: _SplitKnowledge) -> None:
        """``fusion_weight_`` from the config, or (``auto``) the best on the validation split."""
        fixed = fixed_weight(self.config.teacher_fusion, "teacher")
        if self.fusion_partner_ is None:
            self.fusion_weight_ = 0.0
        elif fixed is not None:
            self.fusion_weight_ = fixed
        else:
            self.fusion_weight_, table = choose_weight(
                self.config.teacher_fusion_grid,
                lambda w: (self.validation_score(valid, lambda b, k: self._topk(net, know, b, k, fusion=w)),))
            self.stats_["teacher_fusion_validation"] = table
        self.stats_["teacher_fusion_weight"] = weight_json(self.fusion_weight_)

    def _prepare_teacher(self, train: Encoded, embeddings: np.ndarray) -> None:
        """Shortlist switch, parent mode, label-tree clusters and :class:`TeacherKnowledge` of ``train``."""
        cfg = self.config
        self.use_shortlist_ = cfg.shortlist if cfg.shortlist is not None \
            else self.n_labels_ > cfg.shortlist_min_labels
        hierarchy, descriptions = self._source
        self.parent_mode_ = resolve_parent_mode(cfg.parents, hierarchy, self.label_index_) if cfg.teacher \
            else "none"
        if self.parent_mode_ == "tree" or self.use_shortlist_:
            self.clusters_ = self._shared(lambda: self._leaf_clusters(train), lambda c: {"clusters": c},
                                          lambda shared: shared["clusters"])  # data-parallel: rank 0's tree
        if self._needs_teacher():
            bags, label_items, _ = build_items(self.label_index_, self._tokenize_one, self.vocab_,
                                               mode=self.parent_mode_, hierarchy=hierarchy,
                                               descriptions=descriptions, desc_words=cfg.desc_words,
                                               clusters=self.clusters_)
            self.teacher_ = TeacherKnowledge.build(train.ids, train.Y, encoder=cfg.teacher_encoder,
                                                   word_vectors=embeddings, item_bags=bags,
                                                   label_items=label_items, n_neighbours=cfg.n_neighbours,
                                                   size=cfg.teacher_size)

    def _tokenize_one(self, text: str) -> list[str]:
        return self._tokenize([text])[0]

    def _leaf_clusters(self, train: Encoded) -> np.ndarray:
        """Leaf cluster of every label: balanced 2-means over PIFA features of the training TF-IDF."""
        from xmtc.features import TfidfFeaturizer
        from xmtc.tree import LabelTree, pifa

        X = TfidfFeaturizer(max_features=self.config.tfidf_max_features).fit_transform(train.texts)
        tree = LabelTree.build(pifa(X, train.Y), cluster_size=self.config.cluster_size, height=1,
                               seed=self.config.seed)
        if tree.n_levels == 0:
            return np.zeros(self.n_labels_, dtype=np.int64)
        return np.asarray(tree.label_to_leaf_cluster, dtype=np.int64)

    def _knowledge(self, data: Encoded, *, training: bool = False) -> _SplitKnowledge:
        """Teacher items and shortlist of a split (training: neighbours exclude the document itself)."""
        if self.teacher_ is None:
            return _SplitKnowledge(None, None)
        cfg = self.config
        out = self.teacher_.query(None if training else data.ids, training=training)
        cand = None
        if self.use_shortlist_:
            cand = shortlist(out.label_scores, self.clusters_, cfg.shortlist_labels, cfg.shortlist_clusters,
                             positives=data.Y if training else None)
        prior = out.label_scores if cfg.teacher and cfg.teacher_prior else None
        return _SplitKnowledge(out.items if cfg.teacher else None, cand, prior, out.label_scores)

    def _record_stats(self, valid: Encoded, know: _SplitKnowledge) -> None:
        """Validation recall of the teacher's label subset and of the shortlist (docs/BENCHMARKS.md)."""
        stats: dict[str, Any] = {"parent_mode": self.parent_mode_, "shortlist": self.use_shortlist_}
        if know.items is not None:
            L = self.n_labels_
            labels = np.where(know.items < L, know.items, -1)
            stats["teacher_label_recall"] = round(shortlist_recall(labels, valid.Y), 4)
            stats["teacher_items_per_doc"] = round(float((know.items >= 0).sum(1).mean()), 2)
            # items that only a parent edge brought in (not a label of any neighbour)
            from_parents = (know.items >= L) | ((know.items >= 0) & (gather_csr(know.scores, labels) == 0))
            stats["teacher_parent_items_per_doc"] = round(float(from_parents.sum(1).mean()), 2)
        if know.candidates is not None:
            stats["shortlist_recall"] = round(shortlist_recall(know.candidates, valid.Y), 4)
            stats["shortlist_size"] = round(float((know.candidates >= 0).sum(1).mean()), 1)
        self.stats_ = stats

    def _batch_inputs(self, know: _SplitKnowledge, batch: TextBatch):
        """(teacher items, candidates (b, C), teacher prior (b, L | C)) of a batch, each None when unused."""
        device = batch.ids.device
        tb = self.teacher_.batch(know.items[batch.rows], device) if know.items is not None else None
        cand = prior = None
        if know.candidates is not None:
            c = know.candidates[batch.rows]  # (b, C)
            cand = torch.from_numpy(c).to(device)
        if know.prior is not None:
            rows = know.prior[batch.rows]
            dense = gather_csr(rows, c) if know.candidates is not None else rows.toarray()  # (b, C | L)
            prior = torch.from_numpy(np.asarray(dense, dtype=np.float32)).to(device)
        return tb, cand, prior

    # ----------------------------------------------------------------- prediction
    def _topk(self, net: TReaderNet, know: _SplitKnowledge, batch: TextBatch, k: int,
              fusion: float | None = None):
        """(label ids (b, k'), scores (b, k')) of one batch, ranked by the network's logits fused with the
        teacher's votes at weight ``fusion`` (default ``fusion_weight_``; :mod:`xmtc.models.fusion`); shortlist
        gaps score -inf with id -1."""
        tb, cand, prior = self._batch_inputs(know, batch)
        logits = net(batch.ids, batch.mask, tb, cand, prior).float()  # (b, L | C)
        w = self.fusion_weight_ if fusion is None else fusion
        logp = self._vote_logp(know, batch, cand) if w != 0 and know.scores is not None else None
        key, score = fuse_scores(logits, logp, w)
        if cand is not None:
            key = key.masked_fill(cand < 0, float("-inf"))
        val, idx = torch.topk(key, min(k, key.shape[1]), dim=1)
        score = torch.gather(score, 1, idx)
        if cand is not None:
            idx = torch.gather(cand, 1, idx)
        gap = torch.isinf(val) & (val < 0)
        return idx.masked_fill(gap, -1), score.masked_fill(gap, float("-inf"))

    @staticmethod
    def _vote_logp(know: _SplitKnowledge, batch: TextBatch, cand: torch.Tensor | None) -> torch.Tensor:
        """log(teacher vote share + VOTE_EPS) of the batch's scored labels (b, L | C)."""
        rows = know.scores[batch.rows]
        share = gather_csr(rows, cand.cpu().numpy()) if cand is not None else rows.toarray()
        logp = np.log(np.asarray(share, dtype=np.float32) + VOTE_EPS)
        return torch.from_numpy(logp).to(batch.ids.device)

    def _predict(self, data: Dataset | list[str], k: int):
        if self.device_ is None:
            self._setup_runtime()
        net = self.networks_["network"].eval()
        enc = self.encode(self.texts_of(data))
        know = self._knowledge(enc)
        return self.predict_encoded(enc, k, lambda b, kk: self._topk(net, know, b, kk))

    def teacher_labels(self, texts: list[str], k: int = 10) -> list[list[str]]:
        """The teacher's best ``k`` labels (by their share of the neighbour votes) of each text, for
        inspection."""
        self._check_fitted()
        if self.teacher_ is None:
            return [[] for _ in texts]
        scores = self.teacher_.query(self.encode(texts).ids).label_scores
        top, _ = top_per_row(scores, k)
        return [self.label_index_.decode(row[row >= 0]) for row in top]

    # ----------------------------------------------------------------- persistence
    def _make_networks(self, embeddings: np.ndarray) -> dict[str, nn.Module]:
        torch.manual_seed(self.config.seed)
        return {"network": TReaderNet(embeddings, self.n_labels_, self.config)}

    def _extra_state(self) -> dict[str, Any]:
        return {"parent_mode": self.parent_mode_, "shortlist": self.use_shortlist_, "stats": self.stats_,
                "teacher": self.teacher_ is not None, "clusters": self.clusters_ is not None,
                "fusion_weight": weight_json(self.fusion_weight_)}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.parent_mode_ = state.get("parent_mode", "none")
        self.use_shortlist_ = bool(state.get("shortlist", False))
        self.stats_ = state.get("stats", {})
        self.fusion_weight_ = float(state.get("fusion_weight", 0.0))  # folders from before the fusion: 0
        self._saved = (bool(state.get("teacher")), bool(state.get("clusters")))

    def _save_extra(self, path: Path) -> list[str]:
        files = []
        if self.teacher_ is not None:
            files += self.teacher_.save(path)
        if self.clusters_ is not None:
            files.append(save_arrays(path, CLUSTER_FILE, {"clusters": self.clusters_}))
        return files

    def _load_extra(self, path: Path) -> None:
        has_teacher, has_clusters = self._saved
        if self._needs_teacher() and not has_teacher:
            raise ModelLoadError(f"{path}: the config needs teacher knowledge but the folder has none")
        self.teacher_ = TeacherKnowledge.load(path, self.n_labels_, len(self.vocab_)) if has_teacher else None
        self.clusters_ = load_arrays(path, CLUSTER_FILE)["clusters"] if has_clusters else None

