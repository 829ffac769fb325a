"""Reading datasets (every common XMTC layout), label indices, hierarchies and synthetic data."""

from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.data.split import Dataset, validation_split

__all__ = ["Dataset", "Hierarchy", "LabelIndex", "validation_split"]
