"""TReaderXML teacher knowledge (Wang et al., Section 3.2, Eq. 1-2 and Algorithm 1).

For every document the teacher gives a short ranked list of *teacher items* (the label subset
``SET_nearest``): the labels of its top-k nearest training documents plus their parent labels. Each item is a
bag of description words; the network encodes it as the weighted mean of its word vectors (``Encode(T_k)``),
and the encodings form the teacher sequence ``E_y'``.

* Document vectors: ``encoder="tfidf"`` (default, a deviation): TF-IDF rows of the very tokens the model reads
  (truncated at ``max_len``, in its vocabulary; :class:`xmtc.features.TfidfFeaturizer` over the token ids);
  ``encoder="mean_w2v"`` (Eq. 1): mean of the (fixed, pre-training) word vectors of the document's known tokens.
  On EURLEX57K mean word vectors are nearly all alike (see docs/MODELS.md), TF-IDF neighbours are far better.
* Neighbours (Eq. 2): exact cosine top-k by batched matrix products (:func:`xmtc.features.knn`); a training
  document never counts itself (``exclude_self``), so its own labels cannot leak into its teacher knowledge.
* Label subset (Algorithm 1): label scores ``S @ Y_base`` (row ``i`` of ``S`` holds each neighbour's share of
  the summed cosine similarity, so a score is a label's vote share), parents scored with the summed scores of
  their children (``label_scores @ A``, ``A`` = label -> {itself, parents}), the ``size`` best items kept,
  best first.

Items ``0..L-1`` are the labels themselves; items ``L..`` are parents that are not labels (hierarchy nodes
outside the label index with ``parents="all"``, or label-tree leaf clusters with ``parents="tree"``).
All arrays are saved with :func:`xmtc.models.base.save_arrays` (``.npz``, no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.errors import DataError, ModelLoadError
from xmtc.models.base import load_arrays, save_arrays
from xmtc.models.treaderxml.candidates import top_per_row

if TYPE_CHECKING:
    from xmtc.features import TfidfFeaturizer

PARENT_MODES = ("auto", "index", "all", "tree", "none")
#: document representations of the neighbour search; saved as a code in ``teacher.npz`` (params[2]).
TEACHER_ENCODERS = ("mean_w2v", "tfidf")
TEACHER_FILE = "teacher.npz"
TFIDF_PREFIX = "teacher_tfidf"


def round_fp16(x: np.ndarray) -> np.ndarray:
    """float32 copy of ``x`` rounded to float16 precision (so that saving as float16 loses nothing)."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def bag_matrix(ids: Sequence[np.ndarray], n_vocab: int) -> sp.csr_matrix:
    """Row-normalised bag of words (n, n_vocab) float32 of token id arrays; ids 0 (pad) and 1 (unk) are
    dropped unless a row has nothing else (then it keeps its unknown tokens)."""
    lengths = np.asarray([len(a) for a in ids], dtype=np.int64)
    flat = np.concatenate([np.asarray(a, dtype=np.int64) for a in ids]) if len(ids) else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(ids)), lengths)
    known = flat > 1
    has_known = np.bincount(rows[known], minlength=len(ids)) > 0
    keep = known | (~has_known[rows] & (flat == 1))
    m = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], flat[keep])),
                      shape=(len(ids), n_vocab))
    m.sum_duplicates()
    sums = np.asarray(m.sum(axis=1)).ravel()
    m = sp.csr_matrix(sp.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ m, dtype=np.float32)
    m.sort_indices()
    return m


def doc_vectors(ids: Sequence[np.ndarray], word_vectors: np.ndarray) -> np.ndarray:
    """Eq. 1: mean word vector of each document, float32 (n, d) rounded to float16 precision."""
    return round_fp16(bag_matrix(ids, word_vectors.shape[0]) @ word_vectors)


def id_texts(ids: Sequence[np.ndarray]) -> list[str]:
    """Token id arrays -> texts of their known ids (``"17 4 17"``; pad 0 and unknown 1 dropped): the terms of the
    teacher's TF-IDF are exactly the tokens the model reads, whatever the tokenizer would make of the words."""
    return [" ".join(map(str, a[a > 1].tolist())) for a in (np.asarray(x, dtype=np.int64) for x in ids)]


def fit_tfidf(ids: Sequence[np.ndarray]) -> tuple[TfidfFeaturizer, sp.csr_matrix]:
    """TF-IDF (sublinear tf, smoothed idf, L2 rows; terms in at least 2 documents, or in 1 when no term is
    shared) over the token ids of the base documents, and their rows rounded to float16 precision."""
    from xmtc.features import TfidfFeaturizer

    texts = id_texts(ids)
    try:
        tfidf = TfidfFeaturizer(max_features=None, min_df=2)
        X = tfidf.fit_transform(texts)
    except DataError:
        tfidf = TfidfFeaturizer(max_features=None, min_df=1)
        X = tfidf.fit_transform(texts)
    X.data = round_fp16(X.data)
    return tfidf, X


def resolve_parent_mode(mode: str, hierarchy: Hierarchy | None, index: LabelIndex) -> str:
    """``auto`` -> ``index`` when the hierarchy links two labels of ``index``, else ``tree``."""
    if mode != "auto":
        return mode
    if hierarchy is not None and hierarchy.parent_matrix(index).nnz > 0:
        return "index"
    return "tree"


def build_items(index: LabelIndex, tokenize, vocab, *, mode: str, hierarchy: Hierarchy | None,
                descriptions: dict[str, str] | None, desc_words: int,
                clusters: np.ndarray | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix, list[str]]:
    """Teacher items: their word bags and the label -> item map.

    Args:
        index: the label index (items ``0..L-1``).
        tokenize: text -> tokens (the model's tokenizer).
        vocab: :class:`xmtc.text.Vocab` of the model.
        mode: ``index`` (hierarchy parents that are labels), ``all`` (every hierarchy parent, parents outside
            the index become extra items), ``tree`` (leaf cluster of ``clusters`` as the parent) or ``none``.
        hierarchy: child -> parents over label names (modes ``index``/``all``).
        descriptions: label name -> text; a label without one is described by its name.
        desc_words: description words kept per item (the paper keeps 4 for EURLex).
        clusters: int64 (L,) leaf cluster of every label (mode ``tree``).

    Returns:
        (item_bags CSR (n_items, V) rows summing to 1, label_items CSR (L, n_items) 0/1 with the label itself
        and its parent items, names of the extra items ``L..``).
    """
    descriptions = descriptions or {}
    L = len(index)

    def bag(names: Sequence[str]) -> sp.csr_matrix:
        ids = [vocab.encode(tokenize(descriptions.get(n) or n)[:desc_words]) for n in names]
        return bag_matrix([a if len(a) else np.asarray([1]) for a in ids], len(vocab))

    label_bags = bag(index.names)
    rows, cols = list(range(L)), list(range(L))
    extra: list[str] = []
    extra_bags = sp.csr_matrix((0, len(vocab)), dtype=np.float32)
    if mode in ("index", "all") and hierarchy is not None:
        extra_id: dict[str, int] = {}
        for child, parent in hierarchy.edges:
            c, p = index.get(child), index.get(parent)
            if c < 0 or parent == child:
                continue
            if p < 0:
                if mode == "index":
                    continue  # the brief's rule: parents outside the label index are skipped
                if parent not in extra_id:
                    extra_id[parent] = L + len(extra)
                    extra.append(parent)
                p = extra_id[parent]
            rows.append(c)
            cols.append(p)
        extra_bags = bag(extra) if extra else extra_bags
    elif mode == "tree" and clusters is not None:
        clusters = np.asarray(clusters, dtype=np.int64)
        n_clusters = int(clusters.max()) + 1
        member = sp.csr_matrix((np.ones(L, dtype=np.float32), (clusters, np.arange(L))),
                               shape=(n_clusters, L))  # (clusters, L)
        sizes = np.asarray(member.sum(axis=1)).ravel()
        extra_bags = sp.csr_matrix(sp.diags(1.0 / np.maximum(sizes, 1)) @ member @ label_bags,
                                   dtype=np.float32)  # a cluster reads as the mean of its labels
        extra = [f"cluster:{j}" for j in range(n_clusters)]
        rows += list(range(L))
        cols += (L + clusters).tolist()
    n_items = L + len(extra)
    label_items = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(L, n_items))
    label_items.sum_duplicates()
    label_items.data[:] = 1.0
    bags = sp.csr_matrix(sp.vstack([label_bags, extra_bags]), dtype=np.float32)
    bags.sort_indices()
    return bags, label_items, extra


@dataclass
class TeacherOutput:
    """Teacher knowledge of one split.

    Attributes:
        items: int64 (n, K) teacher item ids, best first, -1 padded (``SET_nearest``).
        label_scores: CSR (n, L): each label's share of the neighbour votes (similarity-weighted, in [0, 1];
            before the parents).
    """

    items: np.ndarray
    label_scores: sp.csr_matrix


@dataclass
class TeacherKnowledge:
    """Everything the teacher needs at prediction time (saved as ``teacher.npz``).

    Attributes:
        word_vectors: float32 (V, d), the word vectors of Eq. 1 (before fine-tuning, float16 precision); None
            with the TF-IDF encoder.
        base_vectors: the training documents' vectors: float32 (n_base, d) mean word vectors, or CSR
            (n_base, F) TF-IDF rows (float16 precision).
        base_Y: CSR (n_base, L) their labels.
        item_bags: CSR (n_items, V) word weights of each item (rows sum to 1).
        label_items: CSR (L, n_items) label -> {itself, its parent items}.
        n_neighbours: k of the nearest-neighbour search.
        size: K, most teacher items per document.
        tfidf: the TF-IDF over token ids (encoder ``tfidf``), or None (encoder ``mean_w2v``, Eq. 1).
    """

    word_vectors: np.ndarray | None
    base_vectors: np.ndarray | sp.csr_matrix
    base_Y: sp.csr_matrix
    item_bags: sp.csr_matrix
    label_items: sp.csr_matrix
    n_neighbours: int
    size: int
    tfidf: TfidfFeaturizer | None = None

    @classmethod
    def build(cls, ids: Sequence[np.ndarray], Y: sp.csr_matrix, *, encoder: str, word_vectors: np.ndarray,
              item_bags: sp.csr_matrix, label_items: sp.csr_matrix, n_neighbours: int,
              size: int) -> TeacherKnowledge:
        """Teacher knowledge of the training documents ``ids`` (the model's truncated token ids) with labels
        ``Y``, searched by ``encoder`` (:data:`TEACHER_ENCODERS`)."""
        if encoder not in TEACHER_ENCODERS:
            raise ValueError(f"encoder must be one of {TEACHER_ENCODERS}, but is {encoder!r}")
        common = {"base_Y": sp.csr_matrix(Y, dtype=np.float32), "item_bags": item_bags,
                  "label_items": label_items, "n_neighbours": n_neighbours, "size": size}
        if encoder == "tfidf":
            tfidf, base = fit_tfidf(ids)
            return cls(word_vectors=None, base_vectors=base, tfidf=tfidf, **common)
        words = round_fp16(word_vectors)
        return cls(word_vectors=words, base_vectors=doc_vectors(ids, words), **common)

    @property
    def encoder(self) -> str:
        """``tfidf`` or ``mean_w2v`` (Eq. 1)."""
        return "mean_w2v" if self.tfidf is None else "tfidf"

    @property
    def n_items(self) -> int:
        return self.item_bags.shape[0]

    def vectors(self, ids: Sequence[np.ndarray]) -> np.ndarray | sp.csr_matrix:
        """Search vectors of documents (token id arrays): TF-IDF rows (CSR) or mean word vectors (Eq. 1)."""
        if self.tfidf is not None:
            return self.tfidf.transform(id_texts(ids))
        return doc_vectors(ids, self.word_vectors)

    def query(self, ids: Sequence[np.ndarray] | None = None, *, training: bool = False) -> TeacherOutput:
        """Teacher items of documents (token id arrays), or of the training documents themselves.

        Args:
            ids: token ids of the query documents (ignored with ``training``).
            training: neighbours of the base (training) documents among themselves, never themselves.
        """
        from xmtc.features import knn

        q = self.base_vectors if training else self.vectors(ids)
        nb, sim = knn(q, self.base_vectors, self.n_neighbours, exclude_self=training)  # (n, k') each
        n, k = nb.shape
        weight = np.maximum(sim, 1e-6).astype(np.float32)  # every neighbour's labels enter SET_nearest
        weight /= weight.sum(axis=1, keepdims=True).clip(min=1e-12)  # label score = share of the votes
        S = sp.csr_matrix((weight.ravel(), nb.ravel(), np.arange(0, n * k + 1, k)),
                          shape=(n, self.base_Y.shape[0]))  # (n, n_base) neighbour similarities
        scores = sp.csr_matrix(S @ self.base_Y, dtype=np.float32)  # (n, L)
        scores.sort_indices()
        items, _ = top_per_row(sp.csr_matrix(scores @ self.label_items), self.size)  # (n, K)
        return TeacherOutput(items=items, label_scores=scores)

    def batch(self, items: np.ndarray, device: torch.device) -> TeacherBatch:
        """Token bags of the distinct items of a batch, ready for ``embedding_bag``."""
        items = np.asarray(items, dtype=np.int64)
        uniq, inverse = np.unique(items[items >= 0], return_inverse=True)
        slots = np.full(items.shape, -1, dtype=np.int64)
        slots[items >= 0] = inverse
        bags = self.item_bags[uniq]
        return TeacherBatch(
            tokens=torch.from_numpy(bags.indices.astype(np.int64)).to(device),
            offsets=torch.from_numpy(bags.indptr[:-1].astype(np.int64)).to(device),
            weights=torch.from_numpy(bags.data.astype(np.float32)).to(device),
            slots=torch.from_numpy(slots).to(device))

    # ----------------------------------------------------------------- persistence
    def save(self, path: Path) -> list[str]:
        """Write ``teacher.npz`` (and the TF-IDF's ``teacher_tfidf.*`` files); returns the file names."""
        code = TEACHER_ENCODERS.index(self.encoder)
        arrays = {"params": np.asarray([self.n_neighbours, self.size, code], dtype=np.int64)}
        names = ["base_Y", "item_bags", "label_items"]
        if self.tfidf is None:
            arrays.update({"word_vectors": self.word_vectors.astype(np.float16),
                           "base_vectors": self.base_vectors.astype(np.float16)})
        else:
            names.append("base_vectors")
        for name in names:
            m = sp.csr_matrix(getattr(self, name))
            data = m.data.astype(np.float16) if name == "base_vectors" else m.data
            arrays.update({f"{name}_data": data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                           f"{name}_shape": np.asarray(m.shape, dtype=np.int64)})
        files = [save_arrays(path, TEACHER_FILE, arrays)]
        if self.tfidf is not None:
            files += self.tfidf.save(path, prefix=TFIDF_PREFIX)
        return files

    @classmethod
    def load(cls, path: Path, n_labels: int, n_vocab: int) -> TeacherKnowledge:
        a = load_arrays(path, TEACHER_FILE)

        def csr(name: str) -> sp.csr_matrix:
            return sp.csr_matrix((a[f"{name}_data"].astype(np.float32), a[f"{name}_indices"],
                                  a[f"{name}_indptr"]), shape=tuple(a[f"{name}_shape"]))

        try:
            params = [int(v) for v in a["params"]]
            k, size = params[:2]
            encoder = TEACHER_ENCODERS[params[2]] if len(params) > 2 else "mean_w2v"  # older folders: Eq. 1
            mats = {name: csr(name) for name in ("base_Y", "item_bags", "label_items")}
            if encoder == "tfidf":
                from xmtc.features import TfidfFeaturizer

                words, base = None, csr("base_vectors")
                tfidf = TfidfFeaturizer.load(path, prefix=TFIDF_PREFIX)
            else:
                words, base = a["word_vectors"].astype(np.float32), a["base_vectors"].astype(np.float32)
                tfidf = None
            t = cls(word_vectors=words, base_vectors=base, n_neighbours=k, size=size, tfidf=tfidf, **mats)
        except (KeyError, ValueError, IndexError) as e:
            raise ModelLoadError(f"{path / TEACHER_FILE}: incomplete teacher knowledge ({e})") from None
        checks = [(t.base_Y.shape[1], n_labels, "base_Y"),
                  (t.label_items.shape[0], n_labels, "label_items"),
                  (t.item_bags.shape[1], n_vocab, "item_bags"),
                  (t.base_vectors.shape[0], t.base_Y.shape[0], "base_vectors"),
                  (t.label_items.shape[1], t.item_bags.shape[0], "label_items columns")]
        if tfidf is None:
            checks.append((t.word_vectors.shape[0], n_vocab, "word vectors"))
        else:
            checks.append((t.base_vectors.shape[1], tfidf.n_features, "base_vectors columns (TF-IDF terms)"))
        for got, want, what in checks:
            if got != want:
                raise ModelLoadError(f"{path / TEACHER_FILE}: {what} has {got} rows/columns, expected {want}")
        return t


@dataclass
class TeacherBatch:
    """Teacher items of one batch: the distinct items' token bags (for ``embedding_bag``) and per-document
    slots into them (``-1`` = padding)."""

    tokens: torch.Tensor  # (nnz,) int64 token ids
    offsets: torch.Tensor  # (U,) int64 start of each distinct item's bag in ``tokens``
    weights: torch.Tensor  # (nnz,) float32 token weights (each bag sums to 1)
    slots: torch.Tensor  # (batch, K) int64 index into the U distinct items, -1 padded
