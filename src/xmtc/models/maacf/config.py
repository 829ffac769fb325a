"""MAACF+ settings: the config dataclass (paper's defaults, variants, aspects, shortlist, fusion) and its option names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xmtc.config import check, doc_field
from xmtc.models.deep import DeepConfig
from xmtc.models.fusion import check_fusion, fixed_weight

ASPECTS = ("cnn", "lstm", "transformer")


VARIANTS = ("maacf", "mcf", "encoder")


SHORTLISTS = ("auto", "all", "head", "parabel")


FUSIONS = ("auto", "none", "shortlist")


RANK_LOSSES = ("bpr", "bce", "listwise")


SHORTLIST_DIR = "shortlist"


@dataclass
class MAACFConfig(DeepConfig):
    """MAACF+ settings (paper: 256-d CBOW word vectors, 256-d representations, k = 2, a 2-layer predictor).

    Defaults are for long documents (EURLEX57K laws: median about 410 words): 500 word tokens, 512 sub-word
    tokens for the transformer aspect (its position limit), 256-d word vectors and representations.
    """

    max_len: int = doc_field(500, "word tokens kept per document (longer documents are truncated)")

    variant: str = doc_field("maacf", "'maacf' (co-attention, the paper's model), 'mcf' (MCF+: self-attention"
                                      " only) or 'encoder' (the aspects alone with a linear BCE head)")
    aspects: list[str] = doc_field(["cnn", "cnn"], "document encoders, one per aspect: 'cnn' (XML-CNN), "
                                                   "'lstm' (attention-BiLSTM), 'transformer' "
                                                   "(all-MiniLM-L6-v2); one entry = ACF+")
    dim: int = doc_field(256, "D: size of the aspect, label and group representations")
    group_size: int = doc_field(2, "k: labels in each label's global nearest label group (0: no group)")
    negatives: int = doc_field(5, "Neg: negative labels sampled per positive pair (BPR loss)")
    rank_loss: str = doc_field("listwise", "loss of the pair scores: 'listwise' (each positive against all "
                                           "the negatives of the document's training shortlist, softmax "
                                           "cross-entropy; the shortlist is the one ranked at prediction), "
                                           "'bce' (every label of that shortlist and the positives, binary "
                                           "cross-entropy) or 'bpr' (the paper's Eq. 10: each positive "
                                           "against 'negatives' sampled labels)")
    max_positives: int = doc_field(32, "most positive labels of one document used per step (sampled)")
    label_tables: str = doc_field("one", "'one': the group members h_ik are rows of the label embedding "
                                         "table of H_z (the paper: both 'from the embedding matrix of "
                                         "labels'); 'two': a separate table for the members")
    encoder_head: bool = doc_field(True, "add a linear head over the mean aspect vector to every pair "
                                         "logit, trained with BCE on all labels (weight head_weight) and by "
                                         "the pairwise loss")
    word_attention: bool = doc_field(False, "add a label-wise attention over the first XML-CNN aspect's "
                                            "token states to every pair logit (u_j . m_j + b_j, as "
                                            "AttentionXML's label_output; not in the paper)")
    predictor_layers: int = doc_field(2, "linear layers of the predictor MLP (paper: 2)")
    predictor_hidden: int = doc_field(256, "hidden units of the predictor MLP")
    predictor_input: str = doc_field("product", "predictor input: 'product' [S; H; S*H] (adds NCF's "
                                                "element-wise GMF term, so the BPR gradient reaches the text "
                                                "side; see docs/MODELS.md) or 'concat' [S; H] (Eq. 9)")
    dropout: float = doc_field(0.2, "dropout in the aspect encoders and the predictor")
    share_embeddings: bool = doc_field(False, "one word embedding for all word-level aspects (saves memory)")
    cnn_widths: list[int] = doc_field([2, 4, 8], "XML-CNN filter widths")
    cnn_filters: int = doc_field(128, "XML-CNN feature maps per width")
    cnn_chunks: int = doc_field(8, "XML-CNN dynamic max pooling pieces")
    lstm_hidden: int = doc_field(128, "attention-BiLSTM hidden units per direction")
    transformer_max_len: int = doc_field(512, "sub-word tokens per document for the transformer aspect "
                                              "(512: MiniLM's limit)")
    transformer_frozen: bool = doc_field(False, "transformer aspect frozen whole: each document's MiniLM "
                                                "sentence embedding is computed once and cached, the network "
                                                "learns a projection of it (cheap on a CPU); false: the top "
                                                "transformer_trainable_layers are fine-tuned")
    transformer_trainable_layers: int = doc_field(2, "top transformer layers fine-tuned (the rest frozen)")
    transformer_lr_scale: float = doc_field(0.05, "learning-rate multiplier of the transformer's own layers")
    shortlist: str = doc_field("auto", "labels reranked at prediction: 'all', 'head' (linear head), "
                                       "'parabel' (sparse label tree) or 'auto' (all up to shortlist_size "
                                       "labels, else parabel)")
    shortlist_size: int = doc_field(100, "candidate labels per document from the shortlist")
    hard_negatives: int = doc_field(0, "of the Neg negatives per positive, how many are drawn from the "
                                       "document's shortlist (head or parabel) instead of uniformly")
    shortlist_folds: int = doc_field(3, "parabel shortlist with rank_loss listwise/bce or hard_negatives: the "
                                        "training documents' shortlists come from k-fold Parabel models that "
                                        "did not see them (cross-fitting); 1 = the final Parabel's in-sample "
                                        "predictions")
    fusion: str | float = doc_field("auto", "rank by logit + w * log p, p = the parabel shortlist's score, "
                                            "or without a parabel shortlist (encoder_head on) the head's "
                                            "sigmoid; 'auto' (w chosen on the validation split from "
                                            "fusion_grid and the partner's own order), a number (w fixed), "
                                            "'shortlist' (the partner's own order, w = inf) or 'none' (the "
                                            "network alone, w = 0)")
    train_fusion: float = doc_field(0.0, "train on top of the parabel shortlist: the ranking loss (listwise or "
                                         "bce) scores logit + train_fusion * log p, p = the document's "
                                         "cross-fitted shortlist score, so the network learns what the "
                                         "shortlist gets wrong rather than the whole ranking; 0: the network "
                                         "alone is trained (the paper)")
    fusion_grid: list[float] = doc_field([0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                                         "fusion weights w tried by fusion='auto' (w = inf, the partner's "
                                         "own order, is always tried too)")
    head_weight: float = doc_field(1.0, "weight of the linear head's BCE loss (encoder_head or shortlist "
                                        "'head')")
    head_detach: bool = doc_field(False, "the head's BCE loss does not reach the encoders (they learn from "
                                         "the pairwise loss only)")
    label_chunk: int = doc_field(512, "labels scored at once when every label is scored")
    emb_dim: int = doc_field(256, "word vector size (paper: 256-d CBOW vectors)")

    def validate(self) -> None:
        super().validate()
        check(self.variant in VARIANTS, f"variant must be one of {VARIANTS}, but is {self.variant!r}")
        check(len(self.aspects) > 0, "aspects must name at least one encoder, but is empty")
        for a in self.aspects:
            check(a in ASPECTS, f"aspects entries must be one of {ASPECTS}, but one is {a!r}")
        check(self.label_tables in ("one", "two"),
              f"label_tables must be 'one' or 'two', but is {self.label_tables!r}")
        check(self.predictor_input in ("concat", "product"),
              f"predictor_input must be 'concat' or 'product', but is {self.predictor_input!r}")
        check(self.rank_loss in RANK_LOSSES,
              f"rank_loss must be one of {RANK_LOSSES}, but is {self.rank_loss!r}")
        check(self.shortlist in SHORTLISTS,
              f"shortlist must be one of {SHORTLISTS}, but is {self.shortlist!r}")
        for name in ("dim", "negatives", "max_positives", "predictor_hidden", "cnn_filters", "cnn_chunks",
                     "lstm_hidden", "transformer_max_len", "shortlist_size", "label_chunk", "shortlist_folds"):
            check(getattr(self, name) > 0, f"{name} must be positive, but is {getattr(self, name)}")
        check(self.group_size >= 0, f"group_size must be >= 0, but is {self.group_size}")
        check(1 <= self.predictor_layers <= 6,
              f"predictor_layers must be in 1..6, but is {self.predictor_layers}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), but is {self.dropout}")
        check(len(self.cnn_widths) > 0 and all(w > 0 for w in self.cnn_widths),
              f"cnn_widths must be positive ints, but is {self.cnn_widths}")
        check(self.transformer_trainable_layers >= 0,
              f"transformer_trainable_layers must be >= 0, but is {self.transformer_trainable_layers}")
        check(self.transformer_lr_scale > 0, f"transformer_lr_scale must be positive, but is "
                                             f"{self.transformer_lr_scale}")
        check(0 <= self.hard_negatives <= self.negatives,
              f"hard_negatives must be in [0, negatives={self.negatives}], but is {self.hard_negatives}")
        check(self.hard_negatives == 0 or self.rank_loss == "bpr",
              f"hard_negatives={self.hard_negatives} samples BPR negatives, but rank_loss is "
              f"{self.rank_loss!r} (which already scores the whole shortlist): set rank_loss=bpr")
        check(not self.word_attention or "cnn" in self.aspects,
              f"word_attention attends over the tokens of an XML-CNN aspect, but aspects is {self.aspects}: "
              f"add 'cnn'")
        check(not self.word_attention or self.variant != "encoder",
              "word_attention adds to the pair scores, but variant 'encoder' has none")
        check(self.head_weight >= 0, f"head_weight must be >= 0, but is {self.head_weight}")
        check_fusion("fusion", self.fusion, FUSIONS, self.fusion_grid)
        check(math.isfinite(self.train_fusion) and self.train_fusion >= 0,
              f"train_fusion must be a finite number >= 0, but is {self.train_fusion}")
        check(self.train_fusion == 0 or self.rank_loss != "bpr",
              f"train_fusion={self.train_fusion} adds the shortlist's scores to the shortlist losses, but "
              f"rank_loss is 'bpr': set rank_loss=listwise or bce")
        check(self.train_fusion == 0 or self.shortlist in ("auto", "parabel"),
              f"train_fusion={self.train_fusion} needs the parabel shortlist's scores, but shortlist is "
              f"{self.shortlist!r}")
        check(self.train_fusion == 0 or self.variant != "encoder",
              f"train_fusion={self.train_fusion} trains pair scores, but variant 'encoder' has none")
        check(self.train_fusion == 0 or fixed_weight(self.fusion, "shortlist") != 0,
              f"train_fusion={self.train_fusion} trains a correction of the shortlist's scores, which ranks "
              f"nothing alone, but fusion is {self.fusion!r} (the network alone): use fusion=auto")
