"""LightAttention (Zhu, Teng and Huang): AttentionXML's BiLSTM + multi-label attention text encoder with
LightXML's generative cooperative network - dynamic negative label sampling over the clusters of a
shallow-and-wide label tree.

One network per model: the text is encoded once by a BiLSTM; the *generator* scores every label cluster
through multi-label attention over the clusters; the labels of its top-b clusters (plus, in training, the
clusters of all positive labels) are the candidates, regenerated at every training step from the current
generator (dynamic, not fixed before training as in AttentionXML's level-wise training); the *discriminator*
scores each candidate with a trainable label embedding against a hidden bottleneck of the text
representation. Generator and discriminator are trained together with ``L = L_g + L_d``.

Paper -> code (every deviation is listed in docs/MODELS.md):

* label clusters (Sec. III-B, Algorithm 1) -> :meth:`LightAttention._build_trees`: PIFA label features over
  TF-IDF, :meth:`xmtc.tree.LabelTree.build` with ``height=1``; its leaf clusters are the K clusters.
* text representation, BiLSTM, multi-label attention (Sec. III-D, Eq. 8) -> the shared layers
  :class:`~xmtc.models.layers.Embedding`, :class:`~xmtc.models.layers.LSTMEncoder` and
  :class:`~xmtc.models.layers.MLAttention` (as in AttentionXML).
* generator ``G(e)`` over all K clusters -> :meth:`LightAttentionNet.cluster_logits`; ``L_g`` (Eq. 2) -> the
  first term of :meth:`LightAttention.loss`.
* candidates ``S_g`` (Eq. 3), positives added in training -> :func:`candidate_clusters` + ``expand_children``.
* discriminator ``D(e, M) = sigma(M act(W_h e + b_h))`` (Eqs. 4-5; ``act`` is Eq. 5's inner sigma with
  ``bottleneck_activation='sigmoid'``, the identity by default as in LightXML's code) ->
  :meth:`LightAttentionNet.label_logits`; ``L_d`` (Eq. 6, positive target = 1) and ``L = L_g + L_d`` (Eq. 7)
  -> :meth:`LightAttention.loss`.
* prediction: top-b clusters, their labels ranked by ``P(cluster) * P(label)`` ->
  :func:`xmtc.predict.beam_search` over the two levels; several trees (Table III, ``n_models``) ->
  :func:`xmtc.predict.merge_topk`; :meth:`LightAttention.members` gives the first n of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from xmtc.config import check, doc_field
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.attentionxml.levels import TreeLevels, candidate_targets
from xmtc.models.attentionxml.model import dense_rows
from xmtc.models.base import load_arrays, register, save_arrays
from xmtc.models.deep import DeepConfig, DeepTextModel, bce_loss, check_encoder_fields
from xmtc.models.deep_batches import Encoded, TextBatch, make_batch
from xmtc.models.deep_decoding import check_decoding_fields
from xmtc.models.lightattention.network import _ACTIVATIONS, LightAttentionNet, candidate_clusters
from xmtc.predict import beam_search, beam_search_grid, expand_children, merge_grids, merge_topk

TREES_FILE = "clusters.npz"

#: Settings each preset gives to the fields the user did not set ("medium" is the defaults themselves); "fast"
#: is AttentionXML's fast encoder, the setting of the full-EURLEX57K runs on a 2-core CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "medium": {},
    "fast": {"hidden": 96, "fc": [128], "emb_dim": 100, "max_len": 256, "batch_size": 64, "epochs": 8, "lr": 3e-3,
             "w2v_epochs": 3, "vocab_size": 50000, "min_count": 2, "dropout": 0.3, "emb_dropout": 0.1,
             "eval_batch_size": 256, "valid_max_docs": 1000, "patience": 2, "bf16": None},
}


@dataclass
class LightAttentionConfig(DeepConfig):
    """LightAttention settings. Defaults: AttentionXML's medium encoder (LSTM 256, one FC layer of 256), the
    paper's dropouts (0.3 after the embedding, 0.4 after the BiLSTM), batch 40, Adam 1e-3, 30 epochs
    (Table I). ``preset`` fills the fields the user did not set."""

    PRESETS: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"preset": PRESETS}

    preset: str = doc_field("medium", "'medium' (the paper's encoder) or 'fast' (AttentionXML's fast encoder, "
                                      "2-core CPU); fills the fields not set explicitly")
    hidden: int = doc_field(256, "LSTM hidden units per direction")
    fc: list[int] = doc_field([256], "sizes of the fully connected layers (generator and discriminator each "
                                     "have their own stack of these sizes)")
    dropout: float = doc_field(0.4, "dropout after the BiLSTM and the fully connected layers")
    fc_dropout: float | None = doc_field(None, "dropout after each fully connected layer; null: 'dropout'; "
                                               "0: none, as AttentionXML's original code")
    xavier_fc: bool = doc_field(False, "Xavier-uniform weights in the fully connected layers (AttentionXML's "
                                       "original code); false: PyTorch's default")
    label_output: bool = doc_field(False, "add a label-wise output term u_j . e_j + b_j to the discriminator's "
                                          "logit (LWAN's output layer, as AttentionXML's label_output; not in "
                                          "the paper); starts at zero")
    emb_dropout: float = doc_field(0.3, "dropout on the word vectors")
    packed: bool = doc_field(False, "BiLSTM on packed sequences (cuDNN's path on GPU); false gives the same "
                                    "result, several times faster on CPU")
    cluster_size: int = doc_field(16, "M: most labels per label cluster (leaf cluster of the label tree)")
    top_clusters: int = doc_field(10, "b: clusters chosen by the generator; their labels are the candidates")
    level_gamma: float | None = doc_field(1.0, "label score at prediction = p_label * p_cluster ** gamma (1: "
                                               "Eq. 1's product); null: choose gamma in {0, 0.25, 0.5, 1} on "
                                               "the validation split")
    beam_choices: list[int] = doc_field([], "other cluster counts expanded at prediction, tried on the "
                                             "validation split after training with the gammas of level_gamma; "
                                             "the best is kept (top_clusters stays the training's b)")
    label_emb_dim: int = doc_field(300, "size of the label embeddings E and of the hidden bottleneck layer")
    bottleneck_activation: str = doc_field("none", "activation of the hidden bottleneck: 'none' (LightXML's "
                                                   "code), 'sigmoid' (Eq. 5's inner sigma), 'relu' or 'tanh'")
    label_attention: bool = doc_field(True, "discriminator text representation: each candidate label's own "
                                            "multi-label attention output (true) or one max-pooled BiLSTM "
                                            "vector per document (false, Eq. 5 with a single e)")
    n_models: int = doc_field(1, "number of trees/models (Table III) with different seeds, scores averaged")
    tfidf_max_features: int = doc_field(100000, "TF-IDF vocabulary size of the PIFA label features")
    batch_size: int = doc_field(40, "documents per training batch")
    epochs: int = doc_field(30, "maximum epochs per model (early stopping on the validation split)")

    def validate(self) -> None:
        super().validate()
        check(self.preset in PRESETS, f"preset must be one of {sorted(PRESETS)}, but is {self.preset!r}")
        check_encoder_fields(self)
        check(self.cluster_size > 1, f"cluster_size must be > 1, but is {self.cluster_size}")
        check(self.top_clusters > 0, f"top_clusters must be positive, but is {self.top_clusters}")
        check_decoding_fields(self)
        check(self.label_emb_dim > 0, f"label_emb_dim must be positive, but is {self.label_emb_dim}")
        check(self.bottleneck_activation in _ACTIVATIONS,
              f"bottleneck_activation must be one of {sorted(_ACTIVATIONS)}, "
              f"but is {self.bottleneck_activation!r}")
        check(self.n_models > 0, f"n_models must be positive, but is {self.n_models}")
        check(self.tfidf_max_features > 0,
              f"tfidf_max_features must be positive, but is {self.tfidf_max_features}")


@register("lightattention")
class LightAttention(DeepTextModel):
    """LightAttention: one network per tree (generator + discriminator over a shared BiLSTM), averaged over
    ``n_models`` trees. Fitted: ``trees_`` (TreeLevels: K clusters -> L labels, one per model)."""

    Config = LightAttentionConfig

    def __init__(self, config: LightAttentionConfig | None = None):
        super().__init__(config)
        self.trees_: list[TreeLevels] = []
        self._children_t: dict[int, torch.Tensor] = {}
        self.beam_: int = self.config.top_clusters  # clusters expanded at prediction (beam_choices: chosen)
        self.gamma_: float = 1.0 if self.config.level_gamma is None else float(self.config.level_gamma)
        self.stats_: dict[str, Any] = {}  # validation figures of the choices made after training

    @classmethod
    def tiny_config(cls) -> LightAttentionConfig:
        """A config that trains in a few seconds on tiny synthetic data (4 clusters of 2 labels, top 2)."""
        return LightAttentionConfig(emb_dim=16, w2v_epochs=1, hidden=16, fc=[16], label_emb_dim=16,
                                    cluster_size=2, top_clusters=2, epochs=20, batch_size=16, lr=1e-2,
                                    dropout=0.1, emb_dropout=0.0, max_len=64, patience=0, progress=False,
                                    device="cpu", threads=1)

    @staticmethod
    def net_name(m: int) -> str:
        return f"model{m}"

    # ----------------------------------------------------------------- building
    def _build_trees(self, train: Encoded) -> None:
        """K label clusters per model: the leaf clusters of a shallow-and-wide tree over PIFA features."""
        from xmtc.features import TfidfFeaturizer
        from xmtc.tree import LabelTree, pifa

        cfg = self.config
        def build() -> list[TreeLevels]:
            X = TfidfFeaturizer(max_features=cfg.tfidf_max_features).fit_transform(train.texts)
            features = pifa(X, train.Y)  # (L, F)
            return [TreeLevels.from_label_tree(LabelTree.build(features, cluster_size=cfg.cluster_size,
                                                               height=1, seed=cfg.seed + m))
                    for m in range(cfg.n_models)]

        # data-parallel (torchrun): rank 0 builds the trees, every rank takes them (xmtc.train.distributed)
        self.trees_ = self._shared(build, lambda trees: {k: v for m, levels in enumerate(trees)
                                                         for k, v in levels.to_arrays(f"model{m}_").items()},
                                   lambda a: [TreeLevels.from_arrays(a, f"model{m}_") for m in range(cfg.n_models)])
        self._children_t = {}

    def _make_networks(self, embeddings: np.ndarray) -> dict[str, nn.Module]:
        nets = {}
        for m, levels in enumerate(self.trees_):
            torch.manual_seed(self.config.seed + 1000 * m)
            nets[self.net_name(m)] = LightAttentionNet(embeddings, levels.n_labels, levels.sizes[0],
                                                       self.config)
        return nets

    def _children(self, m: int) -> torch.Tensor:
        """(K, max cluster size) int64 labels of each cluster of model ``m``, ``-1`` padded, on the device."""
        if m not in self._children_t:
            self._children_t[m] = torch.from_numpy(self.trees_[m].children(0)).to(self.device_)
        return self._children_t[m]

    # ----------------------------------------------------------------- training
    def _train(self, train: Encoded, valid: Encoded, embeddings: np.ndarray, *, run_dir: Path | None,
               resume: bool) -> None:
        from xmtc.train import train_loop

        self._build_trees(train)
        self.networks_ = {k: v.to(self.device_) for k, v in self._make_networks(embeddings).items()}
        for m in range(len(self.trees_)):
            net = self.networks_[self.net_name(m)]
            Y_clusters = self.trees_[m].targets(train.Y, 0)  # CSR (n, K)
            tag = "network" if len(self.trees_) == 1 else f"model{m}"

            def evaluate(module: LightAttentionNet, m: int = m) -> float:
                return self.validation_score(valid, lambda b, k: self._model_topk(m, b, k, net=module))

            self.train_results_[tag] = train_loop(
                net, cfg=self.config, batches=lambda epoch, m=m: self.train_batches(train, epoch, salt=m),
                loss=lambda module, batch, m=m, Yc=Y_clusters: self.loss(module, batch, Yc, m)[0],
                evaluate=evaluate, run_dir=run_dir, tag=tag, resume=resume)
            net.eval()
        self.choose_decoding_if_asked(valid, self.config.top_clusters)

    def has_tree_decoding(self) -> bool:
        return True  # always clusters -> labels

    def _grid_topk_batch(self, batch: TextBatch, k: int, beams: list[int], gammas: list[float]
                         ) -> dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]]:
        per_model = []
        for m in range(len(self.trees_)):
            net = self.networks_[self.net_name(m)]
            width = k if len(self.trees_) == 1 else max(k, max(beams) * self._children(m).shape[1])
            per_model.append(beam_search_grid(self._level_fns(net, batch), [self._children(m)], beams, gammas,
                                              width))
        return merge_grids(per_model, k)

    def loss(self, net: LightAttentionNet, batch: TextBatch, Y_clusters, m: int = 0
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L = L_g + L_d (Eq. 7) of one batch, with candidates generated by the current generator (dynamic).

        Args:
            net: the network of model ``m`` (train mode).
            batch: training batch (with labels).
            Y_clusters: CSR (n, K) cluster targets of the training split (rows picked by ``batch.rows``).
            m: model index (selects the cluster -> labels table).

        Returns:
            (total loss, {"L_g", "L_d", "candidates": (batch, c) label ids, -1 padded}).
        """
        device = batch.ids.device
        h = net.encode(batch.ids, batch.mask)  # (batch, seq, dim)
        g = net.cluster_logits(h, batch.mask)  # (batch, K)
        y_g = dense_rows(Y_clusters, batch.rows, device)  # (batch, K)
        loss_g = bce_loss(g, y_g)  # Eq. 2 (mean over documents and clusters)
        clusters = candidate_clusters(g, y_g, self.config.top_clusters)  # (batch, W)
        cand, _ = expand_children(clusters, self._children(m))  # (batch, W * max_size) labels, -1 padded
        y_d = torch.from_numpy(candidate_targets(cand.cpu().numpy(), batch.Y)).to(device)  # (batch, c) pos=1
        logits = net.label_logits(h, batch.mask, cand.clamp(min=0)).float()  # (batch, c)
        weight = (cand >= 0).float()
        loss_d = nn.functional.binary_cross_entropy_with_logits(logits, y_d, weight=weight, reduction="sum") \
            / weight.sum().clamp(min=1)  # Eq. 6 over the candidates (mean)
        return loss_g + loss_d, {"L_g": loss_g.detach(), "L_d": loss_d.detach(), "candidates": cand}

    # ----------------------------------------------------------------- prediction
    def _model_topk(self, m: int, batch: TextBatch, k: int, net: nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k labels of model ``m``: its generator's top-b clusters, their labels scored by
        ``sigmoid(cluster logit) * sigmoid(label logit)``."""
        net = net if net is not None else self.networks_[self.net_name(m)]
        return beam_search(self._level_fns(net, batch), [self._children(m)], self.beam_, k, gamma=self.gamma_)

    @staticmethod
    def _level_fns(net: LightAttentionNet, batch: TextBatch) -> list:
        h = net.encode(batch.ids, batch.mask)  # (batch, seq, dim)
        return [lambda _: net.cluster_logits(h, batch.mask), lambda cand: net.label_logits(h, batch.mask, cand)]

    def _topk_batch(self, batch: TextBatch, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self.trees_) == 1:
            return self._model_topk(0, batch, k)
        # every candidate label of each member, so that the average sees all of them
        width = max(k, max(self.beam_ * self._children(m).shape[1]
                           for m in range(len(self.trees_))))
        return merge_topk([self._model_topk(m, batch, width) for m in range(len(self.trees_))], k)

    def members(self, n: int) -> LightAttention:
        """A view of the first ``n`` trained models (weights shared, not copied): Table III's tree-count study
        from one training run.

        Args:
            n: number of models kept, ``1 <= n <= n_models``.

        Returns:
            A fitted LightAttention whose config says ``n_models=n``.
        """
        self._check_fitted()
        if not 1 <= n <= len(self.trees_):
            raise XMTCError(f"n must be in 1..{len(self.trees_)}, but is {n}")
        view = LightAttention(self.config.replace(n_models=n))
        view.label_index_, view.vocab_, view.emb_dim_, view.device_ = (self.label_index_, self.vocab_,
                                                                       self.emb_dim_, self.device_)
        view.trees_ = self.trees_[:n]
        view.beam_, view.gamma_ = self.beam_, self.gamma_  # the decoding chosen for all n_models members
        view.networks_ = {self.net_name(m): self.networks_[self.net_name(m)] for m in range(n)}
        return view

    def explain(self, text: str, label: str | int) -> tuple[list[str], np.ndarray]:
        """Attention of ``label`` over the tokens of ``text`` (after truncation to ``max_len``), averaged over
        the models: the label's own attention (``label_attention``) or else its cluster's attention.

        Args:
            text: a raw document.
            label: label name or id.

        Returns:
            (tokens, weights float32 (len(tokens),)) summing to 1 (empty for a text without tokens).
        """
        self._check_fitted()
        lid = self._label_id(label)
        tokens = self._tokenize([text])[0][: self.config.max_len]
        if not tokens:
            return [], np.zeros(0, dtype=np.float32)
        if self.device_ is None:
            self._setup_runtime()
        batch = make_batch(self._encode_tokens([tokens]), np.arange(1), self.device_)
        weights = []
        with torch.no_grad():
            for m, levels in enumerate(self.trees_):
                net = self.networks_[self.net_name(m)].eval()
                h = net.encode(batch.ids, batch.mask)  # (1, seq, dim)
                if net.label_attention is not None:
                    attention, node = net.label_attention, lid
                else:
                    attention, node = net.cluster_attention, int(levels.parents[0][lid])
                _, alpha = attention(h, batch.mask, torch.tensor([[node]], device=self.device_),
                                     return_weights=True)  # (1, 1, seq)
                weights.append(alpha[0, 0].float().cpu().numpy())
        return tokens, np.mean(weights, axis=0).astype(np.float32)

    def _label_id(self, label: str | int) -> int:
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= label < self.n_labels_:
                raise XMTCError(f"label id {label} is out of range 0..{self.n_labels_ - 1}")
            return int(label)
        lid = self.label_index_.get(str(label))
        if lid < 0:
            raise XMTCError(f"unknown label {label!r}: it was not in the training data")
        return lid

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {"n_models": len(self.trees_), "n_clusters": [levels.sizes[0] for levels in self.trees_],
                "level_gamma": self.gamma_, "beam": self.beam_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        # models saved before beam_choices / level_gamma: the product over top_clusters clusters
        self.gamma_ = float(state.get("level_gamma", 1.0))
        self.beam_ = int(state.get("beam", self.config.top_clusters))

    def _save_extra(self, path: Path) -> list[str]:
        arrays = {}
        for m, levels in enumerate(self.trees_):
            arrays.update(levels.to_arrays(prefix=f"model{m}_"))
        return [save_arrays(path, TREES_FILE, arrays)]

    def _load_extra(self, path: Path) -> None:
        arrays = load_arrays(path, TREES_FILE)
        self.trees_ = [TreeLevels.from_arrays(arrays, prefix=f"model{m}_")
                       for m in range(self.config.n_models)]
        for m, levels in enumerate(self.trees_):
            if levels.n_levels != 2 or levels.n_labels != self.n_labels_:
                raise ModelLoadError(f"{path / TREES_FILE}: model {m} has levels {levels.sizes}, expected "
                                     f"[clusters, {self.n_labels_} labels]")
        self._children_t = {}
