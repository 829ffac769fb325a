"""The command line: ``python -m xmtc`` subprocesses (main flows) and ``xmtc.cli.main`` (error matrix).

Every user error must end with exit status 2 and one ``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import UNSEEN_LABEL, CLIResult, assert_user_error, make_tiny_corpus, run_cli, write_tiny_dataset

from xmtc import registry
from xmtc.cli import main
from xmtc.cli_common import report_ks


@pytest.fixture(scope="module")
def parabel_run(tiny_dir, tmp_path_factory) -> tuple[Path, CLIResult]:
    """``xmtc train --model parabel`` on the tiny dataset folder (train + test)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    res = run_cli("train", "--model", "parabel", "--data", tiny_dir, "--out", run, "--set", "n_trees=2")
    assert res.returncode == 0, str(res)
    return run, res


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, list[str]]:
    texts, _ = make_tiny_corpus(7, seed=11)
    path = tmp_path_factory.mktemp("inputs") / "docs.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


# --------------------------------------------------------------------------------------------- train
def test_train_writes_the_run_folder_and_reports_test_metrics(parabel_run, tiny_dir):
    run, res = parabel_run
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "parabel" and info["status"] == "done"
    assert Path(info["data"]) == tiny_dir.resolve()
    assert info["config"]["n_trees"] == 2 and info["n_train"] == 160 and info["n_labels"] == 8
    assert (run / "model" / "meta.json").is_file()
    report = json.loads((run / "test_report.json").read_text())
    assert report["n_docs"] == 48 and report["unseen_label_occurrences"] == 1
    assert 0.6 <= report["P@1"] <= 1.0
    assert "trained parabel on tiny" in res.stdout
    assert "nDCG" in res.stdout and "PSP" in res.stdout and "n_docs" in res.stdout
    assert "unknown to the model: counted as misses" in res.stdout


def test_train_refuses_to_overwrite_a_run(parabel_run, tiny_dir):
    run, _ = parabel_run
    res = run_cli("train", "--model", "parabel", "--data", tiny_dir, "--out", run)
    assert_user_error(res, "already holds a run", "--resume")


def test_resume_of_a_finished_run_reuses_the_model(parabel_run, tmp_path):
    run, _ = parabel_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = run_cli("train", "--model", "parabel", "--out", copy, "--resume")
    assert res.returncode == 0, str(res)
    assert "already finished" in res.stderr
    before = json.loads((run / "test_report.json").read_text())
    assert json.loads((copy / "test_report.json").read_text()) == before


# --------------------------------------------------------------------------------------------- predict
def test_predict_text_file_to_stdout(parabel_run, inputs):
    run, _ = parabel_run
    path, texts = inputs
    res = run_cli("predict", run, "--input", path, "--k", "3")
    assert res.returncode == 0, str(res)
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == len(texts)
    model = registry.load(run)
    top = model.predict(texts, k=3)
    for row, ids, scores in zip(rows, top.indices, top.scores, strict=True):
        assert set(row) == {"labels", "scores"}
        assert row["labels"] == model.label_index_.decode(ids[ids >= 0])
        np.testing.assert_allclose(row["scores"], scores[ids >= 0], atol=1e-6)
        assert row["scores"] == sorted(row["scores"], reverse=True)


def test_predict_jsonl_from_stdin_to_file_keeps_ids(parabel_run, inputs, tmp_path):
    run, _ = parabel_run
    _, texts = inputs
    lines = "".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(texts[:3]))
    out = tmp_path / "pred.jsonl"
    res = run_cli("predict", run, "--input", "-", "--k", "2", "--output", out, input=lines)
    assert res.returncode == 0, str(res)
    assert res.stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["doc0", "doc1", "doc2"]
    assert all(len(r["labels"]) == 2 for r in rows)


# --------------------------------------------------------------------------------------------- evaluate
def test_evaluate_json_is_one_object_with_the_report_keys(parabel_run, tiny_dir):
    run, _ = parabel_run
    res = run_cli("evaluate", run, "--data", tiny_dir, "--json")
    assert res.returncode == 0, str(res)
    result = json.loads(res.stdout)  # exactly one JSON object: the whole of stdout
    for key in ("P@1", "P@3", "P@5", "nDCG@1", "nDCG@3", "nDCG@5", "PSP@1", "PSP@5", "n_docs"):
        assert key in result, key
    assert result["n_docs"] == 48
    assert all(0.0 <= v <= 1.0 + 1e-9 for key, v in result.items() if "@" in key), "fractions, not percent"
    assert result["unseen_label_occurrences"] == 1 and result["unseen_labels"] == 1
    assert result == json.loads((run / "test_report.json").read_text())  # same numbers as train's report


def test_evaluate_table_and_larger_k(parabel_run, tiny_dir):
    run, _ = parabel_run
    res = run_cli("evaluate", run, "--data", tiny_dir, "--k", "8")
    assert res.returncode == 0, str(res)
    header = res.stdout.splitlines()[2 if "unknown" in res.stdout else 1]
    assert header.split() == ["@1", "@3", "@5", "@8"]
    assert UNSEEN_LABEL in res.stderr  # the reader's note names the unseen label


def test_report_ks():
    assert report_ks(1) == (1,)
    assert report_ks(3) == (1, 3)
    assert report_ks(5) == (1, 3, 5)
    assert report_ks(10) == (1, 3, 5, 10)


# --------------------------------------------------------------------------------------------- info commands
def test_print_config_is_the_default_config_as_json():
    res = run_cli("print-config", "parabel")
    assert res.returncode == 0, str(res)
    cls = registry.get("parabel")
    assert cls.Config.from_dict(json.loads(res.stdout)) == cls.Config()


def test_print_config_docs_lists_every_field():
    res = run_cli("print-config", "attentionxml", "--docs")
    assert res.returncode == 0, str(res)
    for field, doc in registry.get("attentionxml").Config.describe().items():
        assert any(line.split()[:1] == [field] and doc in line for line in res.stdout.splitlines()), field


def test_models_and_datasets(tiny_dir, tiny_dir_with_valid):
    res = run_cli("models")
    assert res.returncode == 0, str(res)
    listed = [line.split()[0] for line in res.stdout.splitlines()]
    assert listed == registry.available()
    root = tiny_dir.parent.parent
    res = run_cli("datasets", root)
    assert res.returncode == 0, str(res)
    assert "tiny " in res.stdout and "train 160, test 48" in res.stdout
    assert "train 160, valid 40, test 48" in res.stdout and "shared" in res.stdout


def test_help_of_every_command_has_an_example():
    for command in ("train", "predict", "evaluate", "print-config", "models", "datasets", "ensemble"):
        res = run_cli(command, "--help")
        assert res.returncode == 0, str(res)
        assert "Example" in res.stdout and f"xmtc {command}" in res.stdout, command


# --------------------------------------------------------------------------------------------- user errors
def test_unknown_model(tmp_path, tiny_dir):
    res = run_cli("train", "--model", "parabl", "--data", tiny_dir, "--out", tmp_path / "r")
    assert_user_error(res, "unknown model 'parabl'", "did you mean 'parabel'")


def test_unknown_config_key(tmp_path, tiny_dir):
    res = run_cli("train", "--model", "attentionxml", "--data", tiny_dir, "--out", tmp_path / "r",
                  "--set", "hiddn=3")
    assert_user_error(res, "unknown key 'hiddn'", "did you mean 'hidden'")
    assert not (tmp_path / "r").exists()


def test_missing_data_dir(tmp_path):
    res = run_cli("train", "--model", "parabel", "--data", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert_user_error(res, "nowhere", "no such dataset")


def test_k_zero(parabel_run, inputs, tiny_dir):
    run, _ = parabel_run
    message = "k must be a positive integer"
    assert_user_error(run_cli("predict", run, "--input", inputs[0], "--k", "0"), message)
    assert_user_error(run_cli("evaluate", run, "--data", tiny_dir, "--k", "0"), message)


def test_usage_errors_are_one_line():
    assert_user_error(run_cli("train"), "Missing option '--model'")
    assert_user_error(run_cli("fly"), "No such command 'fly'")


# ------------------------------------------------------------- the wider error matrix, in-process (fast)
def call(capsys, *args) -> CLIResult:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return CLIResult(int(e.value.code or 0), out.out, out.err, tuple(map(str, args)))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("predict", "{tmp}", "--input", "{docs}"), ("not a run folder",)),
        (("predict", "{tmp}/none", "--input", "{docs}"), ("no such run or model folder",)),
        (("predict", "{run}", "--input", "{tmp}/missing.txt"), ("missing.txt", "no such input file")),
        (("predict", "{run}", "--input", "{docs}", "--format", "xml"), ("--format must be",)),
        (("evaluate", "{run}", "--data", "{data}", "--split", "valid"), ("no split 'valid'", "train, test")),
        (("evaluate", "{run}", "--data", "{tmp}"), ("no dataset found",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "--set", "n_trees"),
         ("--set expects key=value",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "--set", "n_trees=0.5"),
         ("n_trees must be an integer",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "-c", "{tmp}/bad.json"),
         ("bad.json:1: invalid JSON",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "-c", "{tmp}/no.json"),
         ("config file not found",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "--valid-split", "test"),
         ("never used",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "--valid-split", "dev2"),
         ("no split 'dev2'",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}/r", "--k", "0"),
         ("k must be a positive integer",)),
        (("train", "--model", "parabel", "--data", "{data}", "--out", "{tmp}"), ("not an xmtc run folder",)),
        (("train", "--model", "bonsai", "--data", "{data}", "--out", "{run}", "--resume"),
         ("holds a 'parabel' run",)),
        (("train", "--model", "parabel", "--out", "{run}", "--resume", "--set", "n_trees=5"),
         ("config differs", "n_trees 2 -> 5")),
        (("ensemble", "--out", "{tmp}/e", "{run}"), ("at least 2 member",)),
        (("print-config", "nope"), ("unknown model 'nope'",)),
        (("datasets", "{tmp}/none"), ("not a directory",)),
    ],
)
def test_error_matrix(capsys, tmp_path, parabel_run, tiny_dir, inputs, args, fragments):
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "clutter.txt").write_text("x")
    fill = {"tmp": tmp_path, "run": parabel_run[0], "data": tiny_dir, "docs": inputs[0]}
    res = call(capsys, *(a.format(**fill) for a in args))
    assert_user_error(res, *fragments)


def test_empty_document_is_predicted_and_noted(capsys, parabel_run, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("first document\n\nthird\n")
    res = call(capsys, "predict", parabel_run[0], "--input", path)
    assert res.returncode == 0, str(res)  # row i of the output is line i (test_cli_reliability.py)
    assert len(res.stdout.splitlines()) == 3 and "1 of 3 input lines are empty (line 2)" in res.stderr


def test_bad_jsonl_names_the_line(capsys, parabel_run, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "ok"}\n{"txt": "no text field"}\n')
    assert_user_error(call(capsys, "predict", parabel_run[0], "--input", path), f"{path}:2:", '"text"')
    path.write_text('{"text": "ok"}\n{"text": \n')
    assert_user_error(call(capsys, "predict", parabel_run[0], "--input", path), f"{path}:2: invalid JSON")


def test_tampered_model_is_a_user_error(capsys, parabel_run, inputs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(parabel_run[0], run)
    (run / "model" / "config.json").write_text((run / "model" / "config.json").read_text() + " ")
    assert_user_error(call(capsys, "predict", run, "--input", inputs[0]), "checksum")


def test_valid_split_of_the_dataset_is_used(capsys, tiny_dir_with_valid, tmp_path):
    res = call(capsys, "train", "--model", "parabel", "--data", tiny_dir_with_valid, "--out", tmp_path / "r",
               "--set", "n_trees=1", "--no-test")
    assert res.returncode == 0, str(res)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["n_valid"] == 40 and "dataset split 'valid' (40 docs)" in res.stderr
    assert not (tmp_path / "r" / "test_report.json").exists()


def test_without_data_the_bundled_dataset_is_announced(capsys, tmp_path, monkeypatch):
    small = write_tiny_dataset(tmp_path / "bundled" / "mini", n_train=40, n_test=10)
    monkeypatch.setattr("xmtc.data.bundled_path", lambda name="eurlex-mini": small)
    res = call(capsys, "train", "--model", "parabel", "--out", tmp_path / "r", "--set", "n_trees=1")
    assert res.returncode == 0, str(res)
    assert f"no --data given: using the bundled dataset {small}" in res.stderr


def test_ensemble_command(capsys, parabel_run, tiny_dir, tmp_path):
    if "ensemble" not in registry.available():
        pytest.skip("no ensemble model registered")
    second = tmp_path / "second"
    assert call(capsys, "train", "--model", "bonsai", "--data", tiny_dir, "--out", second,
                "--no-test").returncode == 0
    res = call(capsys, "ensemble", "--out", tmp_path / "ens", "--method", "average", parabel_run[0], second)
    assert res.returncode == 0, str(res)
    res = call(capsys, "evaluate", tmp_path / "ens", "--data", tiny_dir, "--json")
    assert res.returncode == 0, str(res)
    assert json.loads(res.stdout)["P@1"] >= 0.6


# --------------------------------------------------------------------------------------------- real data
def test_datasets_lists_the_shared_data(shared_data):
    res = run_cli("datasets", shared_data)
    assert res.returncode == 0, str(res)
    if not (shared_data / "eurlex57k").is_dir():
        pytest.skip(f"{shared_data / 'eurlex57k'} is absent")
    rows = {line.split()[0]: line for line in res.stdout.splitlines() if line.strip()}
    assert "train 45,000, valid 6,000, test 6,000" in rows["eurlex57k"]


@pytest.mark.slow
def test_train_and_evaluate_on_real_data(shared_data, tmp_path):
    data = shared_data / "goemotions"
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    run = tmp_path / "run"
    res = run_cli("train", "--model", "parabel", "--data", data, "--out", run, timeout=1800)
    assert res.returncode == 0, str(res)
    info = json.loads((run / "run.json").read_text())
    assert info["n_valid"] == 5426 and info["n_train"] == 43410
    res = run_cli("evaluate", run, "--data", data, "--json", timeout=1800)
    assert res.returncode == 0, str(res)
    result = json.loads(res.stdout)
    assert result["n_docs"] == 5427
    assert result == json.loads((run / "test_report.json").read_text())
    assert result["P@1"] > 0.33  # always predicting "neutral" (on 1,787 of 5,427 test comments) gives 0.329
