"""Reading datasets (every common XMTC layout), label indices, hierarchies and synthetic data."""

from xmtc.data.io import (
    LAYOUTS,
    UnseenLabelsWarning,
    bundled_path,
    canonical_split,
    detect_layout,
    find_datasets,
    load,
)
from xmtc.data.labels import Hierarchy, LabelIndex, UnknownGold, unknown_gold_labels
from xmtc.data.split import Dataset, validation_split
from xmtc.data.synthetic import make_synthetic

__all__ = [
    "LAYOUTS",
    "Dataset",
    "Hierarchy",
    "LabelIndex",
    "UnknownGold",
    "UnseenLabelsWarning",
    "bundled_path",
    "canonical_split",
    "detect_layout",
    "find_datasets",
    "load",
    "make_synthetic",
    "unknown_gold_labels",
    "validation_split",
]
