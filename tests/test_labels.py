"""LabelIndex, Hierarchy (data/labels.py) and Dataset, validation_split (data/split.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmtc.data import Dataset, Hierarchy, LabelIndex, validation_split
from xmtc.errors import ConfigError, DataError


def test_build_sorts_naturally_and_deterministically():
    index = LabelIndex.build([["b", "10"], ["2", "a"]], extra=["1"])
    assert index.names == ["1", "2", "10", "a", "b"]
    assert LabelIndex.build([["07", "7"]]).names == LabelIndex.build([["7", "07"]]).names == ["07", "7"]
    assert LabelIndex.build([["²", "3"]]).names == ["3", "²"]  # unicode digits are not parsed as numbers
    assert index.id("10") == 2 and index.get("zzz") == -1 and "a" in index and "zzz" not in index
    with pytest.raises(KeyError):
        index.id("zzz")


def test_duplicate_names_are_named():
    with pytest.raises(DataError, match="'b' occurs more than once"):
        LabelIndex(["a", "b", "b"])


def test_encode_counts_unseen_and_merges_duplicates():
    index = LabelIndex(["a", "b", "c"])
    Y, unseen, counts = index.encode([["c", "a", "a"], [], ["x", "b", "x", "y"]])
    assert Y.dtype == np.float32 and Y.shape == (3, 3) and Y.has_sorted_indices
    assert Y.toarray().tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert Y.indices.tolist() == [0, 2, 1]
    assert unseen.dtype == np.int32 and unseen.tolist() == [0, 0, 3]
    assert counts == {"x": 2, "y": 1}
    assert index.decode([2, 0]) == ["c", "a"]


def test_json_round_trip_and_bad_files(tmp_path):
    index = LabelIndex(["é", "b", "10"])
    index.to_json(tmp_path / "labels.json")
    assert LabelIndex.from_json(tmp_path / "labels.json").names == ["é", "b", "10"]
    for text in ["not json", '{"names": []}', '{"labels": [1, 2]}', '{"labels": "ab"}']:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(DataError, match="bad.json"):
            LabelIndex.from_json(tmp_path / "bad.json")
    with pytest.raises(DataError, match="missing.json"):
        LabelIndex.from_json(tmp_path / "missing.json")


def test_hierarchy_parent_matrix():
    h = Hierarchy([("a", "p"), ("b", "p"), ("a", "p"), ("a", "a"), ("a", "q"), ("zz", "p")])
    assert len(h) == 6 and h.parents["a"] == ["p", "p", "a", "q"]
    index = LabelIndex(["a", "b", "p"])
    m = h.parent_matrix(index)
    assert m.shape == (3, 3) and m.dtype == np.float32
    assert m.toarray().tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]  # no self loop, duplicates merged
    assert Hierarchy([]).parent_matrix(index).nnz == 0


def make(n: int = 10) -> Dataset:
    index = LabelIndex(["a", "b", "c"])
    Y, unseen, _ = index.encode([["a"] if i % 2 else ["b", "c", "zz"] for i in range(n)])
    return Dataset(Y=Y, label_index=index, texts=[f"doc {i}" for i in range(n)], unseen=unseen, name="t")


def test_dataset_basics_and_subset():
    d = make()
    assert len(d) == 10 and d.n_labels == 3 and d.label_names == ["a", "b", "c"]
    assert d.n_gold().tolist() == [3, 1] * 5
    s = d.subset([3, 0])
    assert s.texts == ["doc 3", "doc 0"] and s.unseen.tolist() == [0, 1] and s.label_index is d.label_index
    mask = np.zeros(10, dtype=bool)
    mask[[1, 2]] = True
    assert d.subset(mask).texts == ["doc 1", "doc 2"]
    empty = d.subset([])
    assert len(empty) == 0 and empty.texts == []


def test_dataset_checks_shapes():
    index = LabelIndex(["a", "b"])
    Y = sp.csr_matrix((2, 2), dtype=np.float32)
    with pytest.raises(DataError, match="texts has 3 rows but Y has 2"):
        Dataset(Y=Y, label_index=index, texts=["a", "b", "c"])
    with pytest.raises(DataError, match="Y has 2 label columns but the label index has 3"):
        Dataset(Y=Y, label_index=LabelIndex(["a", "b", "c"]))
    with pytest.raises(DataError, match="X has 1 rows"):
        Dataset(Y=Y, label_index=index, X=sp.csr_matrix((1, 4)))


def test_validation_split_is_seeded_and_disjoint():
    d = make(100)
    tr, va = validation_split(d, 0.2, seed=1)
    tr2, va2 = validation_split(d, 0.2, seed=1)
    _, va3 = validation_split(d, 0.2, seed=2)
    assert (len(tr), len(va)) == (80, 20) and va.texts == va2.texts and va.texts != va3.texts
    assert not set(tr.texts) & set(va.texts) and (tr.split, va.split) == ("train", "valid")
    assert len(validation_split(d, 0.5, max_docs=7)[1]) == 7
    assert [len(x) for x in validation_split(make(2), 0.9)] == [1, 1]
    with pytest.raises(ConfigError, match="fraction must be in"):
        validation_split(d, 1.5)
    with pytest.raises(DataError, match="at least 2"):
        validation_split(make(1), 0.5)
