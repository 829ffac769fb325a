"""The evaluation report (xmtc.report, ``xmtc report``): decile precision, numbers, plots, the HTML page."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from test_explain import FAKE_ATTENTION, cli_error, make_fake, register_fakes

from xmtc import metrics
from xmtc.data import load
from xmtc.errors import DataError
from xmtc.models.base import TopK
from xmtc.registry import MODELS
from xmtc.report import build_report, decile_precision

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def test_decile_precision_known_answer():
    # 4 labels; training counts make the frequency order 0, 1, 2, 3 (ties by id); 2 bins: {0, 1}, {2, 3}
    Y = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    top = TopK(np.array([[0, 3], [0, 1], [2, -1]]), np.array([[0.9, 0.5], [0.8, 0.7], [0.6, -np.inf]]), 4)
    rows = decile_precision(Y, top, np.array([10, 5, 5, 1]), k=2, n_bins=2)
    bins = [(r["bin"], r["n_labels"], r["min_count"], r["max_count"]) for r in rows]
    assert bins == [(1, 2, 5, 10), (2, 2, 1, 5)]
    # bin 1: predictions 0, 0, 1 -> hits doc0/label0 and doc1/label1; gold pairs (0,0), (1,1)
    assert (rows[0]["predictions"], rows[0]["hits"], rows[0]["gold"]) == (3, 2, 2)
    assert rows[0]["precision"] == pytest.approx(2 / 3) and rows[0]["recall"] == 1.0
    # bin 2: predictions 3 (doc0, miss), 2 (doc2, miss); gold (0,2), (2,3)
    assert (rows[1]["predictions"], rows[1]["hits"], rows[1]["gold"]) == (2, 0, 2)
    assert rows[1]["precision"] == 0
    only_k1 = decile_precision(Y, top, np.array([10, 5, 5, 1]), k=1, n_bins=2)
    assert [r["predictions"] for r in only_k1] == [2, 1]


def test_decile_precision_edge_cases():
    Y = sp.csr_matrix(np.eye(3, dtype=np.float32))
    rows = decile_precision(Y, np.full((3, 2), -1), np.array([3, 2, 1]))  # no predictions, 10 bins > 3 labels
    assert len(rows) == 3 and all(math.isnan(r["precision"]) for r in rows)
    with pytest.raises(DataError, match="one entry per label"):
        decile_precision(Y, np.zeros((3, 1), dtype=int), np.array([1, 2]))


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory):
    """A real parabel run and a fake-model run on the tiny dataset folder."""
    import xmtc

    added = register_fakes()
    root = tmp_path_factory.mktemp("report")
    (train,) = load(tiny_dir, splits=("train",))
    cls = xmtc.registry.get("parabel")
    cls(cls.tiny_config()).fit(train).save(root / "parabel" / "model")
    fake = make_fake(labels=train.label_index.names)
    fake.save(root / "fake")
    yield root / "parabel", root / "fake"
    for name in added:
        MODELS.pop(name)


def test_build_report_with_two_runs(runs, tiny_dir, tmp_path):
    index = build_report(runs, tiny_dir, tmp_path / "out")
    out = index.parent
    for png in ("precision_at_k.png", "label_groups.png", "deciles.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    page = index.read_text(encoding="utf-8")
    assert page.count("<img ") == 3 and "<td>P@5</td>" in page
    assert "<th>parabel</th>" in page and "<th>fake</th>" in page and FAKE_ATTENTION in page

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["split"] == "test" and [r["name"] for r in report["runs"]] == ["parabel", "fake"]
    model = xmtc_load(runs[0])
    with pytest.warns(UserWarning, match="count as misses"):
        train, test = load(tiny_dir, splits=("train", "test"), label_index=model.label_index_)
    top = model.predict(test, k=10)
    got = report["runs"][0]["metrics"]
    for k in (1, 5, 10):
        assert got[f"P@{k}"] == pytest.approx(metrics.precision_at_k(test.Y, top, k), abs=1e-9)
        assert got[f"PSP@{k}"] == pytest.approx(
            metrics.psp_at_k(test.Y, top, k, metrics.inverse_propensity(train.Y)), abs=1e-9)
    assert got["n_docs"] == len(test)
    groups = report["runs"][0]["label_groups"]
    assert groups and all(0 <= g["AUC"] <= 1 and 0 <= g["AUPR"] <= 1 for g in groups)
    deciles = report["runs"][0]["deciles"]
    assert sum(d["n_labels"] for d in deciles) == len(model.label_index_)
    assert sum(d["predictions"] for d in deciles) == 5 * len(test)  # top-5 of every document
    assert sum(d["hits"] for d in deciles) == round(metrics.precision_at_k(test.Y, top, 5) * 5 * len(test))


def xmtc_load(run):
    from xmtc.registry import load as load_model
    from xmtc.runs import resolve_model_dir

    return load_model(resolve_model_dir(run))


def test_report_names_are_unique(runs, tiny_dir, tmp_path):
    index = build_report([runs[1], runs[1]], tiny_dir, tmp_path / "same", split="test")
    names = [r["name"] for r in json.loads((index.parent / "report.json").read_text())["runs"]]
    assert len(set(names)) == 2


def test_xmtc_report_cli(runs, tiny_dir, tmp_path, xmtc_cli):
    r = xmtc_cli("report", runs[0], "--data", tiny_dir, "--out", tmp_path / "cli")
    assert r.returncode == 0, r
    assert "report written to" in r.stdout and (tmp_path / "cli" / "index.html").is_file()


def test_xmtc_report_cli_errors(runs, tiny_dir, tmp_path, capsys):
    out = tmp_path / "err"
    assert "no such file or directory" in cli_error(["report", runs[0], "--data", tmp_path / "nodata",
                                                     "--out", out], capsys)
    assert "--split train" in cli_error(["report", runs[0], "--data", tiny_dir, "--out", out,
                                         "--split", "train"], capsys)
    assert "no such run or model folder" in cli_error(["report", tmp_path / "norun", "--data", tiny_dir,
                                                       "--out", out], capsys)
    assert "Missing argument" in cli_error(["report", "--data", tiny_dir, "--out", out], capsys)
    assert "valid" in cli_error(["report", runs[0], "--data", tiny_dir, "--out", out, "--split", "valid"],
                                capsys)
