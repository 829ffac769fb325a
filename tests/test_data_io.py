"""xmtc.data.load: every layout on tiny files, bad input, find_datasets, the bundled and the real data."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import xmtc.data as xd
from xmtc.data import LabelIndex, UnseenLabelsWarning
from xmtc.errors import DataError


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def shared(folder: Path, gz: bool = False, valid_name: str | None = None) -> Path:
    z = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / f"train.texts.txt{z}", "the cat sat\na dog ran\ncat and dog\n")
    write(folder / f"train.labels.txt{z}", "cat\ndog\ncat dog\n")
    write(folder / f"test.texts.txt{z}", "a cat\na bird flew\n")
    write(folder / f"test.labels.txt{z}", "cat\nbird dog\n")
    if valid_name:
        write(folder / f"{valid_name}.texts.txt{z}", "dog\n")
        write(folder / f"{valid_name}.labels.txt{z}", "dog\n")
    write(folder / f"hierarchy.tsv{z}", "cat\tanimal\ndog\tanimal\n")
    write(folder / f"label_names.tsv{z}", "id\tlabel\talt_labels\ncat\tA cat\tfeline|kitty\ndog\tA dog\t\n")
    return folder


def load_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenLabelsWarning)
        return xd.load(*args, **kwargs)


@pytest.mark.parametrize("gz", [False, True])
def test_shared_layout(tmp_path, gz):
    folder = shared(tmp_path / "toy", gz=gz)
    assert xd.detect_layout(folder) == "shared"
    with pytest.warns(UnseenLabelsWarning, match=r"toy/test: 1 gold labels .*bird"):
        train, test = xd.load(folder)
    assert train.texts == ["the cat sat", "a dog ran", "cat and dog"]
    assert train.label_names == ["cat", "dog"]
    assert train.label_index is test.label_index
    assert train.Y.toarray().tolist() == [[1, 0], [0, 1], [1, 1]]
    assert train.Y.dtype == np.float32 and train.Y.has_sorted_indices
    assert test.Y.toarray().tolist() == [[1, 0], [0, 1]]
    assert test.unseen.tolist() == [0, 1] and test.unseen_labels == {"bird": 1}
    assert test.n_gold().tolist() == [1, 2]
    assert train.unseen.sum() == 0 and train.X is None
    assert train.hierarchy.edges == [("cat", "animal"), ("dog", "animal")]
    assert train.label_descriptions == {"cat": "A cat", "dog": "A dog"}
    assert (train.name, train.split, test.split) == ("toy", "train", "test")


@pytest.mark.parametrize("valid_name", ["valid", "dev", "val"])
def test_split_aliases(tmp_path, valid_name):
    folder = shared(tmp_path / "d", valid_name=valid_name)
    for names in [("train", "valid"), ("trn", "dev"), ("train", "val")]:
        train, valid = load_quiet(folder, names)
        assert valid.split == "valid" and valid.texts == ["dog"]
    (test,) = load_quiet(folder, ("tst",))
    assert test.split == "test" and len(test) == 2


def test_missing_valid_split_is_clear(tmp_path):
    folder = shared(tmp_path / "d")
    with pytest.raises(DataError, match=r"no split 'valid'.*available: train, test.*validation_split"):
        xd.load(folder, ("train", "valid", "test"))


def test_index_from_train_when_train_not_requested(tmp_path):
    folder = shared(tmp_path / "d")
    (test,) = load_quiet(folder, "test")
    assert test.label_names == ["cat", "dog"] and test.unseen.tolist() == [0, 1]


def test_given_label_index_is_used_for_all_splits(tmp_path):
    folder = shared(tmp_path / "d")
    index = LabelIndex(["bird", "cat"])
    with pytest.warns(UnseenLabelsWarning):
        train, test = xd.load(folder, label_index=index)
    assert train.label_index is index and test.label_index is index
    assert train.unseen.tolist() == [0, 1, 1] and train.unseen_labels == {"dog": 2}
    assert test.Y.toarray().tolist() == [[0, 1], [1, 0]] and test.unseen.tolist() == [0, 1]


def test_max_docs(tmp_path):
    folder = shared(tmp_path / "d")
    train, test = load_quiet(folder, max_docs=1)
    assert train.texts == ["the cat sat"] and len(test) == 1
    assert train.label_names == ["cat"]  # index built from the documents read
    with pytest.raises(DataError, match="max_docs must be positive"):
        xd.load(folder, max_docs=0)


def test_attentionxml_layout(tmp_path):
    write(tmp_path / "train_texts.txt", "w1 w2\nw3\n")
    write(tmp_path / "train_labels.txt", "a b\nc\n")
    write(tmp_path / "test_texts.txt", "w1\n")
    write(tmp_path / "test_labels.txt", "a\n")
    write(tmp_path / "train_texts.npy", b"\x93NUMPY ignored")
    assert xd.detect_layout(tmp_path) == "attentionxml"
    train, test = xd.load(tmp_path)
    assert train.texts == ["w1 w2", "w3"] and train.label_names == ["a", "b", "c"]
    assert test.Y.toarray().tolist() == [[1, 0, 0]]


def test_attentionxml_raw_texts_fallback(tmp_path):
    write(tmp_path / "train_raw_texts.txt", "Raw Text.\n")
    write(tmp_path / "train_labels.txt", "a\n")
    (train,) = xd.load(tmp_path, ("train",))
    assert train.texts == ["Raw Text."]


def test_pecos_text_labels_and_items(tmp_path):
    write(tmp_path / "X.trn.txt", "first doc\nsecond doc\n")
    write(tmp_path / "Y.trn.txt", "0,2\n1\n")
    write(tmp_path / "X.tst.txt", "third doc\n")
    write(tmp_path / "Y.tst.txt", "3\n")
    write(tmp_path / "output-items.txt", "zero\none\ntwo\nthree\n")
    assert xd.detect_layout(tmp_path) == "pecos"
    train, test = xd.load(tmp_path)
    assert train.label_names == ["0", "1", "2", "3"]  # all item ids, not only those used in train
    assert train.Y.toarray().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    assert test.Y.toarray().tolist() == [[0, 0, 0, 1]] and test.unseen.sum() == 0
    assert train.label_descriptions["2"] == "two"


def test_pecos_npz_labels(tmp_path):
    write(tmp_path / "X.trn.txt", "a\nb\nc\n")
    write(tmp_path / "X.tst.txt", "d\n")
    sp.save_npz(tmp_path / "Y.trn.npz", sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0]])))
    sp.save_npz(tmp_path / "Y.tst.npz", sp.csr_matrix(np.array([[0, 0, 0, 1]])))
    train, test = xd.load(tmp_path)
    assert train.n_labels == 4 and train.Y.toarray().tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0]]
    assert test.Y.toarray().tolist() == [[0, 0, 0, 1]]
    write(tmp_path / "Y.tst.npz", b"not a zip file")
    with pytest.raises(DataError, match=r"Y\.tst\.npz: cannot read"):
        xd.load(tmp_path)


SPARSE_TRAIN = "3 5 4\n0,2 0:1.5 3:2\n 1:0.5\n3 4:1e-1 0:2\n"


@pytest.mark.parametrize("prefix", ["", "eurlex_"])
def test_xmlrepo_layout(tmp_path, prefix):
    write(tmp_path / f"{prefix}train.txt", SPARSE_TRAIN)
    write(tmp_path / f"{prefix}test.txt", "1 5 4\n1 2:1\n")
    assert xd.detect_layout(tmp_path) == "xmlrepo"
    train, test = xd.load(tmp_path)
    assert train.texts is None and train.X.dtype == np.float32 and train.X.shape == (3, 5)
    np.testing.assert_allclose(
        train.X.toarray(), [[1.5, 0, 0, 2, 0], [0, 0.5, 0, 0, 0], [2, 0, 0, 0, 0.1]], rtol=1e-6
    )
    assert train.X.has_sorted_indices
    assert train.label_names == ["0", "1", "2", "3"]  # all ids < n_labels, even unused label 1
    assert train.Y.toarray().tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert test.Y.toarray().tolist() == [[0, 1, 0, 0]] and test.X.shape == (1, 5)


def test_direct_file_paths(tmp_path):
    write(tmp_path / "train.txt", SPARSE_TRAIN)
    (train,) = xd.load(tmp_path / "train.txt")
    assert train.split == "train" and train.X.shape == (3, 5)
    write(tmp_path / "mydocs.jsonl", '{"text": "x y", "labels": ["a"]}\n')
    (docs,) = xd.load(tmp_path / "mydocs.jsonl")
    assert docs.split == "mydocs" and docs.texts == ["x y"]
    with pytest.raises(DataError, match="single file must be a .jsonl file"):
        xd.load(write(tmp_path / "notes.csv", "a,b\n"))


def test_jsonl_layout(tmp_path):
    write(
        tmp_path / "train.jsonl",
        '{"text": "one", "labels": ["x", 7]}\n{"text": "two", "labels": [], "id": 3}\n',
    )
    write(tmp_path / "test.jsonl.gz", '{"text": "three", "labels": ["7"]}\n')
    assert xd.detect_layout(tmp_path) == "jsonl"
    train, test = xd.load(tmp_path)
    assert train.label_names == ["7", "x"] and train.Y.toarray().tolist() == [[1, 1], [0, 0]]
    assert test.Y.toarray().tolist() == [[1, 0]]


# ----------------------------------------------------------------------------------------------- bad input


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        xd.load(tmp_path / "nope")
    write(tmp_path / "readme.md", "hi")
    with pytest.raises(
        DataError, match=r"no dataset found; looked for shared .*AttentionXML.*pecos.*XMLRepo.*JSONL"
    ):
        xd.load(tmp_path)


def test_partial_layout_names_missing_file(tmp_path):
    write(tmp_path / "train.texts.txt", "a\n")
    with pytest.raises(DataError, match=r"found train\.texts\.txt but no train\.labels\.txt"):
        xd.detect_layout(tmp_path)


def test_line_count_mismatch(tmp_path):
    shared(tmp_path)
    write(tmp_path / "train.labels.txt", "cat\ndog\n")
    with pytest.raises(DataError, match=r"mismatch.*3 documents.*2 label lines.*train\.texts\.txt:3"):
        xd.load(tmp_path)


@pytest.mark.parametrize("blank", ["", "   \t"])
def test_empty_document(tmp_path, blank):
    shared(tmp_path)
    write(tmp_path / "train.texts.txt", f"the cat\n{blank}\ncat and dog\n")
    with pytest.raises(DataError, match=r"train\.texts\.txt:2: empty document"):
        xd.load(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_non_utf8(tmp_path, gz):
    shared(tmp_path, gz=gz)
    z = ".gz" if gz else ""
    write(tmp_path / f"train.texts.txt{z}", b"ok\nfine\nbad \xff\xfe byte\n")
    with pytest.raises(DataError, match=r"train\.texts\.txt(\.gz)?:3: not valid UTF-8"):
        xd.load(tmp_path)


def test_corrupt_gzip(tmp_path):
    shared(tmp_path, gz=True)
    (tmp_path / "train.texts.txt.gz").write_bytes(gzip.compress(b"a\nb\nc\n")[:-12])
    with pytest.raises(DataError, match=r"train\.texts\.txt\.gz:2: cannot read line 2 .*truncated or corrupt"):
        xd.load(tmp_path)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("3 5 4\n0 0:1\n1 2:x\n2 1:1\n", r"train\.txt:3: bad feature '2:x'"),
        ("3 5 4\n0 0:1\n1 2-1\n2 1:1\n", r"train\.txt:3: bad feature '2-1'"),
        ("3 5 4\n0 0:1\n1 0:1\n", r"header says 3 documents but 2 lines"),
        ("2 5 4\n0 0:1\n1 5:1\n", r"train\.txt:3: feature id 5 is out of range.*n_features = 5"),
        ("2 5 4\n0 0:1\n1,4 1:1\n", r"train\.txt:3: label id 4 is out of range.*n_labels = 4"),
        ("2 5 4\n0 0:1\n1;2 1:1\n", r"train\.txt:3: bad label list '1;2'"),
        ("2 5 4\n0 0:1\n1 1:1e999\n", r"train\.txt:3: feature value out of float32 range"),
    ],
)
def test_malformed_sparse(tmp_path, body, pattern):
    with pytest.raises(DataError, match=pattern):
        xd.load(write(tmp_path / "train.txt", body))


def test_bad_sparse_header_in_folder(tmp_path):
    write(tmp_path / "train.txt", "3 5\n0 0:1\n")  # named like a sparse file: its line 1 is named
    with pytest.raises(DataError, match=r"train\.txt:1: expected the XMLRepository sparse header .*'3 5'"):
        xd.load(tmp_path)


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"text": "a", "labels": ["x"]', r"train\.jsonl:2: invalid JSON"),
        ('["a", "b"]', r"train\.jsonl:2: expected a JSON object"),
        ('{"labels": ["x"]}', r"train\.jsonl:2: 'text' must be a string, but is missing"),
        ('{"text": "  ", "labels": ["x"]}', r"train\.jsonl:2: empty document"),
        ('{"text": "a", "labels": "x"}', r"train\.jsonl:2: 'labels' must be a list"),
        ('{"text": "a", "labels": [1.5]}', r"train\.jsonl:2: each label must be a string or an integer"),
        ('{"text": "a", "labels": ["two words"]}', r"train\.jsonl:2: label 'two words'"),
        ("", r"train\.jsonl:2: empty line"),
    ],
)
def test_malformed_jsonl(tmp_path, line, pattern):
    write(tmp_path / "train.jsonl", '{"text": "ok", "labels": ["x"]}\n' + line + "\n")
    with pytest.raises(DataError, match=pattern):
        xd.load(tmp_path, ("train",))


def test_malformed_hierarchy_and_label_names(tmp_path):
    shared(tmp_path)
    write(tmp_path / "hierarchy.tsv", "cat\tanimal\ndog animal\n")
    with pytest.raises(DataError, match=r"hierarchy\.tsv:2: expected 'child<TAB>parent'"):
        xd.load(tmp_path)
    write(tmp_path / "hierarchy.tsv", "cat\tanimal\n")
    write(tmp_path / "label_names.tsv", "id\tlabel\ncat\n")
    with pytest.raises(DataError, match=r"label_names\.tsv:2: expected 'id<TAB>name"):
        xd.load(tmp_path)


# --------------------------------------------------------------------------------- discovery and bundled


def test_find_datasets(tmp_path):
    shared(tmp_path / "alpha", valid_name="dev")
    (tmp_path / "group" / "beta").mkdir(parents=True)
    write(tmp_path / "group" / "beta" / "eurlex_train.txt", SPARSE_TRAIN)
    (tmp_path / "gamma").mkdir()
    write(tmp_path / "gamma" / "train.labels.txt.gz", "a\n")
    (tmp_path / "empty").mkdir()
    found = {d["name"]: d for d in xd.find_datasets(tmp_path)}
    assert set(found) == {"alpha", "beta", "gamma"}
    assert found["alpha"]["layout"] == "shared"
    assert found["alpha"]["splits"] == {"train": 3, "valid": 1, "test": 2}
    assert found["beta"]["layout"] == "xmlrepo" and found["beta"]["splits"] == {"train": 3}
    assert found["gamma"]["layout"] is None and "no train.texts.txt" in found["gamma"]["error"]
    with pytest.raises(DataError, match="not a directory"):
        xd.find_datasets(tmp_path / "missing")


def test_bundled_dataset():
    path = xd.bundled_path()
    assert (path / "README.md").is_file()
    assert sum(p.stat().st_size for p in path.glob("*.gz")) < 3_000_000
    with pytest.warns(UnseenLabelsWarning):
        train, test = xd.load(path)
    assert (len(train), len(test)) == (3000, 600)
    assert max(len(t.split()) for t in train.texts) <= 150
    assert train.label_index is test.label_index and train.Y.shape[1] == len(train.label_index)
    assert np.all(np.diff(train.Y.indptr) > 0)  # every train document has a label in the index
    assert test.unseen.sum() > 0 and train.unseen.sum() == 0
    assert len(train.hierarchy) > 0 and all(lab in train.label_descriptions for lab in train.label_names)
    with pytest.raises(DataError, match="no bundled dataset 'nope'"):
        xd.bundled_path("nope")


@pytest.fixture
def eurlex57k(shared_data) -> Path:
    root = shared_data / "eurlex57k"
    if not (root / "train.texts.txt.gz").is_file():
        pytest.skip(f"{root} is absent")
    return root


def test_eurlex57k_counts(eurlex57k):
    with pytest.warns(UnseenLabelsWarning):
        train, valid, test = xd.load(eurlex57k, ("train", "dev", "test"))
    assert (len(train), len(valid), len(test)) == (45_000, 6_000, 6_000)
    assert len(train.label_index) == 4108  # labels used in train (README of the data)
    assert len(test.unseen_labels) == 85 and len(valid.unseen_labels) == 89
    assert len(train.hierarchy) == 7253 and len(train.label_descriptions) == 7201
    found = {d["name"]: d for d in xd.find_datasets(eurlex57k.parent)}
    assert found["eurlex57k"]["splits"] == {"train": 45_000, "valid": 6_000, "test": 6_000}


def test_json_roundtrip_of_loaded_index(tmp_path):
    folder = shared(tmp_path / "d")
    train, _ = load_quiet(folder)
    train.label_index.to_json(tmp_path / "labels.json")
    again = LabelIndex.from_json(tmp_path / "labels.json")
    (test,) = load_quiet(folder, ("test",), label_index=again)
    assert test.label_names == train.label_names and json.loads((tmp_path / "labels.json").read_text())
