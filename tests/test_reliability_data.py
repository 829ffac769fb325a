"""Reliability of the readers, model folders, ensembles, progress output and installs (issue 13).

Each test here failed before its fix: the line splitting shared by the training readers and ``predict``, clear
errors for non-UTF-8 / corrupt ``.gz`` / bad sparse headers, complete checksum maps and interrupted saves,
truncated checkpoints, ensembles of unrelated label sets, plain progress lines when stderr is not a terminal.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

import xmtc
from xmtc.cli import main
from xmtc.cli_predict import _read_inputs
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


# --------------------------------------------------------------------------- B. model folders, checkpoints
def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda m: [m], r"meta\.json: must be a JSON object .* but is a list"),
        (lambda m: {**m, "sha256": None}, r"'sha256' must map every file .* but is null"),
        (lambda m: {**m, "sha256": {}}, r"'sha256' must map every file .* but is \{\}"),
        (lambda m: {k: v for k, v in m.items() if k != "sha256"}, r"'sha256' must map every file .*missing"),
        (lambda m: {**m, "sha256": {k: v for k, v in m["sha256"].items() if k != "config.json"}},
         r"files not covered by the checksums in meta\.json: config\.json"),
        (lambda m: {**m, "sha256": {**m["sha256"], "config.json": 7}}, r"not a SHA-256 hex digest"),
        (lambda m: {**m, "sha256": {**m["sha256"], "../x": "0" * 64}}, r"not a file inside the model folder"),
    ],
)
def test_meta_json_without_a_complete_checksum_map_is_refused(parabel_model, tmp_path, change, pattern):
    from xmtc.errors import ModelLoadError

    folder = _copy(parabel_model, tmp_path)
    (folder / "meta.json").write_text(json.dumps(change(_meta(folder))))
    with pytest.raises(ModelLoadError, match=pattern):
        xmtc.load(folder)


def test_a_file_not_covered_by_the_checksums_is_refused(parabel_model, tmp_path):
    from xmtc.errors import ModelLoadError

    folder = _copy(parabel_model, tmp_path)
    tree = next(f for f in _meta(folder)["sha256"] if f.endswith(".cbor"))
    (folder / tree).with_name("tree99.cbor").write_bytes((folder / tree).read_bytes())  # omikuji loads it
    with pytest.raises(ModelLoadError, match=r"files not covered by the checksums in meta\.json: .*tree99\.cbor"):
        xmtc.load(folder)


def test_meta_json_list_is_a_one_line_cli_error(capsys, parabel_model, tmp_path):
    folder = _copy(parabel_model, tmp_path)
    (folder / "meta.json").write_text("[]")
    docs = tmp_path / "docs.txt"
    docs.write_text("fishing quotas\n")
    line = one_error_line(*call(capsys, "predict", folder, "--input", docs)[::2])
    assert "must be a JSON object" in line


class Killed(BaseException):
    """Stands for SIGKILL in the middle of a save (nothing after it runs)."""


def test_a_killed_resave_is_reported_as_incompletely_written(parabel_model, tmp_path, monkeypatch):
    from xmtc.errors import ModelLoadError
    from xmtc.models.baselines.parabel import ParabelModel

    model = xmtc.load(parabel_model)
    folder = model.save(tmp_path / "m")
    real = ParabelModel._save_state

    def killed_half_way(self, path):
        files = real(self, path)
        (path / files[0]).write_bytes(b"half")  # one state file rewritten, meta.json not yet
        raise Killed

    monkeypatch.setattr(ParabelModel, "_save_state", killed_half_way)
    with pytest.raises(Killed):
        model.save(folder)
    monkeypatch.setattr(ParabelModel, "_save_state", real)
    with pytest.raises(ModelLoadError, match=r"incompletely written \(a save was interrupted\?\); re-save it or "
                                             r"re-run training with --resume") as e:
        xmtc.load(folder)
    assert "tampered" not in str(e.value)
    model.save(folder)  # re-saving repairs it
    assert not (folder / ".saving").exists()
    assert xmtc.load(folder).label_index_.names == model.label_index_.names


def test_a_killed_first_save_is_reported_as_incompletely_written(parabel_model, tmp_path, monkeypatch):
    from xmtc.errors import ModelLoadError
    from xmtc.models.baselines.parabel import ParabelModel

    model = xmtc.load(parabel_model)

    def killed(self, path):
        raise Killed

    monkeypatch.setattr(ParabelModel, "_save_state", killed)
    with pytest.raises(Killed):
        model.save(tmp_path / "m")
    with pytest.raises(ModelLoadError, match=r"incompletely written.*no meta\.json"):
        xmtc.load(tmp_path / "m")


def test_a_resave_removes_files_of_the_earlier_save(parabel_model, tmp_path):
    folder = _copy(parabel_model, tmp_path)
    meta = _meta(folder)
    (folder / "old_state.npz").write_bytes(b"from an earlier save")
    meta["sha256"]["old_state.npz"] = hashlib.sha256(b"from an earlier save").hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    model = xmtc.load(folder)
    model.save(folder)
    assert not (folder / "old_state.npz").exists()
    assert "old_state.npz" not in _meta(folder)["sha256"]
    xmtc.load(folder)


def test_missing_file_says_incomplete_not_tampered(parabel_model, tmp_path):
    from xmtc.errors import ModelLoadError

    folder = _copy(parabel_model, tmp_path)
    (folder / "label_index.json").unlink()
    with pytest.raises(ModelLoadError, match=r"incompletely written.*label_index\.json listed in meta\.json is "
                                             r"missing"):
        xmtc.load(folder)


@pytest.mark.parametrize("cut", [0, 10, 200, -40])
def test_truncated_checkpoint_is_one_clear_error(tmp_path, cut):
    import torch
    from torch import nn

    from xmtc.errors import XMTCError
    from xmtc.train import TrainConfig, train_loop

    X, Y = torch.randn(16, 4), (torch.randn(16, 2) > 0).float()
    cfg = TrainConfig.from_dict({"seed": 1, "epochs": 2, "batch_size": 8, "lr": 0.05, "progress": False,
                                 "device": "cpu", "patience": 0})

    def run(resume: bool):
        torch.manual_seed(0)
        module = nn.Linear(4, 2)
        return train_loop(module, cfg=cfg, batches=lambda e: [range(0, 8), range(8, 16)],
                          loss=lambda m, rows: nn.functional.binary_cross_entropy_with_logits(
                              m(X[list(rows)]), Y[list(rows)]),
                          run_dir=tmp_path, resume=resume)

    run(False)
    ckpt = tmp_path / "checkpoints" / "model.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(XMTCError, match=r"model\.pt: cannot resume from this checkpoint: .*(truncated or corrupt|"
                                        r"corrupt).*delete it") as e:
        run(True)
    assert "\n" not in str(e.value)


def test_checkpoint_of_something_else_is_refused(tmp_path):
    import torch

    from xmtc.errors import XMTCError
    from xmtc.train.checkpoint import load_checkpoint

    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(XMTCError, match=r"x\.pt: .*not a checkpoint of the xmtc training loop"):
        load_checkpoint(tmp_path / "x.pt")


# --------------------------------------------------------------------------- C. ensembles, unknown gold labels
def _relabelled(data, names):
    from xmtc.data import Dataset, LabelIndex

    return Dataset(Y=data.Y, label_index=LabelIndex(names), texts=data.texts, name="other")


def test_ensemble_of_disjoint_label_sets_is_refused(tiny_data, parabel_model, tmp_path):
    from xmtc.errors import XMTCError
    from xmtc.models.baselines.parabel import ParabelConfig
    from xmtc.models.ensemble import EnsembleConfig

    train = tiny_data[0]
    emo = tmp_path / "emo"
    xmtc.create("parabel", ParabelConfig(n_trees=1)).fit(
        _relabelled(train, [f"emotion{i}" for i in range(train.n_labels)])).save(emo)
    cfg = EnsembleConfig(members=[str(parabel_model), str(emo)])
    with pytest.raises(XMTCError, match=rf"member 1 \({emo}\) shares 0 of its 8 labels \(0%\) with member 0 "
                                        r"\(.*\), which has 8 labels .*allow_disjoint_labels=true"):
        xmtc.create("ensemble", cfg).fit()
    union = xmtc.create("ensemble", cfg.replace(allow_disjoint_labels=True)).fit()
    assert len(union.label_index_) == 16
    union.save(tmp_path / "ens")
    assert xmtc.load(tmp_path / "ens").config.allow_disjoint_labels is True


def test_ensemble_of_partly_overlapping_members(tiny_data, parabel_model, tmp_path):
    from xmtc.errors import XMTCError
    from xmtc.models.baselines.parabel import ParabelConfig
    from xmtc.models.ensemble import EnsembleConfig, check_label_overlap

    names = tiny_data[0].label_names
    half = names[:4] + [f"x{i}" for i in range(4)]  # shares 4 of 8 both ways: accepted (50%)
    folder = tmp_path / "half"
    xmtc.create("parabel", ParabelConfig(n_trees=1)).fit(_relabelled(tiny_data[0], half)).save(folder)
    xmtc.create("ensemble", EnsembleConfig(members=[str(parabel_model), str(folder)])).fit()
    check_label_overlap([names, names[:4] + ["extra"]])  # 4 of 5 own, 4 of 8 of member 0
    with pytest.raises(XMTCError, match=r"member 1 shares 3 of its 3 labels \(100%\) with member 0, which has 8 "
                                        r"labels \(38% of them shared\)"):
        check_label_overlap([names, names[:3]])


def test_unknown_gold_labels_share(tiny_data, tmp_path):
    import warnings

    from conftest import UNSEEN_LABEL, write_tiny_dataset

    from xmtc.data import LabelIndex, unknown_gold_labels

    train, test = tiny_data
    assert unknown_gold_labels(test).share == 0.0
    other = LabelIndex([f"emotion{i}" for i in range(28)])
    all_unknown = unknown_gold_labels(test, other)
    assert all_unknown.share == 1.0 and all_unknown.docs_all_unknown == len(test)
    assert "of the evaluation data are unknown to the model's label index" in all_unknown.message()
    lists = unknown_gold_labels([["a", "b"], ["c"], []], LabelIndex(["a"]))
    assert (lists.unknown, lists.total, lists.docs, lists.docs_all_unknown) == (2, 3, 2, 1)
    assert lists.examples == ("b", "c")
    folder = write_tiny_dataset(tmp_path / "d")  # its first test document has one label unseen in train
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (own,) = xmtc.data.load(folder, ("test",))
        (loaded,) = xmtc.data.load(folder, ("test",), label_index=other)  # as evaluate loads it
    got = unknown_gold_labels(own)
    assert got.unknown == 1 and got.share == pytest.approx(1 / (own.Y.nnz + 1)) and got.examples == (UNSEEN_LABEL,)
    knows_it = LabelIndex([*own.label_names, UNSEEN_LABEL])
    assert unknown_gold_labels(own, knows_it).unknown == 0
    got = unknown_gold_labels(loaded)
    assert got.share == 1.0 and got.unknown == got.total == own.Y.nnz + 1


# --------------------------------------------------------------------------- D. progress output off a terminal
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_training_progress_off_a_terminal_is_one_plain_line_per_epoch(capsys, monkeypatch, tmp_path):
    import torch
    from torch import nn

    from xmtc.train import TrainConfig, train_loop

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    X, Y = torch.randn(64, 4), (torch.randn(64, 2) > 0).float()
    cfg = TrainConfig.from_dict({"seed": 1, "epochs": 3, "batch_size": 2, "lr": 0.05, "progress": True,
                                 "device": "cpu", "patience": 0})
    train_loop(nn.Linear(4, 2), cfg=cfg, batches=lambda e: [range(i, i + 2) for i in range(0, 64, 2)],
               loss=lambda m, rows: nn.functional.binary_cross_entropy_with_logits(m(X[list(rows)]),
                                                                                   Y[list(rows)]))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 6, err  # per epoch: the bar's final plain line, then the epoch summary
    for epoch in range(1, 4):
        done, summary = lines[2 * epoch - 2], lines[2 * epoch - 1]
        assert done.startswith(f"model epoch {epoch}/3: done 32/32 batch (100%) in "), done
        assert "loss=" in done
        assert summary.startswith(f"model epoch {epoch}/3: train loss "), summary


def test_plain_progress_every_interval_and_at_the_end():
    from xmtc.progress import PlainProgress

    clock, out = FakeClock(), io.StringIO()
    bar = PlainProgress(range(100), desc="level-1 epoch 2/5", interval=30, stream=out, unit="batch", clock=clock)
    for i in bar:
        clock.now += 1.0
        if i == 50:
            bar.set_postfix(loss="0.1234")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines  # at 30, 60, 90 s and the end
    assert lines[0] == "level-1 epoch 2/5: 30/100 batch (30%) in 30s, 1 batch/s"
    assert lines[-1] == "level-1 epoch 2/5: done 100/100 batch (100%) in 1m40s, 1 batch/s, loss=0.1234"
    out2 = io.StringIO()
    for i in PlainProgress(range(10), desc="x", stream=out2, clock=clock):
        if i == 3:
            break
    assert out2.getvalue() == "x: stopped 3/10 it (30%) in 0s\n"


def test_progress_is_tqdm_on_a_terminal_only(monkeypatch):
    from xmtc.progress import PlainProgress, progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert type(progress([1], desc="d", stream=Tty())).__module__.startswith("tqdm")
    assert isinstance(progress([1], desc="d", stream=io.StringIO()), PlainProgress)
    items = [1, 2]
    assert progress(items, enabled=False) is items
    monkeypatch.setenv("TQDM_DISABLE", "1")
    silent = io.StringIO()
    assert list(progress(items, stream=silent)) == items and silent.getvalue() == ""


def test_carriage_return_filter_keeps_final_states():
    from xmtc.progress import CarriageReturnFilter

    out: list[bytes] = []
    clock = FakeClock()
    f = CarriageReturnFilter(out.append, interval=30, clock=clock, line_start=re.compile(rb"\d\d:\d\d "))
    for i in range(1, 161):
        f.feed(f"\rExamples {i} / 160 [{'=' * (i // 10)}>] {100 * i / 160:.2f} % ".encode())
    f.feed(b"12:00 log line\n")  # written right after the bar, without a line end of its own
    for i in range(1, 9):
        clock.now += 10.0
        f.feed(f"\rLabels {i} / 8 [==>] ".encode())
    f.feed(b"\r8 / 16 [==>] 50.00 % \r16 / 16 [=====] 100.00 % ")
    f.finish()
    assert out == [b"Examples 160 / 160 [================>] 100.00 %\n", b"12:00 log line\n",
                   b"Labels 3 / 8 [==>]\n", b"Labels 6 / 8 [==>]\n", b"Labels 8 / 8 [==>]\n",
                   b"16 / 16 [=====] 100.00 %\n"]


def test_omikuji_progress_off_a_terminal_is_plain_lines(tiny_data, capfd):
    from xmtc.models.baselines.parabel import ParabelConfig

    xmtc.create("parabel", ParabelConfig(n_trees=1, verbose=True)).fit(tiny_data[0])
    out, err = capfd.readouterr()
    assert "\r" not in err
    assert "Examples 160 / 160" in err and "100.00 %" in err
    assert len(err) < 3000, err  # was ~7 kB of \r updates on one line for 160 documents
    assert "omikuji" not in out  # its log lines go to stderr, not into predict's JSONL on stdout


# --------------------------------------------------------------------------- E. installs
def _check_imports():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / ".ci" / "check_imports.py"
    spec = importlib.util.spec_from_file_location("check_imports", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_check_tells_broken_from_missing_modules(tmp_path, monkeypatch):
    ci = _check_imports()
    (tmp_path / "abi_broken_mod.py").write_text("raise ImportError('pyarrow requires NumPy 2.0 or newer')\n")
    (tmp_path / "dep_missing_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    kind, detail = ci.try_import("abi_broken_mod")
    assert kind == "failed" and "NumPy 2.0" in detail
    assert ci.try_import("dep_missing_mod")[0] == "failed"  # installed, but its own dependency is missing
    assert ci.try_import("no_such_module_xyz")[0] == "missing"  # optional and not installed
    assert ci.try_import("json") is None
    assert "xmtc.data.lines" in ci.xmtc_modules() and "xmtc.progress" in ci.xmtc_modules()
    assert {"torch", "omikuji"} <= {m.split(".")[0] for m in ci.source_imports()}


def test_dev_extra_has_no_benchmark_peers():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = {re.split(r"[<>=!\[; ]", r)[0].lower() for r in extras["dev"]}
    assert not names & {"libpecos", "napkinxc"}  # libpecos pins numpy<2, pyarrow needs numpy>=2
    assert {"libpecos", "napkinxc"} <= {re.split(r"[<>=!\[; ]", r)[0].lower() for r in extras["bench"]}
    commands = [line.strip() for line in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith(("#", " "))]
    steps = ["pip install torch==2.13.0", "pip install -e '.[dev]'", "python .ci/check_imports.py", "pip check",
             'python -m pytest -m "not slow" -q']
    at = [next(i for i, c in enumerate(commands) if c.startswith(step)) for step in steps]
    assert at == sorted(at), commands
