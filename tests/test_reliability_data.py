"""Reliability of the readers, model folders, ensembles, progress output and installs (issue 13).

Each test here failed before its fix: the line splitting shared by the training readers and ``predict``, clear
errors for non-UTF-8 / corrupt ``.gz`` / bad sparse headers, complete checksum maps and interrupted saves,
truncated checkpoints, ensembles of unrelated label sets, plain progress lines when stderr is not a terminal.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

import xmtc
from xmtc.cli import _read_inputs, main
from xmtc.data import lines, readers
from xmtc.errors import DataError

CR_BYTES = b"fishing quotas\rcustoms duties\nagricultural aid\n"


@pytest.fixture(scope="module")
def parabel_model(tiny_data, tmp_path_factory) -> Path:
    """A small saved parabel model folder (in process, no subprocess)."""
    from xmtc.models.baselines.parabel import ParabelConfig

    folder = tmp_path_factory.mktemp("parabel") / "model"
    xmtc.create("parabel", ParabelConfig(n_trees=1)).fit(tiny_data[0]).save(folder)
    return folder


def call(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def one_error_line(rc: int, err: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


# --------------------------------------------------------------------------- A. one way to split lines
def test_lone_cr_gives_the_same_rows_to_the_training_reader_and_to_predict(tmp_path, monkeypatch):
    path = tmp_path / "cr.txt"
    path.write_bytes(CR_BYTES)
    train_rows = readers.read_texts(path)
    predict_rows = [text for text, _ in _read_inputs(str(path), "auto")]
    assert len(train_rows) == len(predict_rows) == 2
    assert train_rows == predict_rows == ["fishing quotas\rcustoms duties", "agricultural aid"]
    gz = tmp_path / "cr.txt.gz"
    gz.write_bytes(gzip.compress(CR_BYTES))
    assert readers.read_texts(gz) == [text for text, _ in _read_inputs(str(gz), "text")] == train_rows
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CR_BYTES), encoding="utf-8"))
    assert [text for text, _ in _read_inputs("-", "text")] == train_rows


def test_crlf_and_bom_read_like_lf(tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    assert readers.read_texts(crlf) == ["one", "two"] == [t for t, _ in _read_inputs(str(crlf), "text")]
    assert list(lines.iter_lines(crlf)) == lines.read_lines(crlf) == ["one", "two"]
    assert lines.read_lines(io.StringIO("a\rb\r\nc")) == ["a\rb", "c"]


@pytest.mark.parametrize("content", [b"", b"\n", b"a", b"a\n\n", b"\r\n\r", b"x\r\r\ny", b"\xef\xbb\xbf\n"])
def test_streaming_and_whole_file_readers_agree(tmp_path, content):
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    assert list(lines.iter_lines(path)) == lines.read_lines(path)
    assert list(lines.iter_lines(io.BytesIO(content))) == lines.read_lines(path)


def test_predict_output_has_one_row_per_input_line(capsys, parabel_model, tmp_path):
    path = tmp_path / "cr.txt"
    path.write_bytes(CR_BYTES)
    rc, out, err = call(capsys, "predict", parabel_model, "--input", path, "--k", "1")
    assert rc == 0, err
    assert len(out.splitlines()) == 2


def test_non_utf8_predict_input_names_file_and_line(capsys, parabel_model, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fishing quotas\ncaf\u00e9 subsidies\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: not valid UTF-8 .*column 4, byte offset 18"):
        list(_read_inputs(str(path), "text"))
    line = one_error_line(*call(capsys, "predict", parabel_model, "--input", path)[::2])
    assert f"{path}:2: not valid UTF-8" in line


def test_corrupt_gz_predict_input_names_file_and_line(capsys, parabel_model, tmp_path):
    path = tmp_path / "docs.txt.gz"
    path.write_bytes(gzip.compress(b"fishing quotas\n" * 2000)[:-40])
    with pytest.raises(DataError, match=r"docs\.txt\.gz:\d+: cannot read line \d+ .*truncated or corrupt"):
        list(_read_inputs(str(path), "text"))
    path.write_bytes(b"not gzip at all\n")
    line = one_error_line(*call(capsys, "predict", parabel_model, "--input", path)[::2])
    assert f"{path}:1: cannot read line 1" in line


def test_gzip_data_without_gz_name_says_so(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes(gzip.compress(b"fishing quotas\n"))
    with pytest.raises(DataError, match=r"docs\.txt:1: not valid UTF-8.*gzip-compressed"):
        readers.read_texts(path)


def test_non_utf8_on_stdin_is_an_error(parabel_model):
    proc = subprocess.run([sys.executable, "-m", "xmtc", "predict", str(parabel_model), "--input", "-"],
                          input=b"fishing quotas\nbad \xff byte\n", capture_output=True, env=cli_env(),
                          timeout=300)
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert "error: <stdin>:2: not valid UTF-8" in err
    assert proc.stdout == b""  # nothing predicted on garbled text


def test_bad_sparse_header_names_line_1(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.txt").write_text("3 5\n0 0:1\n")
    with pytest.raises(DataError, match=r"train\.txt:1: expected the XMLRepository sparse header "
                                         r"'n_docs n_features n_labels'.*but line 1 is '3 5'"):
        xmtc.data.load(folder)
    with pytest.raises(DataError, match=r"train\.txt:1: expected the XMLRepository sparse header"):
        xmtc.data.load(folder / "train.txt")


def test_word_vectors_split_lines_the_same_way(tmp_path):
    from xmtc.text import Vocab
    from xmtc.text.embeddings import load_word_vectors_with_stats

    vocab = Vocab.build([["fish", "quota"]], min_count=1)
    path = tmp_path / "vec.txt"
    path.write_bytes(b"fish 1 2\r\nquota 3 4\r\n")
    matrix, stats = load_word_vectors_with_stats(path, vocab)
    assert stats["found"] == 2 and matrix[vocab.index("quota")].tolist() == [3, 4]
    path.write_bytes(b"fish 1 2\nqu\xe9ta 3 4\n")
    with pytest.raises(DataError, match=r"vec\.txt:2: not valid UTF-8.*binary word2vec"):
        load_word_vectors_with_stats(path, vocab)


def test_read_text_of_one_document(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_bytes(b"line one\r\nline\rtwo\n")
    assert lines.read_text(path) == "line one\nline\rtwo"
    with pytest.raises(DataError, match=r"<stdin>:1: not valid UTF-8"):
        lines.read_text(io.TextIOWrapper(io.BytesIO(b"\xff"), encoding="utf-8"), "<stdin>")
