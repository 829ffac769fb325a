"""The benchmark runner (benchmarks/run.py) and its data splits on the tiny keyword task: result files in the
schema, seeded random subsets (never the first N), validation never from test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import run, schema  # noqa: E402
from benchmarks.common import load_splits, result_header, seeded_rows, with_env  # noqa: E402
from xmtc.allocator import allocator_env  # noqa: E402


@pytest.fixture(autouse=True)
def _no_allocator_env(monkeypatch):
    """Recorded commands begin with the allocator variables that are set (benchmarks.common.with_env): clear
    them, so that these tests see the command as typed whatever the caller's environment."""
    for k in allocator_env():
        monkeypatch.delenv(k)


def test_seeded_rows_are_a_sorted_random_sample():
    rows = seeded_rows(1000, 50, seed=3)
    assert len(rows) == 50 and len(set(rows.tolist())) == 50 and np.all(np.diff(rows) > 0)
    assert rows.tolist() != list(range(50))
    np.testing.assert_array_equal(rows, seeded_rows(1000, 50, seed=3))
    assert rows.tolist() != seeded_rows(1000, 50, seed=4).tolist()
    assert seeded_rows(10, None, 0) is None and seeded_rows(10, 10, 0) is None


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_load_splits_samples_and_holdout(tiny_dir, tiny_dir_with_valid):
    import xmtc

    (full,) = xmtc.data.load(tiny_dir, ("train",))
    s = load_splits(tiny_dir, seed=0, max_train=100, max_test=30, max_valid=20, valid="holdout")
    assert (len(s.train), len(s.valid), len(s.test)) == (80, 20, 30)
    assert s.valid_source == "holdout"
    texts = set(s.train.texts) | set(s.valid.texts)
    assert texts != set(full.texts[:100]) and texts <= set(full.texts)  # a random sample, not the first 100
    assert not set(s.train.texts) & set(s.valid.texts)
    assert s.train.n_labels == len(s.train.label_index) == s.test.Y.shape[1]
    own = load_splits(tiny_dir_with_valid, seed=0, max_valid=15, valid="valid")
    (valid,) = xmtc.data.load(tiny_dir_with_valid, ("valid",))
    assert own.valid_source == "valid" and len(own.valid) == 15 and set(own.valid.texts) <= set(valid.texts)
    assert len(own.train) == len(xmtc.data.load(tiny_dir_with_valid, ("train",))[0])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_load_splits_max_tokens_cuts_every_split_to_the_first_tokens(tiny_dir_with_valid):
    from xmtc.text import tokenize

    whole = load_splits(tiny_dir_with_valid, seed=0, valid="valid")
    cut = load_splits(tiny_dir_with_valid, seed=0, valid="valid", max_tokens=3)
    for a, b in ((whole.train, cut.train), (whole.valid, cut.valid), (whole.test, cut.test)):
        assert len(a) == len(b) and (a.Y != b.Y).nnz == 0  # same documents, same labels, in the same order
        assert b.texts == [" ".join(tokenize(t)[:3]) for t in a.texts]
        assert any(len(tokenize(t)) > 3 for t in a.texts)  # the cut did something
    with pytest.raises(ValueError, match="max_tokens must be positive"):
        load_splits(tiny_dir_with_valid, max_tokens=0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runner_records_max_tokens_in_every_row(tiny_dir, tmp_path):
    out = tmp_path / "t.json"
    assert run.main(["--model", "parabel", "--data", str(tiny_dir), "--max-train", "120", "--max-test", "40",
                     "--threads", "1", "--max-tokens", "5", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert schema.validate(result) == [] and [r["max_tokens"] for r in result["rows"]] == [5]


def test_runner_rejects_a_non_positive_max_tokens(tiny_dir):
    with pytest.raises(SystemExit):
        run.main(["--model", "parabel", "--data", str(tiny_dir), "--max-tokens", "0"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runner_writes_a_result_file_in_the_schema(tiny_dir, tmp_path):
    out = tmp_path / "p.json"
    rc = run.main(["--model", "parabel", "--data", str(tiny_dir), "--max-train", "120", "--max-test", "40",
                   "--threads", "1", "--set", "n_trees=1", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert schema.validate(result) == []
    (row,) = result["rows"]
    assert (row["model"], row["kind"], row["dataset"], row["n_train"], row["n_test"]) == \
        ("parabel", "single", "tiny", 120, 40)
    assert row["P@1"] > 50  # percent; the keyword task is easy
    assert row["train_s"] > 0 and row["peak_rss_mib"] > 0 and row["predict_docs_s"] > 0
    assert result["command"].startswith("python -m benchmarks.run --model parabel")
    assert result["runs"][0]["config"]["n_trees"] == 1 and result["versions"]["xmtc"]
    assert out.with_suffix(".md").read_text().startswith("`python -m benchmarks.run")


def test_runner_rejects_unknown_models_and_keys(tiny_dir):
    with pytest.raises(SystemExit):
        run.main(["--model", "no-such-model", "--data", str(tiny_dir)])
    with pytest.raises(SystemExit):
        run.main(["--model", "parabel", "--data", str(tiny_dir), "--set", "no_such_key=1"])


def test_beam_diagnostic_reproduces_the_model_row_and_refuses_test(tiny_dir_with_valid, tmp_path, capsys):
    from benchmarks import beam_diagnostic
    from xmtc import metrics
    from xmtc.data import load
    from xmtc.models.attentionxml.model import AttentionXML

    train, valid = load(tiny_dir_with_valid, ("train", "valid"))
    cfg = AttentionXML.tiny_config().replace(tree=True, cluster_size=4, tree_top=4, candidates=2, beam=2,
                                             level_epochs=[4, 4])
    model = AttentionXML(cfg).fit(train)
    folder = model.save(tmp_path / "ax")
    args = ["--model", str(folder), "--data", str(tiny_dir_with_valid), "--docs", "1000"]
    assert beam_diagnostic.main(args) == 0
    rows = {line[:12].strip(): line[12:].split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert list(rows) == ["model", "all labels", "leaf only", "oracle beam"]
    # the 'model' row is the model's own beam search on the whole valid split (docs >= its size)
    top = model.predict(valid, k=5)
    for k in (1, 3, 5):
        assert float(rows["model"][2 * (k // 2) + 1]) == pytest.approx(100 * metrics.precision_at_k(valid.Y, top, k),
                                                                      abs=0.01)
    assert beam_diagnostic.main([*args, "--split", "test"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_recorded_command_carries_the_allocator_environment_it_ran_with(monkeypatch):
    assert with_env("python -m benchmarks.run --data d", {"XMTC_MALLOC": "system", "HOME": "/root"}) == \
        "XMTC_MALLOC=system python -m benchmarks.run --data d"
    assert with_env("python x.py", {"LD_PRELOAD": "/a b/libjemalloc.so"}) == \
        "LD_PRELOAD='/a b/libjemalloc.so' python x.py"
    assert result_header("python x.py")["command"] == "python x.py"  # the autouse fixture cleared them
    monkeypatch.setenv("XMTC_MALLOC", "system")
    assert result_header("python x.py")["command"] == "XMTC_MALLOC=system python x.py"
