"""``align_topk`` and the ensemble benchmark script (benchmarks/ensemble.py) on tiny data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import xmtc
from xmtc.data import LabelIndex
from xmtc.errors import XMTCError
from xmtc.models.base import TopK
from xmtc.models.ensemble import align_topk, average_topk, consensus_topk

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import schema  # noqa: E402


def _top(indices, scores, n_labels) -> TopK:
    return TopK(np.asarray(indices), np.asarray(scores, dtype=np.float32), n_labels=n_labels)


def _bench():
    """benchmarks/ensemble.py (the ``benchmarks`` package at the repository root)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.ensemble")


def test_align_topk_identity_permutation_and_dropped_labels():
    top = _top([[0, 2, 1], [3, -1, -1]], [[0.9, 0.5, 0.2], [0.7, -np.inf, -np.inf]], n_labels=4)
    same = LabelIndex(["a", "b", "c", "d"])
    assert align_topk(top, same.names, same) is top
    # target knows c, a, b (other order) and not d: d is dropped, padding moves to the end
    target = LabelIndex(["c", "x", "a", "b"])
    out = align_topk(top, same.names, target)
    assert out.n_labels == 4
    np.testing.assert_array_equal(out.indices, [[2, 0, 3], [-1, -1, -1]])
    np.testing.assert_allclose(out.scores[0], [0.9, 0.5, 0.2], rtol=1e-6)
    assert np.isneginf(out.scores[1]).all()
    with pytest.raises(XMTCError, match="3 label names"):
        align_topk(top, ["a", "b", "c"], target)


def test_average_and_consensus_of_a_model_with_itself():
    top = _top([[4, 1, 7], [2, 0, -1]], [[0.8, 0.6, 0.1], [0.5, 0.3, -np.inf]], n_labels=8)
    avg = average_topk([top, top], k=3)
    np.testing.assert_array_equal(avg.indices, top.indices)
    np.testing.assert_allclose(avg.scores[top.indices >= 0], top.scores[top.indices >= 0], rtol=1e-6)
    cons = consensus_topk(top, top, k=3)  # 1 - (1 - p)^2 is increasing in p: same ranking
    np.testing.assert_array_equal(cons.indices, top.indices)
    p = top.scores[0].astype(np.float64)
    np.testing.assert_allclose(cons.scores[0], 1 - (1 - p) ** 2, rtol=1e-6)
    empty = _top(np.full((2, 3), -1), np.full((2, 3), -np.inf), n_labels=8)
    alone = consensus_topk(top, empty, k=3)  # missing probabilities count 0: the model itself
    np.testing.assert_array_equal(alone.indices, top.indices)


def test_beats_parts_verdict():
    bench = _bench()
    m = {"a": {"P@1": 50.0, "P@3": 40.0, "P@5": 30.0}, "b": {"P@1": 55.0, "P@3": 35.0, "P@5": 31.0},
         "c": {"P@1": 56.0, "P@3": 41.0, "P@5": 31.0}}
    (b,) = bench.beats_parts(m, [{"row": "c", "parts": ["a", "b"]}])
    assert b["margin_over_best_part"] == {"P@1": 1.0, "P@3": 1.0, "P@5": 0.0}
    assert b["beats_both"] is False  # a tie on P@5 is not a win
    assert "NO" in bench.beats_line(b)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_script_consensus_of_parabel_with_itself(tiny_dir, tmp_path):
    """A saved parabel used as the 'deep' part and as parabel: every combined row equals the model."""
    bench = _bench()
    train, test = xmtc.data.load(tiny_dir, ("train", "test"))
    cls = xmtc.registry.get("parabel")
    folder = tmp_path / "parabel"
    cls(cls.Config(n_trees=1, n_threads=1)).fit(train).save(folder)
    out = tmp_path / "res.json"
    result = bench.main(["--data", str(tiny_dir), "--models", str(folder), str(folder), "--parabel",
                         str(folder), "--k", "8", "--threads", "1", "--min-count", "1", "--group-by", "train", "test",
                         "--out", str(out)])
    rows = {r["model"]: r for r in result["rows"]}
    assert [r["role"] for r in result["rows"]] == ["deep", "deep", "average", "parabel", "consensus",
                                                     "consensus"]
    assert [r["kind"] for r in result["rows"]] == ["single", "single", "ensemble", "single", "ensemble",
                                                     "ensemble"]
    reference = rows["parabel"]
    for r in result["rows"]:
        for metric in ("P@1", "P@3", "P@5", "nDCG@5"):
            assert r[metric] == pytest.approx(reference[metric], abs=1e-9), (r["model"], metric)
        for basis in ("train", "test"):
            assert r["label_groups"][basis], (r["model"], basis)
            assert r["label_groups"][basis][0]["AUC"] == pytest.approx(
                reference["label_groups"][basis][0]["AUC"], abs=1e-9)
    assert reference["P@1"] > 50  # the tiny keyword task is easy
    assert all(not b["beats_both"] for b in result["consensus_beats_parts"])
    saved = json.loads(out.read_text())
    assert saved["n_test"] == len(test)
    assert schema.validate(saved) == []
    md = out.with_suffix(".md").read_text()
    assert md.startswith("| # |") and "| occurrence (train) |" in md and "| occurrence (test) |" in md
