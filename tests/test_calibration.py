"""Score calibration (issue 16): isotonic and Platt maps fitted on validation, calibrated decision rules through
tune / CLI / API / server, calibrated ensembles, and the validation documents of an ensemble."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import run_cli, write_tiny_dataset

from xmtc import calibration, decision, set_metrics
from xmtc.errors import XMTCError
from xmtc.models.base import TopK


def synthetic(seed: int, n: int = 400, k: int = 8, L: int = 30, link=lambda s: s ** 2):
    """Candidates whose scores are miscalibrated: P(gold | s) = link(s)."""
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(L, size=k, replace=False) for _ in range(n)]).astype(np.int32)
    scores = -np.sort(-rng.uniform(0, 1, size=(n, k)), axis=1).astype(np.float32)
    hits = rng.uniform(size=(n, k)) < link(scores)
    rows, cols = np.nonzero(hits)
    Y = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, idx[rows, cols])), shape=(n, L))
    return Y, TopK(idx, scores, n_labels=L)


def test_isotonic_is_monotone_keeps_the_mean_and_lowers_the_ece():
    Y, top = synthetic(0)
    cal = calibration.fit("isotonic", Y, top)
    assert np.all(np.diff(cal.x) > 0) and np.all(np.diff(cal.y) > 0) and 0 <= cal.y[0] and cal.y[-1] <= 1
    s, h = calibration.pairs(Y, top)
    assert s.size == top.indices.size
    Y2, top2 = synthetic(1)  # fresh documents from the same distribution
    before = set_metrics.topk_calibration(Y2, top2)[0]
    after = set_metrics.topk_calibration(Y2, TopK(top2.indices, cal.transform(top2.scores), n_labels=30))[0]
    assert after < before / 2, (before, after)
    again = calibration.calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert np.array_equal(again.transform(top2.scores), cal.transform(top2.scores))


def test_pava_blocks_are_the_weighted_means():
    cal = calibration.IsotonicCalibrator.fit(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([0., 1., 0., 1., 1.]))
    # 0.1 -> 0; (0.2, 0.3) pooled -> 0.5; 0.4 and 0.5 -> 1 (one block)
    assert cal.y == pytest.approx((0.0, 0.5, 1.0)) and cal.x == pytest.approx((0.1, 0.25, 0.45))


def test_platt_recovers_a_logistic_link():
    def link(s):
        z = np.log(s) - np.log1p(-s)
        return 1 / (1 + np.exp(-(2.0 * z - 1.0)))

    Y, top = synthetic(2, n=3000, link=link)
    cal = calibration.fit("platt", Y, top)
    assert cal.logit and cal.a == pytest.approx(2.0, abs=0.2) and cal.b == pytest.approx(-1.0, abs=0.15)
    assert np.all(np.diff(cal.transform(np.linspace(0.01, 0.99, 50))) > 0)


def test_calibration_input_errors():
    Y, top = synthetic(3, n=20)
    with pytest.raises(XMTCError, match="calibration must be one of"):
        calibration.fit("beta", Y, top)
    with pytest.raises(XMTCError, match="both gold and non-gold"):
        calibration.fit("platt", sp.csr_matrix(Y.shape, dtype=np.float32), top)
    for bad in ({"kind": "isotonic", "x": [0.2, 0.1], "y": [0, 1]}, {"kind": "platt", "a": "1", "b": 0},
                {"kind": "histogram"}):
        with pytest.raises(XMTCError):
            calibration.calibrator_from_dict(bad)


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_tune_with_calibration_wraps_every_rule(kind):
    Y, top = synthetic(4)
    result = decision.tune(Y, top, "micro-F1", calibration=kind)
    assert result.calibration == kind and result.to_dict()["calibration"] == kind
    assert all(isinstance(c.rule, decision.CalibratedRule) for c in result.by_kind.values())
    rule = result.rule
    payload = json.loads(json.dumps(decision.decision_payload(rule)))
    again, _ = decision.parse_decision(payload)
    assert again == rule and "calibrated by" in again.describe()
    sets = decision.to_sets(top, rule)
    cal_top = rule.calibrate(top)
    base = decision.to_sets(TopK(top.indices, cal_top.scores, n_labels=30), rule.base)
    assert all(np.array_equal(a, b) for a, b in zip(sets.indices, base.indices, strict=True))
    assert all(np.allclose(a, b) for a, b in zip(sets.scores, base.scores, strict=True))  # calibrated scores
    with pytest.raises(XMTCError, match="cannot wrap another"):
        decision.rule_from_dict({"rule": "calibrated", "calibration": rule.calibrator.to_dict(),
                                 "base": rule.to_dict()})


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cal")
    data = write_tiny_dataset(base / "data", n_valid=40)
    run = base / "run"
    assert run_cli("train", "--model", "parabel", "--data", data, "--out", run, "--set", "n_trees=2").returncode == 0
    res = run_cli("tune", run, "--data", data, "--k", "8", "--calibrate", "isotonic", "--json")
    assert res.returncode == 0, str(res)
    return run, data, json.loads(res.stdout)


def test_cli_calibrated_rule_is_used_by_predict_evaluate_and_server(calibrated_run, tmp_path):
    from xmtc.registry import load

    run, data, out = calibrated_run
    assert out["rule"]["rule"] == "calibrated" and out["calibration"] == "isotonic"
    model = load(run)
    assert isinstance(model.decision_, decision.CalibratedRule)
    texts = gzip.open(data / "test.texts.txt.gz", "rt").read().splitlines()[:10]
    api = model.predict_sets(texts)
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(texts) + "\n")
    res = run_cli("predict", run, "--input", inp, "--sets")
    assert res.returncode == 0, str(res)
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    names = model.label_index_.names
    assert [r["labels"] for r in rows] == [[names[i] for i in ids] for ids in api.indices]
    assert [r["scores"] for r in rows] == [[round(float(s), 6) for s in v] for v in api.scores]
    raw = model.predict(texts, k=model.decision_.depth)
    assert all(np.allclose(v, model.decision_.calibrator.transform(raw.scores[i][: len(v)]))
               for i, v in enumerate(api.scores))
    res = run_cli("evaluate", run, "--data", data)
    assert res.returncode == 0 and "(calibrated: " in res.stdout, str(res)
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmtc.serve import create_app

    with TestClient(create_app(model)) as c:
        r = c.post("/predict", json={"texts": texts, "mode": "sets"})
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [p["labels"] for p in got] == [r["labels"] for r in rows]
        for p, row in zip(got, rows, strict=True):
            assert p["scores"] == pytest.approx(row["scores"], abs=1e-6)


def test_tune_rejects_an_unknown_calibration(calibrated_run):
    run, data, _ = calibrated_run
    res = run_cli("tune", run, "--data", data, "--calibrate", "beta")
    assert res.returncode == 2 and res.stderr.startswith("error: --calibrate must be one of none, isotonic, platt")
    assert "Traceback" not in res.stderr


def test_calibrated_ensemble_needs_and_uses_member_calibrations(calibrated_run, tmp_path):
    from xmtc.registry import load

    run, data, _ = calibrated_run
    plain = tmp_path / "plain"
    assert run_cli("train", "--model", "parabel", "--data", data, "--out", plain, "--set", "n_trees=1",
                   "seed=3").returncode == 0
    res = run_cli("ensemble", "--out", tmp_path / "e1", "--calibrated", run, plain)
    assert res.returncode == 2 and "has no saved score calibration" in res.stderr
    assert run_cli("tune", plain, "--data", data, "--calibrate", "platt").returncode == 0
    res = run_cli("ensemble", "--out", tmp_path / "e2", "--calibrated", run, plain)
    assert res.returncode == 0, str(res)
    ens, a, b = load(tmp_path / "e2"), load(run), load(plain)
    texts = gzip.open(data / "test.texts.txt.gz", "rt").read().splitlines()[:6]
    got = ens.predict(texts, k=3)
    ta, tb = (m.predict(texts, k=50) for m in (a, b))
    want = {}
    for m, t in ((a, ta), (b, tb)):
        cal = m.decision_.calibrate(t).scores
        for i in range(len(texts)):
            for j, s in zip(t.indices[i], cal[i], strict=True):
                if j >= 0:
                    key = (i, m.label_index_.names[j])
                    want[key] = want.get(key, 0.0) + s / 2
    for i in range(len(texts)):
        for j, s in zip(got.indices[i], got.scores[i], strict=True):
            assert s == pytest.approx(want[(i, ens.label_index_.names[j])], abs=1e-5)


def test_ensemble_tunes_on_the_documents_every_member_held_out(tmp_path):
    """Members trained with --tune on a dataset without a valid split: the ensemble tunes on the intersection of
    their seeded hold-outs (nested when the seed is the same), never on documents a member trained on."""
    from xmtc.cli_sets import HOLDOUT_FRACTION
    from xmtc.data.split import holdout_rows

    data = write_tiny_dataset(tmp_path / "d")  # 160 train documents, no valid split
    runs = [tmp_path / "a", tmp_path / "b"]
    for r in runs:
        res = run_cli("train", "--model", "parabel", "--data", data, "--out", r, "--set", "n_trees=1", "--tune")
        assert res.returncode == 0, str(res)
    info = json.loads((runs[1] / "run.json").read_text())  # member b held out 20% (as a deep model's own share)
    info["holdout"]["fraction"] = 0.2
    (runs[1] / "run.json").write_text(json.dumps(info))
    res = run_cli("ensemble", "--out", tmp_path / "ens", *runs)
    assert res.returncode == 0, str(res)
    ens_info = json.loads((tmp_path / "ens" / "run.json").read_text())
    assert ens_info["data"] == str(data.resolve()) and len(ens_info["member_holdouts"]) == 2
    small = holdout_rows(160, HOLDOUT_FRACTION, 0)[1]
    assert set(small) <= set(holdout_rows(160, 0.2, 0)[1])  # nested
    for name in ("test.texts.txt.gz", "test.labels.txt.gz"):
        (data / name).write_bytes(b"\x00 the test split must not be read \x00")
    res = run_cli("tune", tmp_path / "ens", "--json")
    assert res.returncode == 0, str(res)
    out = json.loads(res.stdout)
    assert out["n_docs"] == small.size == 16 and "every member held out" in out["validation"]


def test_label_sets_benchmark_for_a_run_and_a_peer(calibrated_run, tmp_path):
    """benchmarks/label_sets.py: every calibration x metric x rule kind on test, in the result schema; the
    peer mode tunes the same rules on a peer's predictions; --summary prints the chosen rows."""
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks.schema import validate

    run, data, _ = calibrated_run
    root = Path(__file__).resolve().parents[1]
    script = str(root / "benchmarks" / "label_sets.py")
    out = tmp_path / "run.json"
    res = subprocess.run([sys.executable, script, str(run), "--data", str(data), "--k", "8", "--calibrate",
                          "none,isotonic", "--out", str(out)], capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stderr
    d = json.loads(out.read_text())
    assert validate(d) == []
    assert {(r["calibration"], r["tuned_for"]) for r in d["rows"]} == {
        (c, m) for c in ("none", "isotonic") for m in decision.METRICS}
    assert sum(r["chosen"] for r in d["rows"]) == 6  # one saved rule per calibration and metric
    peer = tmp_path / "peer.json"
    res = subprocess.run([sys.executable, script, "--peer", "xmtc-parabel", "--data", str(data), "--k", "8",
                          "--out", str(peer)], capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stderr
    p = json.loads(peer.read_text())
    assert validate(p) == [] and p["validation"].startswith("dataset split 'valid': 40 docs")
    res = subprocess.run([sys.executable, script, "--summary", str(out), str(peer)], capture_output=True,
                         text=True, cwd=root)
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ")][1:]  # after the header
    assert res.returncode == 0 and len(rows) == 9, res.stdout  # 2 + 1 calibrations x 3 metrics
