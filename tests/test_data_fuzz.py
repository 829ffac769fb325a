"""Fuzzing every reader: random bytes and malformed lines may only ever raise DataError, nothing else."""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xmtc.data as xd
from xmtc.data import readers
from xmtc.errors import DataError

# XMTC_FUZZ_EXAMPLES=5000 fuzzes harder (the default keeps the file at a few seconds).
FUZZ = settings(
    max_examples=int(os.environ.get("XMTC_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SHARED_FILES = [
    "train.texts.txt",
    "train.labels.txt",
    "test.texts.txt",
    "test.labels.txt",
    "hierarchy.tsv",
    "label_names.tsv",
    "train.texts.txt.gz",
]
GOOD = {
    "train.texts.txt": b"a b\nc d\n",
    "train.labels.txt": b"x\ny z\n",
    "test.texts.txt": b"e\n",
    "test.labels.txt": b"y\n",
}


def only_data_errors(fn, *args, **kwargs):
    """Run ``fn``; a DataError is fine, any other exception fails the test. Returns the result or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except DataError as e:
            assert str(e), "a DataError must carry a message"
            return None


def sparse_lines():
    token = st.text(alphabet="0123456789:,.-+eE x\t", min_size=0, max_size=12)
    return st.lists(st.lists(token, max_size=6).map(" ".join), max_size=6)


@FUZZ
@given(name=st.sampled_from(SHARED_FILES), content=st.binary(max_size=200))
def test_shared_layout_with_one_random_file(name, content):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for fname, data in GOOD.items():
            (folder / fname).write_bytes(data)
        if name.endswith(".gz"):
            (folder / name.removesuffix(".gz")).unlink()
        (folder / name).write_bytes(content)
        out = only_data_errors(xd.load, folder)
        if out is not None:
            train, test = out
            assert train.Y.shape == (len(train.texts), len(train.label_index))
        only_data_errors(xd.find_datasets, folder)


@FUZZ
@given(texts=st.text(max_size=80), labels=st.text(max_size=80))
def test_shared_layout_with_random_text(texts, labels):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "train.texts.txt").write_text(texts, encoding="utf-8", newline="")
        (folder / "train.labels.txt").write_text(labels, encoding="utf-8", newline="")
        out = only_data_errors(xd.load, folder, ("train",))
        if out is not None:
            (train,) = out
            assert all(t.strip() for t in train.texts)
            assert len(train.texts) == train.Y.shape[0]


@FUZZ
@given(header=st.sampled_from(["2 6 4", "3 5 4", "0 0 0", "2 6", "x y z", ""]), lines=sparse_lines())
def test_sparse_malformed_lines(header, lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train.txt"
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        sf = only_data_errors(readers.read_sparse, path)
        if sf is not None:
            assert sf.X.shape[0] == len(sf.label_indptr) - 1 == int(header.split()[0])
            assert sf.label_ids.size == 0 or sf.label_ids.max() < sf.n_labels
            assert sf.X.indices.size == 0 or sf.X.indices.max() < sf.X.shape[1]
        only_data_errors(xd.load, path)
        only_data_errors(xd.load, Path(d))


@FUZZ
@given(content=st.binary(max_size=300), gz=st.booleans())
def test_random_bytes_to_every_reader(content, gz):
    with tempfile.TemporaryDirectory() as d:
        suffix = ".gz" if gz else ""
        for name, reader in [
            ("train.txt", readers.read_sparse),
            ("train.jsonl", readers.read_jsonl),
            ("hierarchy.tsv", readers.read_hierarchy),
            ("label_names.tsv", readers.read_label_names),
            ("x.texts.txt", readers.read_texts),
            ("x.labels.txt", readers.read_label_lines),
            ("Y.trn.npz", readers.read_npz_labels),
        ]:
            path = Path(d) / (name + suffix)
            path.write_bytes(content)
            only_data_errors(reader, path)
            only_data_errors(xd.detect_layout, path)
            if name.endswith((".txt", ".jsonl")):
                only_data_errors(xd.load, path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "labels", "x"]), inner)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            json_values.map(json.dumps),
            st.text(max_size=30),
            st.builds(
                lambda t, ls: json.dumps({"text": t, "labels": ls}),
                st.text(max_size=10),
                st.lists(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()), max_size=3),
            ),
        ),
        max_size=5,
    )
)
def test_jsonl_malformed_lines(lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = only_data_errors(xd.load, Path(d), ("train",))
        if out is not None:
            assert len(out[0]) == len(lines)


@FUZZ
@given(
    data=st.lists(st.integers(-3, 10), max_size=6),
    indices=st.lists(st.integers(-3, 10), max_size=6),
    indptr=st.lists(st.integers(-3, 10), max_size=6),
    shape=st.lists(st.integers(-2, 8), min_size=0, max_size=3),
    fmt=st.sampled_from([b"csr", b"csc", b"coo", b"dia", b"xyz"]),
)
def test_npz_with_inconsistent_arrays(data, indices, indptr, shape, fmt):
    with tempfile.TemporaryDirectory() as d:
        buf = io.BytesIO()
        np.savez(buf, data=np.array(data), indices=np.array(indices), indptr=np.array(indptr),
                 row=np.array(indices), col=np.array(indptr), offsets=np.array(indices),
                 shape=np.array(shape), format=np.array(fmt))  # fmt: skip
        path = Path(d) / "Y.trn.npz"
        path.write_bytes(buf.getvalue())
        only_data_errors(readers.read_npz_labels, path)


def test_truncated_gzip_is_a_data_error(tmp_path):
    blob = gzip.compress(b"one\ntwo\nthree\n" * 100)
    for cut in (1, 5, 11, len(blob) // 2, len(blob) - 1):
        path = tmp_path / "x.texts.txt.gz"
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError, match=r"x\.texts\.txt\.gz:\d+: cannot read line"):  # never a silent cut
            readers.read_texts(path)
