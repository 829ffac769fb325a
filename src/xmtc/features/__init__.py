"""Sparse and neighbour features: TF-IDF (no pickle) and exact batched cosine kNN."""

from xmtc.features.neighbours import knn
from xmtc.features.tfidf import TfidfFeaturizer

__all__ = ["TfidfFeaturizer", "knn"]
