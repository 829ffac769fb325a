"""AttentionXML (You et al.): BiLSTM + multi-label attention + shared fully connected layers, trained level by
level over a shallow-and-wide probabilistic label tree, predicted by beam search, optionally as an ensemble.

Paper -> code: word representation layer (Eq. 1) -> :class:`~xmtc.models.layers.Embedding` initialised from
word vectors; BiLSTM (Eqs. 2-3) -> :class:`~xmtc.models.layers.LSTMEncoder`; multi-label attention (Eq. 4) ->
:class:`~xmtc.models.layers.MLAttention`; fully connected and output layer shared by all labels (Eq. 5) ->
:class:`~xmtc.models.layers.MLP` with one output; BCE loss (Eq. 6) -> :func:`~xmtc.models.deep.bce_loss`.
Label tree (LightAttention III-B): PIFA label features on TF-IDF of the training texts, balanced k-means tree
(:mod:`xmtc.tree`), each level a separate network whose deeper levels attend only to candidate nodes
(children of the top-C nodes of the level above plus the positives) and start from the level above's weights;
node score = product of the probabilities on its path (:func:`xmtc.predict.beam_search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from xmtc.config import check, doc_field
from xmtc.errors import XMTCError
from xmtc.models.attentionxml.levels import TreeLevels, candidate_targets, training_candidates
from xmtc.models.attentionxml.network import AttentionNet
from xmtc.models.base import load_arrays, register, save_arrays
from xmtc.models.deep import DeepConfig, DeepTextModel, bce_loss, check_encoder_fields
from xmtc.models.deep_batches import Encoded, TextBatch
from xmtc.models.deep_decoding import check_decoding_fields
from xmtc.predict import beam_search, beam_search_grid, merge_grids, merge_topk
from xmtc.train import train_loop

#: Settings each preset gives to the fields the user did not set ("medium" is the defaults themselves).
PRESETS: dict[str, dict[str, Any]] = {
    "medium": {},
    "large": {"hidden": 512, "fc": [512, 256], "epochs": 10},
    "fast": {"hidden": 96, "fc": [128], "emb_dim": 100, "max_len": 256, "batch_size": 64, "epochs": 6,
             "level_epochs": [8, 5], "lr": 3e-3,
             "w2v_epochs": 3, "vocab_size": 50000, "min_count": 2, "dropout": 0.3, "emb_dropout": 0.1,
             "cluster_size": 32, "candidates": 8, "beam": 8, "eval_batch_size": 256,
             "valid_max_docs": 1000, "patience": 2, "bf16": None},
}


@dataclass
class AttentionXMLConfig(DeepConfig):
    """AttentionXML settings; defaults are the paper's medium-scale setting (LSTM 256, one FC layer of 256,
    dropout 0.5, Adam 1e-3, batch 40). ``preset`` fills the fields the user did not set."""

    PRESETS: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"preset": PRESETS}
    PRESET_YIELDS_TO: ClassVar[dict[str, tuple[str, ...]]] = {"level_epochs": ("epochs",)}

    preset: str = doc_field("medium", "'medium' (paper, medium-scale data), 'large' (LSTM 512, FCs 512+256) "
                                      "or 'fast' (2-core CPU); fills the fields not set explicitly")
    hidden: int = doc_field(256, "LSTM hidden units per direction")
    fc: list[int] = doc_field([256], "sizes of the fully connected layers shared by all labels (Eq. 5)")
    dropout: float = doc_field(0.5, "dropout after the BiLSTM and the fully connected layers")
    fc_dropout: float | None = doc_field(None, "dropout after each fully connected layer; null: 'dropout'; "
                                               "0: the original code's (no dropout in the FC stack)")
    xavier_fc: bool = doc_field(False, "Xavier-uniform weights in the fully connected and output layers (the "
                                       "original code's initialisation); false: PyTorch's default")
    label_output: bool = doc_field(False, "add a label-wise output term u_j . m_j + b_j to the shared head's "
                                          "logit (LWAN's output layer; not in the paper, whose labels share "
                                          "every layer but the attention); starts at zero")
    packed: bool = doc_field(False, "BiLSTM on packed sequences (cuDNN's path on GPU); false gives the same "
                                    "result on the padded batch, several times faster on CPU")
    tree: bool | None = doc_field(None, "label tree (true), one level over all labels (false), or null: tree "
                                        "when the label count exceeds tree_min_labels")
    tree_min_labels: int = doc_field(1000, "with tree=null, use a label tree above this many labels")
    cluster_size: int = doc_field(16, "M: most labels per leaf cluster of the label tree")
    tree_top: int = doc_field(1024, "wanted node count of the tree's top level (a power of two at most the "
                                    "leaf-cluster count; smaller means more levels)")
    candidates: int = doc_field(10, "C: nodes of the level above expanded when training a deeper level")
    random_negatives: int = doc_field(0, "random labels added to each document's training candidates of the "
                                         "levels below the top (the original tops its candidates up to ~1,000)")
    share_encoder: bool = doc_field(False, "levels below the top reuse the top level's word vectors and BiLSTM, "
                                           "frozen: they train only their attention and FC layers (one BiLSTM "
                                           "per tree instead of one per level; the text is encoded once at "
                                           "prediction)")
    beam: int = doc_field(10, "beam width of the prediction's beam search")
    beam_choices: list[int] = doc_field([], "other beam widths tried on the validation split after training, "
                                             "with the gammas of level_gamma; the best is kept (one prediction "
                                             "pass scores every pair; wider beams predict more slowly)")
    level_gamma: float | None = doc_field(1.0, "leaf score = p_label * p_parent ** gamma (1: the PLT product); "
                                               "null: choose gamma in {0, 0.25, 0.5, 1} on the validation split")
    upper_select: str = doc_field("select_metric", "model selection of the levels above the leaves: "
                                                   "'select_metric' or 'recall' (recall of the top-C nodes, what "
                                                   "the next level needs, as the original does)")
    n_trees: int = doc_field(1, "ensemble size: trees (and networks) with different seeds, scores averaged")
    tfidf_max_features: int = doc_field(100000, "TF-IDF vocabulary size of the PIFA label features")
    batch_size: int = doc_field(40, "documents per training batch")
    epochs: int = doc_field(30, "maximum epochs per level (early stopping on the validation split)")
    level_epochs: list[int] = doc_field([], "maximum epochs of each level, top level first (overrides "
                                            "epochs; missing levels use the last entry)")
    sparse_grad: bool = doc_field(False, "sparse gradient of the attention vectors of the tree levels below the "
                                         "top (only the batch's candidate rows) stepped by SparseAdam: much "
                                         "faster steps for 1e5+ labels; lazy Adam moments, so results differ "
                                         "slightly from the default; needs weight_decay=0")

    def validate(self) -> None:
        super().validate()
        check(self.preset in PRESETS, f"preset must be one of {sorted(PRESETS)}, but is {self.preset!r}")
        check_encoder_fields(self)
        check(self.tree_min_labels > 0, f"tree_min_labels must be positive, but is {self.tree_min_labels}")
        check(self.cluster_size > 1, f"cluster_size must be > 1, but is {self.cluster_size}")
        check(self.tree_top > 0, f"tree_top must be positive, but is {self.tree_top}")
        check(self.candidates > 0, f"candidates must be positive, but is {self.candidates}")
        check(self.beam > 0, f"beam must be positive, but is {self.beam}")
        check(self.random_negatives >= 0, f"random_negatives must be >= 0, but is {self.random_negatives}")
        check_decoding_fields(self)
        check(self.upper_select in ("select_metric", "recall"),
              f"upper_select must be 'select_metric' or 'recall', but is {self.upper_select!r}")
        check(isinstance(self.level_epochs, list) and all(isinstance(e, int) and e > 0 for e in self.level_epochs),
              f"level_epochs must be a list of positive integers (e.g. [8, 5]), but is {self.level_epochs!r}")
        check(self.n_trees > 0, f"n_trees must be positive, but is {self.n_trees}")
        check(self.tfidf_max_features > 0,
              f"tfidf_max_features must be positive, but is {self.tfidf_max_features}")
        check(not (self.sparse_grad and self.weight_decay > 0),
              f"weight_decay={self.weight_decay} is not supported with sparse_grad=true (SparseAdam has no "
              "weight decay); set weight_decay=0 or sparse_grad=false")


@register("attentionxml")
class AttentionXML(DeepTextModel):
    """AttentionXML with label-tree training, beam search and tree ensembles. Fitted: ``trees_``."""

    Config = AttentionXMLConfig

    def __init__(self, config: AttentionXMLConfig | None = None):
        super().__init__(config)
        self.trees_: list[TreeLevels] = []
        self.gamma_: float = 1.0 if self.config.level_gamma is None else float(self.config.level_gamma)
        self.beam_: int = self.config.beam  # the prediction's beam width (beam_choices: chosen on validation)
        self.stats_: dict[str, Any] = {}  # validation figures of choices made after training (level_gamma)
        self._children_t: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def tiny_config(cls) -> AttentionXMLConfig:
        """A config that trains in a second or two on the tiny synthetic data."""
        return AttentionXMLConfig(emb_dim=16, w2v_epochs=1, hidden=16, fc=[16], epochs=15, batch_size=16,
                                  lr=2e-2, dropout=0.1, emb_dropout=0.0, max_len=64, patience=0,
                                  progress=False, device="cpu", threads=1)

    @staticmethod
    def net_name(tree: int, level: int) -> str:
        return f"tree{tree}.level{level + 1}"

    def _use_tree(self) -> bool:
        if self.config.tree is not None:
            return self.config.tree
        return self.n_labels_ > self.config.tree_min_labels

    # ----------------------------------------------------------------- building
    def _build_trees(self, train: Encoded, texts: list[str]) -> None:
        cfg = self.config
        if not self._use_tree():
            self.trees_ = [TreeLevels.flat(self.n_labels_) for _ in range(cfg.n_trees)]
            return
        from xmtc.features import TfidfFeaturizer
        from xmtc.tree import LabelTree, pifa

        def build() -> list[TreeLevels]:
            X = TfidfFeaturizer(max_features=cfg.tfidf_max_features).fit_transform(texts)
            features = pifa(X, train.Y)
            return [TreeLevels.from_label_tree(LabelTree.build(features, cluster_size=cfg.cluster_size,
                                                               n_top=cfg.tree_top, seed=cfg.seed + t))
                    for t in range(cfg.n_trees)]

        # data-parallel (torchrun): rank 0 builds the trees, every rank takes them (xmtc.train.distributed)
        self.trees_ = self._shared(build, lambda trees: {k: v for t, levels in enumerate(trees)
                                                         for k, v in levels.to_arrays(f"tree{t}_").items()},
                                   lambda a: [TreeLevels.from_arrays(a, f"tree{t}_") for t in range(cfg.n_trees)])

    def _make_networks(self, embeddings: np.ndarray) -> dict[str, nn.Module]:
        nets = {}
        for t, levels in enumerate(self.trees_):
            for d, size in enumerate(levels.sizes):
                torch.manual_seed(self.config.seed + 1000 * t + d)
                # levels below the top train on candidates only: there a sparse gradient pays off
                sparse = self.config.sparse_grad and d > 0
                net = AttentionNet(embeddings, size, self.config, sparse=sparse)
                if self.config.share_encoder and d > 0:
                    net.share_encoder_of(nets[self.net_name(t, 0)])
                nets[self.net_name(t, d)] = net
        return nets

    def _children(self, tree: int, level: int) -> torch.Tensor:
        key = (tree, level)
        if key not in self._children_t:
            self._children_t[key] = torch.from_numpy(self.trees_[tree].children(level)).to(self.device_)
        return self._children_t[key]

    # ----------------------------------------------------------------- training
    def _train(self, train: Encoded, valid: Encoded, embeddings: np.ndarray, *, run_dir: Path | None,
               resume: bool) -> None:
        self._build_trees(train, train.texts)
        self._children_t = {}
        self.networks_ = {k: v.to(self.device_) for k, v in self._make_networks(embeddings).items()}
        for t, levels in enumerate(self.trees_):
            for d in range(levels.n_levels):
                self._train_level(t, d, train, valid, run_dir=run_dir, resume=resume)
        if self.has_tree_decoding():
            self.choose_decoding_if_asked(valid, self.config.beam)

    def has_tree_decoding(self) -> bool:
        return any(levels.n_levels > 1 for levels in self.trees_)

    def _grid_topk_batch(self, batch: TextBatch, k: int, beams: list[int], gammas: list[float]
                         ) -> dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]]:
        per_tree = []
        for t, levels in enumerate(self.trees_):
            fns = self._level_fns(t, batch, levels.n_levels - 1)
            width = k if len(self.trees_) == 1 else max(k, *beams)
            per_tree.append(beam_search_grid(fns, [self._children(t, d) for d in range(levels.n_levels - 1)],
                                             beams, gammas, width))
        return merge_grids(per_tree, k)

    def _train_level(self, t: int, d: int, train: Encoded, valid: Encoded, *, run_dir: Path | None,
                     resume: bool) -> None:
        cfg, levels = self.config, self.trees_[t]
        net = self.networks_[self.net_name(t, d)]
        Y_level = levels.targets(train.Y, d)
        if d > 0:
            net.init_from(self.networks_[self.net_name(t, d - 1)], levels.parents[d - 1])
            # top-C nodes of the level above, predicted by the trained levels above (eval mode, no grad)
            top_up = self.predict_encoded(train, cfg.candidates, lambda b, k: self._tree_topk(t, b, k, d - 1),
                                          n_labels=levels.sizes[d - 1]).indices.astype(np.int64)
            Y_up = levels.targets(train.Y, d - 1)
            children = levels.children(d - 1)
        net.train()

        def loss(module: AttentionNet, batch: TextBatch) -> torch.Tensor:
            if d == 0:
                target = dense_rows(Y_level, batch.rows, batch.ids.device)  # (batch, n_nodes)
                return bce_loss(module(batch.ids, batch.mask), target)
            cand = training_candidates(top_up[batch.rows], Y_up[batch.rows], children, cfg.candidates)
            if cfg.random_negatives:  # drawn from the batch's own rows: the same after a resume
                rng = np.random.default_rng([cfg.seed, t, d, *batch.rows[:8].tolist()])
                extra = rng.integers(0, levels.sizes[d], size=(len(batch.rows), cfg.random_negatives))
                cand = np.concatenate([cand, extra.astype(np.int64)], axis=1)  # (batch, W + R)
            target = torch.from_numpy(candidate_targets(cand, Y_level[batch.rows])).to(batch.ids.device)
            cand_t = torch.from_numpy(cand).to(batch.ids.device)
            logits = module(batch.ids, batch.mask, cand_t.clamp(min=0)).float()  # (batch, c)
            weight = (cand_t >= 0).float()
            total = nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                                                   reduction="sum")
            return total / weight.sum().clamp(min=1)

        Y_valid = levels.targets(valid.Y, d)

        on_recall = d < levels.n_levels - 1 and cfg.upper_select == "recall"  # an upper level chosen on recall

        def evaluate(module: AttentionNet) -> float:
            fn = lambda b, k: self._tree_topk(t, b, k, d, override=module)  # noqa: E731
            if not on_recall:
                return self.validation_score(valid, fn, Y=Y_valid)
            from xmtc import metrics  # recall of the C nodes the next level will expand

            top = self.predict_encoded(valid, cfg.candidates, fn, n_labels=levels.sizes[d])
            return float(metrics.recall_at_k(Y_valid, top, cfg.candidates))

        tag = f"level-{d + 1}" if cfg.n_trees == 1 else f"tree{t}-level-{d + 1}"
        epochs = cfg.level_epochs[min(d, len(cfg.level_epochs) - 1)] if cfg.level_epochs else cfg.epochs
        own = None
        if net.frozen_encoder:  # only this level's attention and FC layers train
            shared = {id(p) for p in [*net.emb.parameters(), *net.encoder.parameters()]}
            own = [p for p in net.parameters() if id(p) not in shared]
        self.train_results_[tag] = train_loop(
            net, cfg=cfg, batches=lambda e: self.train_batches(train, e, salt=t), loss=loss,
            evaluate=evaluate, run_dir=run_dir, tag=tag, resume=resume, epochs=epochs, parameters=own,
            score_name=f"recall@{cfg.candidates}" if on_recall else None)
        net.eval()

    # ----------------------------------------------------------------- prediction
    def _tree_topk(self, t: int, batch: TextBatch, k: int, depth: int | None = None,
                   override: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Beam search in tree ``t`` down to level ``depth`` (default: the labels); ``override`` replaces the
        network of level ``depth`` (the one being trained)."""
        levels = self.trees_[t]
        depth = levels.n_levels - 1 if depth is None else depth
        fns = self._level_fns(t, batch, depth, override)
        gamma = self.gamma_ if depth == levels.n_levels - 1 else 1.0
        return beam_search(fns, [self._children(t, d) for d in range(depth)], self.beam_, k, gamma=gamma)

    def _level_fns(self, t: int, batch: TextBatch, depth: int, override: nn.Module | None = None) -> list:
        """One logits callable per level 0..``depth`` of tree ``t`` for :func:`beam_search`."""
        h = None
        if self.config.share_encoder:  # one BiLSTM pass serves every level
            h = self.networks_[self.net_name(t, 0)].encode(batch.ids, batch.mask)

        def level_fn(d: int):
            net = override if (override is not None and d == depth) else self.networks_[self.net_name(t, d)]
            if h is not None and (d > 0 or net is self.networks_[self.net_name(t, 0)]):
                return lambda cand: net.score(h, batch.mask, cand)
            return lambda cand: net(batch.ids, batch.mask, cand)

        return [level_fn(d) for d in range(depth + 1)]

    def _topk_batch(self, batch: TextBatch, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self.trees_) == 1:
            return self._tree_topk(0, batch, k)
        width = max(k, self.beam_)
        return merge_topk([self._tree_topk(t, batch, width) for t in range(len(self.trees_))], k)

    def explain(self, text: str, label: str | int) -> tuple[list[str], np.ndarray]:
        """Tokens of ``text`` (after truncation to ``max_len``) and the label's attention weight on each,
        averaged over the ensemble's leaf-level networks.

        Args:
            text: a raw document.
            label: label name or id.

        Returns:
            (tokens, weights float32 (len(tokens),)), weights summing to 1 (empty for a text without tokens).
        """
        self._check_fitted()
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= label < self.n_labels_:
                raise XMTCError(f"label id {label} is out of range 0..{self.n_labels_ - 1}")
            lid = int(label)
        else:
            lid = self.label_index_.get(str(label))
            if lid < 0:
                raise XMTCError(f"unknown label {label!r}: it was not in the training data")
        tokens = self._tokenize([text])[0][: self.config.max_len]
        if not tokens:
            return [], np.zeros(0, dtype=np.float32)
        if self.device_ is None:
            self._setup_runtime()
        enc = self._encode_tokens([tokens])
        from xmtc.models.deep_batches import make_batch

        batch = make_batch(enc, np.arange(1), self.device_)
        cand = torch.tensor([[lid]], device=self.device_)
        weights = []
        with torch.no_grad():
            for t, levels in enumerate(self.trees_):
                net = self.networks_[self.net_name(t, levels.n_levels - 1)].eval()
                _, alpha = net(batch.ids, batch.mask, cand, return_weights=True)  # (1, 1, seq)
                weights.append(alpha[0, 0].float().cpu().numpy())
        return tokens, np.mean(weights, axis=0).astype(np.float32)

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {"n_trees": len(self.trees_), "level_gamma": self.gamma_, "beam": self.beam_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.gamma_ = float(state.get("level_gamma", 1.0))  # models saved before level_gamma used the product
        self.beam_ = int(state.get("beam", self.config.beam))  # models saved before beam_choices: the config's

    def _save_extra(self, path: Path) -> list[str]:
        arrays = {}
        for t, levels in enumerate(self.trees_):
            arrays.update(levels.to_arrays(prefix=f"tree{t}_"))
        return [save_arrays(path, "trees.npz", arrays)]

    def _load_extra(self, path: Path) -> None:
        arrays = load_arrays(path, "trees.npz")
        self.trees_ = [TreeLevels.from_arrays(arrays, prefix=f"tree{t}_") for t in range(self.config.n_trees)]
        self._children_t = {}


def dense_rows(Y, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Dense float32 (len(rows), L) targets of ``rows`` of CSR ``Y`` on ``device``."""
    return torch.from_numpy(np.asarray(Y[rows].todense(), dtype=np.float32)).to(device)
