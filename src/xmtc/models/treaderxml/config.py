"""TReaderXML settings: the config dataclass (Section 4.1's defaults, the teacher, the shortlist, the fusion with
the teacher's votes), the Table 3 ablations (:data:`ABLATIONS`) and the option names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xmtc.config import check, doc_field
from xmtc.models.deep import DeepConfig
from xmtc.models.fusion import check_fusion
from xmtc.models.treaderxml.network import parse_reading
from xmtc.models.treaderxml.teacher import PARENT_MODES, TEACHER_ENCODERS

#: Table 3 configuration id -> (teacher knowledge, Reading structure).
ABLATIONS: dict[int, tuple[bool, str]] = {
    0: (False, ""),
    1: (True, ""),
    2: (True, "mmhsa+r"),
    3: (True, "mhsa+r"),
    4: (True, "mhsa+r+mmhsa"),
    5: (True, "mmhsa+mhsa"),
    6: (True, "mmhsa+r+mhsa"),
}
INTERACTIONS = ("paper", "lcf")
POOLINGS = ("mean", "label_attention")
FUSIONS = ("auto", "none", "teacher")


@dataclass
class TReaderXMLConfig(DeepConfig):
    """TReaderXML settings; defaults follow Section 4.1 (h = 4, Adam then decay, 4 description words; Adam at
    1e-3, not the paper's 1e-4: chosen on validation for CPU budgets, ``lr=1e-4`` is the paper's) and, for the
    capacity the paper leaves open, AttentionXML's ``fast`` preset (100-d word vectors, 256 tokens; the paper
    truncates EURLex at 500 words: ``max_len=500``)."""

    PRESETS: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {
        "ablation": {i: {"teacher": t, "reading": r} for i, (t, r) in ABLATIONS.items()}}

    max_len: int = doc_field(256, "tokens kept per document (longer documents are truncated; the paper: 500 "
                                  "for EURLex)")
    emb_dim: int = doc_field(100, "word vector size = the model dimension d (a multiple of heads; ignored when "
                                  "'embeddings' names a file: taken from it)")
    teacher: bool = doc_field(True, "feed the teacher-knowledge branch (Table 3 column 'teacher knowledge')")
    reading: str = doc_field("mmhsa+r+mhsa", "Reading structure: 'mmhsa'/'mhsa' layers joined by '+', '+r' = "
                                             "residual around the previous layer; '' = no Reading")
    reading_residual: bool = doc_field(True, "extension: wrap every attention block (Reading and Interaction) "
                                             "as LayerNorm(x + block(x)); false = the paper (residual only "
                                             "where 'reading' says '+r', no normalisation)")
    interaction: str = doc_field("paper", "how the Interaction joins the branches: 'paper' ([O_y'; O_x] along "
                                          "the sequence, Eq. 16) or 'lcf' (along the features, position i = "
                                          "[item i; word i], then a 2d -> d layer, as in LCF)")
    ablation: int = doc_field(-1, "Table 3 configuration 0-6: sets teacher and reading where they are not "
                                    "set explicitly; -1: none")
    heads: int = doc_field(4, "h, attention heads of every (M)MHSA layer")
    bottleneck: int = doc_field(256, "size of the hidden bottleneck W^HB of the Interaction (Eq. 17)")
    pooling: str = doc_field("mean", "Prediction input: 'mean' (the paper's Eq. 18: masked mean of the "
                                     "Interaction output, one shared vector) or 'label_attention' (extension: "
                                     "each label attends over that output with its own vector, as AttentionXML)")
    dropout: float = doc_field(0.2, "dropout on the pooled Interaction output")
    teacher_encoder: str = doc_field("tfidf", "document vectors of the teacher's neighbour search: 'tfidf' "
                                              "(TF-IDF of the tokens the model reads; a deviation) or "
                                              "'mean_w2v' (the paper's Eq. 1: mean word vectors)")
    n_neighbours: int = doc_field(10, "k, nearest training texts of the teacher (Eq. 2)")
    teacher_size: int = doc_field(64, "K, most teacher items (labels + parents) per text, best first")
    desc_words: int = doc_field(4, "description words kept per teacher item (paper: 4 for EURLex, 16 for "
                                   "RCV1)")
    parents: str = doc_field("auto", "parent items: 'index' (hierarchy parents that are labels), 'all' "
                                     "(every hierarchy parent), 'tree' (label-tree leaf clusters), 'none', "
                                     "or 'auto' ('index' when the hierarchy links two labels, else 'tree')")
    cluster_size: int = doc_field(16, "labels per leaf cluster of the label tree (tree parents, shortlist)")
    tfidf_max_features: int = doc_field(100000, "TF-IDF vocabulary of the label tree's PIFA label features")
    shortlist: bool | None = doc_field(None, "score only shortlisted labels (true), all labels (false), or "
                                             "null: shortlist above shortlist_min_labels labels")
    shortlist_min_labels: int = doc_field(10000, "with shortlist=null, shortlist above this many labels")
    shortlist_labels: int = doc_field(100, "best teacher labels in the shortlist")
    shortlist_clusters: int = doc_field(16, "label-tree leaf clusters (best summed teacher score) whose "
                                            "labels all join the shortlist")
    teacher_prior: bool = doc_field(True, "extension, not in the paper: add a * (the label's teacher vote "
                                          "share) + b * (1 if the teacher proposes it) to each label's "
                                          "logit, a and b learned; false = the paper's pooled route only")
    teacher_prior_init: list[float] = doc_field([8.0, 2.0], "initial (a, b) of teacher_prior (from 0 they move "
                                                            "one learning-rate step per update: far too slow)")
    teacher_fusion: str | float = doc_field(
        "auto", "extension: rank by logit + w * log(teacher vote share + 1e-3); 'auto' (w chosen on the "
        "validation split after training among teacher_fusion_grid and inf = the teacher's own votes), "
        "'none' (w = 0: the network alone, the paper) or a fixed w >= 0; used only with teacher knowledge")
    teacher_fusion_grid: list[float] = doc_field([0.0, 0.5, 1.0, 2.0, 4.0, 8.0],
                                                 "weights w tried by teacher_fusion='auto' (and inf)")
    lr: float = doc_field(1e-3, "Adam learning rate (paper: 1e-4, for training to convergence; 1e-3 chosen on "
                                "validation for CPU budgets, docs/MODELS.md)")
    lr_decay: float = doc_field(0.1, "after convergence, train on with lr * lr_decay (the paper's 'learning "
                                     "rate attenuation')")
    decay_epochs: int = doc_field(2, "most epochs of the decayed stage (0: none)")
    epochs: int = doc_field(20, "most epochs of the first stage (early stopping on the validation split)")

    def validate(self) -> None:
        super().validate()
        check(self.ablation == -1 or self.ablation in ABLATIONS,
              f"ablation must be -1 or a Table 3 configuration 0-6, but is {self.ablation}")
        parse_reading(self.reading)
        check(self.interaction in INTERACTIONS,
              f"interaction must be one of {INTERACTIONS}, but is {self.interaction!r}")
        check(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}, but is {self.pooling!r}")
        check(self.heads > 0, f"heads must be positive, but is {self.heads}")
        check(self.bottleneck > 0 and self.bottleneck % self.heads == 0,
              f"bottleneck must be a positive multiple of heads ({self.heads}), but is {self.bottleneck}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), but is {self.dropout}")
        check(self.teacher_encoder in TEACHER_ENCODERS,
              f"teacher_encoder must be one of {TEACHER_ENCODERS}, but is {self.teacher_encoder!r}")
        check(self.n_neighbours > 0, f"n_neighbours must be positive, but is {self.n_neighbours}")
        check(self.teacher_size > 0, f"teacher_size must be positive, but is {self.teacher_size}")
        check(self.desc_words > 0, f"desc_words must be positive, but is {self.desc_words}")
        check(self.parents in PARENT_MODES, f"parents must be one of {PARENT_MODES}, but is {self.parents!r}")
        check(self.cluster_size > 1, f"cluster_size must be > 1, but is {self.cluster_size}")
        check(self.tfidf_max_features > 0,
              f"tfidf_max_features must be positive, but is {self.tfidf_max_features}")
        check(self.shortlist_min_labels > 0, f"shortlist_min_labels must be positive, but is "
                                             f"{self.shortlist_min_labels}")
        check(self.shortlist_labels > 0, f"shortlist_labels must be positive, but is {self.shortlist_labels}")
        check(self.shortlist_clusters >= 0,
              f"shortlist_clusters must be >= 0, but is {self.shortlist_clusters}")
        check(len(self.teacher_prior_init) == 2 and all(np.isfinite(v) for v in self.teacher_prior_init),
              f"teacher_prior_init must be two finite numbers (a, b), but is {self.teacher_prior_init}")
        check_fusion("teacher_fusion", self.teacher_fusion, FUSIONS, self.teacher_fusion_grid)
        check(0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], but is {self.lr_decay}")
        check(self.decay_epochs >= 0, f"decay_epochs must be >= 0, but is {self.decay_epochs}")
