"""Reliability of the command line (issue 13): nothing is lost or misaligned, every user error is one line.

Each test failed before its fix: ``predict --output`` that destroyed the input or an existing output,
tracebacks on bad ``--set`` values / an ``--out`` file / ``--resume`` on changed data / non-UTF-8 ``--text``,
silent all-zero metrics on data with unknown labels, misleading notes, ``--set a=1 b=2``, blank input lines,
``run.json`` without the fields a preset filled, and ``ensemble --allow-label-union``.
The server's cases are in test_serve.py, the readers' in test_reliability_data.py.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLIResult, assert_user_error, cli_env, make_tiny_corpus, run_cli, write_split, write_tiny_dataset

from xmtc.cli import main


def call(capsys, *args) -> CLIResult:
    """``xmtc ARGS`` in process (fast); exceptions other than SystemExit propagate (a traceback = a failure)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return CLIResult(int(e.value.code or 0), out.out, out.err, tuple(map(str, args)))


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory) -> Path:
    """A finished parabel run on the tiny dataset (labels lab0..lab7)."""
    out = tmp_path_factory.mktemp("rel") / "run"
    res = run_cli("train", "--model", "parabel", "--data", tiny_dir, "--out", out, "--set", "n_trees=1", "--no-test")
    assert res.returncode == 0, str(res)
    return out


@pytest.fixture(scope="module")
def other_labels_dir(tmp_path_factory) -> Path:
    """The keyword task with other label names (emo0..emo7): a dataset of another task for the tiny models."""
    root = tmp_path_factory.mktemp("data") / "other"
    root.mkdir()
    for split, n, seed in (("train", 120, 3), ("test", 30, 4)):
        texts, labels = make_tiny_corpus(n, seed)
        write_split(root, split, texts, [[x.replace("lab", "emo") for x in ls] for ls in labels])
    return root


def write_sparse_dataset(root: Path) -> Path:
    """An XMLRepository sparse dataset (features only, no texts) with labels 0..7."""
    root.mkdir(parents=True)
    for split, n in (("train", 40), ("test", 12)):
        rows = [f"{i % 8},{(i + 3) % 8} {i % 20}:0.5 {(i * 7) % 20}:1.0" if i % 20 != (i * 7) % 20
                else f"{i % 8} {i % 20}:1.0" for i in range(n)]
        (root / f"{split}.txt").write_text(f"{n} 20 8\n" + "\n".join(rows) + "\n")
    return root


def docs_file(tmp_path: Path, name: str = "docs.txt", n: int = 3) -> Path:
    texts, _ = make_tiny_corpus(n, seed=11)
    path = tmp_path / name
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------- failure 2: predict --output destroys data
@pytest.mark.parametrize("how", ["same path", "relative path", "symlink", "hard link"])
def test_predict_refuses_output_that_is_the_input(capsys, run, tmp_path, monkeypatch, how):
    docs = docs_file(tmp_path)
    before = docs.read_bytes()
    if how == "same path":
        output = docs
    elif how == "relative path":
        monkeypatch.chdir(tmp_path)
        output = Path(".") / "sub" / ".." / docs.name
        (tmp_path / "sub").mkdir()
    elif how == "symlink":
        output = tmp_path / "link.txt"
        output.symlink_to(docs)
    else:
        output = tmp_path / "hard.txt"
        os.link(docs, output)
    res = call(capsys, "predict", run, "--input", docs, "--output", output)
    assert_user_error(res, "is the input file", "name another output file")
    assert docs.read_bytes() == before  # was: emptied, "wrote 0 predictions", exit 0


def test_predict_error_on_line_2_leaves_an_existing_output_intact(capsys, run, tmp_path):
    out = tmp_path / "pred.jsonl"
    out.write_text("precious earlier predictions\n")
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    res = call(capsys, "predict", run, "--input", bad, "--output", out)
    assert_user_error(res, f"{bad}:2:")
    assert out.read_text() == "precious earlier predictions\n"  # was: truncated before line 2 was read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "pred.jsonl"]  # no temporary file left


def test_predict_output_replaces_the_file_keeping_mode_and_symlink(capsys, run, tmp_path):
    docs = docs_file(tmp_path, n=4)
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "pred.jsonl"
    link.symlink_to(target)
    res = call(capsys, "predict", run, "--input", docs, "--output", link, "--k", "2")
    assert res.returncode == 0, str(res)
    assert link.is_symlink() and [len(json.loads(x)["labels"]) for x in target.read_text().splitlines()] == [2] * 4
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "wrote 4 predictions" in res.stderr


@pytest.mark.parametrize(("output", "fragment"), [("{tmp}", "is a folder"), ("{tmp}/no/x.jsonl", "does not exist")])
def test_predict_output_in_a_missing_folder_or_a_folder(capsys, run, tmp_path, output, fragment):
    res = call(capsys, "predict", run, "--input", docs_file(tmp_path), "--output", output.format(tmp=tmp_path))
    assert_user_error(res, fragment)


# ------------------------------------------------------------------- predict: row i of the output is line i
def test_blank_lines_are_predicted_and_counted(capsys, run, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("the of lab\n\nsecond doc\n   \n")
    res = call(capsys, "predict", run, "--input", path, "--k", "1")
    assert res.returncode == 0, str(res)  # was: error "docs.txt:2: empty document", nothing predicted
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(rows) == 4 and all(len(r["labels"]) == 1 for r in rows)
    assert rows[1] == rows[3]  # both empty documents
    assert "note: 2 of 4 input lines are empty (line 2, 4)" in res.stderr


def test_blank_lines_in_jsonl_keep_rows_aligned(capsys, run, tmp_path):
    path = tmp_path / "docs.txt"  # no .jsonl name, a blank first line: the format is detected on line 2
    path.write_text('\n{"id": "a", "text": "the of"}\n{"id": "b", "text": " "}\n')
    res = call(capsys, "predict", run, "--input", path, "--k", "1")
    assert res.returncode == 0, str(res)
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r.get("id") for r in rows] == [None, "a", "b"]  # was: the blank line was skipped (rows shifted)
    assert "note: 2 of 3 input lines are empty (line 1, 3)" in res.stderr


# ------------------------------------------------------------------- --set values: one error line, no traceback
@pytest.mark.parametrize(("model", "assignment", "fragment"), [
    ("xmlcnn", "widths=abc", "widths must be a list (JSON, e.g. [1, 2]), but is 'abc'"),
    ("xmlcnn", 'widths=[2,"x"]', "widths[1] must be a number"),
    ("xmlcnn", "seed=-5", "seed must be in 0..4294967295"),
    ("xmlcnn", "seed=1e30", "seed must be in 0..4294967295"),
    ("xmlcnn", "w2v_epochs=0", "w2v_epochs must be >= 1"),
    ("attentionxml", "level_epochs={}", "level_epochs must be a list"),
    ("attentionxml", "fc=7", "fc must be a list"),
    ("parabel", "seed=-5", "seed must be in 0..4294967295"),
    ("ensemble", "members=x", "members must be a list"),
])
def test_bad_set_values_are_one_error_line(capsys, tmp_path, tiny_dir, model, assignment, fragment):
    res = call(capsys, "train", "--model", model, "--data", tiny_dir, "--out", tmp_path / "r", "--set", assignment)
    assert_user_error(res, fragment)
    assert not (tmp_path / "r").exists()


def test_several_pairs_after_one_set(capsys, tmp_path, tiny_dir):
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir, "--out", tmp_path / "r", "--set",
               "n_trees=1", "max_depth=3", "--no-test", "-s", "beam_size=4", "cluster_k=3")
    assert res.returncode == 0, str(res)  # was: "Got unexpected extra argument(s) (max_depth=3)"
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert (info["config"]["n_trees"], info["config"]["max_depth"]) == (1, 3)
    assert (info["config"]["beam_size"], info["config"]["cluster_k"]) == (4, 3)


def test_a_stray_word_says_how_to_set_fields(capsys, tmp_path, tiny_dir):
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir, "--out", tmp_path / "r", "stray")
    assert_user_error(res, "unexpected extra argument", "--set key=value")


# ------------------------------------------------------------------- --out, --resume
def test_out_that_is_an_existing_file(capsys, tmp_path, tiny_dir, run):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir, "--out", afile)
    assert_user_error(res, f"--out {afile} is an existing file")  # was: FileExistsError traceback
    assert_user_error(call(capsys, "train", "--model", "parabel", "--data", tiny_dir, "--out", afile / "sub"),
                      "is a file, not a folder")
    assert_user_error(call(capsys, "ensemble", "--out", afile, run, run), "is an existing file")
    assert afile.read_text() == "keep"


def _unfinish(run: Path) -> None:
    """Make a finished run look interrupted (status training, no saved model): --resume continues it."""
    import shutil

    shutil.rmtree(run / "model")
    info = json.loads((run / "run.json").read_text())
    info["status"] = "training"
    (run / "run.json").write_text(json.dumps(info))


def test_resume_refuses_changed_training_data(capsys, tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_test=0)
    out = tmp_path / "r"
    res = call(capsys, "train", "--model", "parabel", "--data", data, "--out", out, "--set", "n_trees=1")
    assert res.returncode == 0, str(res)
    recorded = json.loads((out / "run.json").read_text())["train_data"]
    assert recorded["docs"] == 160 and recorded["labels"] == 8 and len(recorded["sha256"]) == 64
    _unfinish(out)
    write_tiny_dataset(data, n_train=150, n_test=0, seed=1)  # the data changes under the run
    res = call(capsys, "train", "--model", "parabel", "--out", out, "--resume")
    assert_user_error(res, "--resume: the training data", "changed since the checkpoint", "160 -> 150 training",
                      "start a new run with another --out")


TINY_XMLCNN = ("epochs=1", "emb_dim=8", "n_filters=4", "w2v_epochs=1", "bottleneck=8", "progress=false")


def _interrupted_xmlcnn_run(capsys, tmp_path: Path, drop: str) -> tuple[Path, Path, object]:
    """(data folder, run folder, the dropped value) of a tiny xmlcnn run made to look interrupted, with ``drop``
    ("train_data" or "config.<field>") removed from its run.json, as an older xmtc wrote it."""
    data = tmp_path / "data"
    data.mkdir()
    write_split(data, "train", *make_tiny_corpus(120, 0))
    out = tmp_path / "r"
    res = call(capsys, "train", "--model", "xmlcnn", "--data", data, "--out", out, "--set", *TINY_XMLCNN)
    assert res.returncode == 0, str(res)
    assert (out / "checkpoints").is_dir()
    _unfinish(out)
    info = json.loads((out / "run.json").read_text())
    *parents, key = drop.split(".")
    holder = info
    for name in parents:
        holder = holder[name]
    dropped = holder.pop(key)
    (out / "run.json").write_text(json.dumps(info))
    return data, out, dropped


def test_resume_with_a_checkpoint_that_does_not_fit_is_one_error_line(capsys, tmp_path):
    """A run from before train_data was recorded: torch's ``RuntimeError: size mismatch`` is translated."""
    data, out, _ = _interrupted_xmlcnn_run(capsys, tmp_path, "train_data")
    write_split(data, "train", *make_tiny_corpus(120, 0, n_labels=10))  # two more labels: other output shapes
    res = call(capsys, "train", "--model", "xmlcnn", "--out", out, "--resume")
    assert_user_error(res, "--resume: the checkpoint in", "the data or the config changed since the checkpoint",
                      "start a new run")


def test_resume_of_a_run_begun_before_fused_optimizer_goes_on_with_the_per_tensor_step(capsys, tmp_path):
    _, out, recorded = _interrupted_xmlcnn_run(capsys, tmp_path, "config.fused_optimizer")
    assert recorded is True  # a new run records the default
    res = call(capsys, "train", "--model", "xmlcnn", "--out", out, "--resume", "--set", *TINY_XMLCNN,
               "fused_optimizer=false")
    assert res.returncode == 0, str(res)  # the recorded run is read as fused_optimizer=false, so --set agrees
    assert json.loads((out / "run.json").read_text())["config"]["fused_optimizer"] is False


# ------------------------------------------------------------------- explain --text
@pytest.fixture(scope="module")
def attention_model(tiny_data, tmp_path_factory) -> Path:
    """A tiny saved AttentionXML folder (one epoch: only explain's input handling is tested)."""
    from xmtc.models.attentionxml.model import AttentionXML

    folder = tmp_path_factory.mktemp("ax") / "model"
    AttentionXML(AttentionXML.tiny_config().replace(epochs=1, progress=False)).fit(tiny_data[0]).save(folder)
    return folder


def test_explain_text_that_is_not_utf8(attention_model, tmp_path):
    """``$'\\xff'`` reaches Python as the lone surrogate '\\udcff': was a UnicodeEncodeError traceback when the
    page was written."""
    argv = [sys.executable, "-m", "xmtc", "explain", str(attention_model), "--text", b"fishing \xff quotas",
            "--html", str(tmp_path / "e.html")]
    proc = subprocess.run(argv, capture_output=True, env=cli_env(), timeout=300)
    res = CLIResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode("utf-8", "replace"), ("explain",))
    assert_user_error(res, "--text: not valid UTF-8 (byte 0xff at character 9)")
    assert not (tmp_path / "e.html").exists()


def test_explain_input_file_that_is_not_utf8(capsys, run, tmp_path):
    path = tmp_path / "doc.txt"
    path.write_bytes("caf\u00e9".encode("latin-1"))
    assert_user_error(call(capsys, "explain", run, "--input", path, "--html", tmp_path / "e.html"),
                      str(path), "UTF-8")


# ------------------------------------------------------------------- evaluate on data of another task
def test_evaluate_refuses_data_whose_labels_are_mostly_unknown(capsys, run, other_labels_dir):
    res = call(capsys, "evaluate", run, "--data", other_labels_dir, "--json")
    line = assert_user_error(res, "(100.0%) of other/test are unknown to the model", "Not evaluated",
                             "more than 50%", "'lab0'")  # was: exit 0 with all-zero metrics
    assert "emo" in line and res.stdout == ""


def test_evaluate_with_a_few_unknown_labels_still_reports(capsys, run, tiny_dir):
    res = call(capsys, "evaluate", run, "--data", tiny_dir, "--json")  # 1 unknown gold label of ~90
    assert res.returncode == 0, str(res)
    assert json.loads(res.stdout)["unseen_label_occurrences"] == 1


# ------------------------------------------------------------------- misleading notes
def test_parabel_says_it_uses_no_validation(capsys, tmp_path, tiny_dir, tiny_dir_with_valid):
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir, "--out", tmp_path / "a", "--set",
               "n_trees=1", "--no-test")
    assert res.returncode == 0, str(res)
    assert "validation: none (parabel trains without early stopping)" in res.stderr
    assert "held out from train" not in res.stderr
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir_with_valid, "--out", tmp_path / "b",
               "--set", "n_trees=1", "--no-test")
    assert "validation: none (parabel trains without early stopping); dataset split 'valid' (40 docs) is not " \
           "used" in res.stderr


def test_sparse_dataset_errors_name_the_right_model(capsys, run, tmp_path):
    sparse = write_sparse_dataset(tmp_path / "sparse")
    res = call(capsys, "evaluate", run, "--data", sparse)
    line = assert_user_error(res, "sparse/test has sparse features only", "this parabel model was trained on raw "
                             "texts", "train a parabel model on this dataset's features")
    assert "use a sparse model such as 'parabel'" not in line  # was: told a parabel user to use parabel
    res = call(capsys, "train", "--model", "xmlcnn", "--data", sparse, "--out", tmp_path / "x")
    assert_user_error(res, "the xmlcnn model cannot read", "such as 'parabel'")
    assert not (tmp_path / "x").exists()  # refused before the run folder is written
    pytest.importorskip("matplotlib")
    res = call(capsys, "report", run, "--data", sparse, "--out", tmp_path / "rep")
    assert_user_error(res, "this parabel model was trained on raw texts")


def test_finish_it_with_names_the_runs_model(capsys, tmp_path, run, tiny_dir):
    unfinished = tmp_path / "r"
    unfinished.mkdir()
    info = json.loads((run / "run.json").read_text())
    info["status"] = "training"
    (unfinished / "run.json").write_text(json.dumps(info))
    res = call(capsys, "predict", unfinished, "--input", docs_file(tmp_path))
    assert_user_error(res, f"finish it with: xmtc train --out {unfinished} --model parabel --resume")


# ------------------------------------------------------------------- run.json: where the config came from
def test_run_json_records_preset_and_explicit_fields_when_training_starts(capsys, tmp_path, tiny_dir, monkeypatch):
    from xmtc.models.attentionxml.model import AttentionXML

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(AttentionXML, "fit", interrupted)
    out = tmp_path / "r"
    res = call(capsys, "train", "--model", "attentionxml", "--data", tiny_dir, "--out", out, "--set", "preset=fast",
               "epochs=1", "hidden=256")
    assert res.returncode == 130, str(res)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "training"
    assert info["explicit_fields"] == ["epochs", "hidden", "preset"]
    assert info["preset_fields"] and set(info["preset_fields"].values()) == {"preset=fast"}
    assert not {"epochs", "hidden", "level_epochs"} & set(info["preset_fields"])  # the user's values won
    assert info["config"]["epochs"] == 1 and info["config"]["hidden"] == 256
    assert set(info["preset_fields"]) <= set(info["config"])


# ------------------------------------------------------------------- ensemble --allow-label-union
def test_ensemble_of_other_tasks_is_refused_unless_allowed(capsys, tmp_path, run, other_labels_dir):
    other = tmp_path / "other"
    assert call(capsys, "train", "--model", "parabel", "--data", other_labels_dir, "--out", other, "--set",
                "n_trees=1", "--no-test").returncode == 0
    res = call(capsys, "ensemble", "--out", tmp_path / "e", run, other)
    assert_user_error(res, "shares 0 of its 8 labels", "--allow-label-union")
    assert not (tmp_path / "e").exists()
    res = call(capsys, "ensemble", "--out", tmp_path / "e", run, other, "--allow-label-union")
    assert res.returncode == 0, str(res)
    info = json.loads((tmp_path / "e" / "run.json").read_text())
    assert info["config"]["allow_disjoint_labels"] is True


# ------------------------------------------------------------------- data errors through the CLI
def test_training_data_that_is_not_utf8_is_one_error_line(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_split(data, "train", *make_tiny_corpus(40, 0), gz=False)
    texts = data / "train.texts.txt"
    texts.write_bytes(texts.read_bytes().replace(b"the", b"th\xe9", 1))
    res = call(capsys, "train", "--model", "parabel", "--data", data, "--out", tmp_path / "r")
    assert_user_error(res, "train.texts.txt:", "not valid UTF-8")


def test_corrupt_gz_dataset_is_one_error_line(capsys, run, tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=40, n_test=12)
    test_texts = data / "test.texts.txt.gz"
    test_texts.write_bytes(gzip.compress(b"fishing quotas\n" * 5000)[:-60])
    res = call(capsys, "evaluate", run, "--data", data)
    assert_user_error(res, "test.texts.txt.gz")
