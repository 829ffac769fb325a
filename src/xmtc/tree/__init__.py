"""Label trees: PIFA label features, balanced recursive 2-means and the shallow-and-wide label tree."""

from xmtc.tree.kmeans import balanced_kmeans
from xmtc.tree.label_features import pifa
from xmtc.tree.label_tree import LabelTree

__all__ = ["LabelTree", "balanced_kmeans", "pifa"]
