"""Label sets (issue 16): set metrics vs scikit-learn, decision rules, tuning on validation only, the rule saved
with the model (checksummed) and applied identically by the Python API, the CLI and the server."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import run_cli, write_tiny_dataset
from sklearn.metrics import f1_score, precision_score, recall_score

from xmtc import decision, set_metrics
from xmtc.decision import (
    LabelThresholdRule,
    ThresholdRule,
    TopKRule,
    TopKThresholdRule,
    apply,
    rule_from_dict,
    to_sets,
    tune,
)
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import TopK


def random_sets(seed: int, n: int = 60, L: int = 12, density: float = 0.15):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < density).astype(int)
    P = (rng.random((n, L)) < density).astype(int)
    Y[0] = 0  # a document with no gold label
    Y[1] = P[1] = 0  # ... and one with neither gold nor predicted labels (the zero-division case)
    Y[:, 2] = P[:, 2] = 0  # a label never gold nor predicted
    return Y, P


def random_top(seed: int, n: int = 80, L: int = 15, k: int = 6):
    """Candidates whose scores carry signal: gold labels score higher on average."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.2).astype(np.float32)
    scores = rng.random((n, L)) * 0.6 + Y * 0.4
    top = TopK.from_scores(scores, k)
    top.indices[:3, k - 2:] = -1  # padding, as models emit for short candidate lists
    top.scores[:3, k - 2:] = -np.inf
    return sp.csr_matrix(Y), top


# --------------------------------------------------------------------------------------------- set metrics
@pytest.mark.parametrize("seed", range(5))
def test_f1_functions_match_scikit_learn(seed):
    Y, P = random_sets(seed)
    Ys, Ps = sp.csr_matrix(Y), sp.csr_matrix(P)
    assert set_metrics.micro_f1(Ys, Ps) == pytest.approx(f1_score(Y, P, average="micro", zero_division=0))
    assert set_metrics.precision(Ys, Ps) == pytest.approx(precision_score(Y, P, average="micro", zero_division=0))
    assert set_metrics.recall(Ys, Ps) == pytest.approx(recall_score(Y, P, average="micro", zero_division=0))
    for zd in (0.0, 1.0):  # the zero-division convention: a 0/0 ratio is `zero_division`, as in scikit-learn
        assert set_metrics.example_f1(Ys, Ps, zero_division=zd) == pytest.approx(
            f1_score(Y, P, average="samples", zero_division=zd))
        assert set_metrics.macro_f1(Ys, Ps, labels="all", zero_division=zd) == pytest.approx(
            f1_score(Y, P, average="macro", zero_division=zd))
    present = np.flatnonzero((Y.sum(0) + P.sum(0)) > 0)  # the default: labels gold or predicted
    assert set_metrics.macro_f1(Ys, Ps) == pytest.approx(f1_score(Y, P, average="macro", labels=present))
    # predicted sets may also be given as lists of label ids
    lists = [np.flatnonzero(row) for row in P]
    assert set_metrics.micro_f1(Ys, lists) == set_metrics.micro_f1(Ys, Ps)


def test_unseen_gold_labels_are_misses():
    Y, P = random_sets(7)
    extra = np.zeros((Y.shape[0], 2), dtype=int)
    extra[3, 0] = extra[5, 1] = extra[9, 0] = 1  # gold labels the model does not know
    Y_full, P_full = np.hstack([Y, extra]), np.hstack([P, np.zeros_like(extra)])
    n_gold = Y.sum(1) + extra.sum(1)
    Ys, Ps = sp.csr_matrix(Y), sp.csr_matrix(P)
    assert set_metrics.micro_f1(Ys, Ps, n_gold) == pytest.approx(f1_score(Y_full, P_full, average="micro"))
    assert set_metrics.recall(Ys, Ps, n_gold) == pytest.approx(recall_score(Y_full, P_full, average="micro"))
    assert set_metrics.example_f1(Ys, Ps, n_gold) == pytest.approx(
        f1_score(Y_full, P_full, average="samples", zero_division=0))
    present = np.flatnonzero((Y_full.sum(0) + P_full.sum(0)) > 0)
    assert set_metrics.macro_f1(Ys, Ps, n_unseen_labels=2) == pytest.approx(
        f1_score(Y_full, P_full, average="macro", labels=present))


def test_f1_by_frequency_group_restricts_the_labels():
    Y, P = random_sets(3, L=9)
    counts = np.array([0, 3, 80, 51, 50, 1, 200, 0, 7])
    groups = set_metrics.f1_by_frequency(sp.csr_matrix(Y), sp.csr_matrix(P), counts)
    for name, cols in (("frequent", counts > 50), ("few", (counts >= 1) & (counts <= 50)), ("zero", counts == 0)):
        cols = np.flatnonzero(cols)
        present = [c for c in cols if Y[:, c].sum() + P[:, c].sum() > 0]
        assert groups[name]["micro-F1"] == pytest.approx(f1_score(Y[:, cols], P[:, cols], average="micro"))
        assert groups[name]["macro-F1"] == pytest.approx(f1_score(Y, P, average="macro", labels=present))
        assert groups[name]["n_labels"] == len(present)


def test_expected_calibration_error():
    # bin [0.8, 0.9): mean score 0.85, 1 of 2 right; bin [0.2, 0.3): mean score 0.25, 0 of 2 right
    scores, correct = [0.8, 0.9 - 1e-9, 0.2, 0.3 - 1e-9], [1, 0, 0, 0]
    assert set_metrics.expected_calibration_error(scores, correct) == pytest.approx(
        0.5 * abs(0.5 - 0.85) + 0.5 * abs(0.0 - 0.25), abs=1e-6)
    rng = np.random.default_rng(0)
    s = rng.random(200_000)
    assert set_metrics.expected_calibration_error(s, rng.random(s.size) < s) < 0.01  # calibrated by construction
    assert set_metrics.expected_calibration_error(s, np.zeros(s.size)) == pytest.approx(s.mean(), abs=1e-3)
    assert np.isnan(set_metrics.expected_calibration_error([], []))


# --------------------------------------------------------------------------------------------- rules
TOP = TopK(np.array([[3, 1, 0, -1], [2, 0, 1, 3], [1, -1, -1, -1]]),
           np.array([[0.9, 0.5, 0.2, -np.inf], [0.45, 0.4, 0.1, 0.05], [0.3, -np.inf, -np.inf, -np.inf]]), n_labels=4)


@pytest.mark.parametrize("rule, expected", [
    (TopKRule(2), [[3, 1], [2, 0], [1]]),
    (ThresholdRule(0.4, depth=4), [[3, 1], [2, 0], []]),
    (ThresholdRule(0.5, depth=4, at_least_one=True), [[3, 1], [2], [1]]),
    (TopKThresholdRule(1, 0.4), [[3], [2], []]),
    (LabelThresholdRule(0.4, depth=4, k=4, n_labels=4, labels=(1, 2), thresholds=(0.25, 0.5)),
     [[3, 1], [0], [1]]),
])
def test_rules_select_and_round_trip_through_json(rule, expected):
    assert [a.tolist() for a in apply(rule, TOP)] == expected
    back = rule_from_dict(json.loads(json.dumps(rule.to_dict())))
    assert back == rule and type(back) is type(rule)
    sets = to_sets(TOP, rule)
    assert sets.to_csr().nnz == sum(map(len, expected))
    for ids, sc in zip(sets.indices, sets.scores, strict=True):
        assert np.all(np.diff(sc) <= 0) and ids.dtype == np.int32


@pytest.mark.parametrize("bad", [{"rule": "topk", "k": 0}, {"rule": "nope"}, {"rule": "threshold", "depth": 3},
                                 {"rule": "threshold", "threshold": float("nan"), "depth": 3},
                                 {"rule": "topk_threshold", "k": 2, "threshold": 0.1, "at_least_one": "yes"},
                                 {"rule": "label_thresholds", "threshold": 0.1, "depth": 3, "k": 3, "n_labels": 2,
                                  "labels": [5], "thresholds": [0.2]}, []])
def test_invalid_rules_are_refused(bad):
    with pytest.raises(XMTCError, match="decision rule"):
        rule_from_dict(bad)


# --------------------------------------------------------------------------------------------- tuning
@pytest.mark.parametrize("metric", decision.METRICS)
def test_tuned_scores_equal_the_set_metrics_of_the_applied_rule(metric):
    Y, top = random_top(1)
    result = tune(Y, top, metric, min_positives=3)
    fn = {"micro-F1": set_metrics.micro_f1, "macro-F1": set_metrics.macro_f1,
          "example-F1": set_metrics.example_f1}[metric]
    assert set(result.by_kind) == {"topk", "threshold", "topk_threshold", "label_thresholds"}
    for kind, cand in result.by_kind.items():
        assert cand.rule.kind == kind
        assert fn(Y, apply(cand.rule, top)) == pytest.approx(cand.score, abs=1e-9), kind
        assert cand.cv is not None and 0 <= cand.cv <= 1
    chosen = next(k for k, c in result.by_kind.items() if c.rule == result.rule)  # the best 2-fold score
    assert result.selected_by == "cv" and result.score == result.by_kind[chosen].score
    assert result.by_kind[chosen].cv >= max(c.cv for c in result.by_kind.values()) - 1e-12
    best_k = max(range(1, top.k + 1), key=lambda k: fn(Y, apply(TopKRule(k), top)))
    assert fn(Y, apply(result.by_kind["topk"].rule, top)) == pytest.approx(fn(Y, apply(TopKRule(best_k), top)))
    # the global threshold is at least as good as every threshold of the grid one could pick by hand
    for t in np.quantile(top.scores[top.indices >= 0], [0.5, 0.8, 0.9]):
        assert result.by_kind["threshold"].score >= fn(Y, apply(ThresholdRule(float(t), top.k), top)) - 1e-9


def test_per_label_thresholds_back_off_for_rare_labels():
    Y, top = random_top(2, n=200)
    result = tune(Y, top, "micro-F1", min_positives=30, kinds=("threshold", "label_thresholds"), select="valid")
    rule = result.by_kind["label_thresholds"].rule
    positives = np.asarray(Y.sum(axis=0)).ravel()
    assert set(rule.labels) <= set(np.flatnonzero(positives >= 30).tolist())
    assert result.by_kind["label_thresholds"].score >= result.by_kind["threshold"].score - 1e-9
    t = rule.threshold_vector()
    assert np.all(t[positives < 30] == np.float32(rule.threshold))


def test_tune_prefers_the_simpler_rule_on_ties_and_checks_its_input():
    Y = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]))
    top = TopK(np.array([[0, 1], [1, 2], [2, 0], [0, 2]]), np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3],
                                                                      [0.95, 0.05]]), n_labels=3)
    result = tune(Y, top, "micro-F1")
    assert result.rule == TopKRule(1) and result.score == pytest.approx(1.0)
    with pytest.raises(XMTCError, match="metric"):
        tune(Y, top, "F2")
    with pytest.raises(XMTCError, match="rows"):
        tune(Y[:2], top)


# --------------------------------------------------------------------------------------------- the model folder
@pytest.fixture(scope="module")
def parabel_model(tiny_data):
    import xmtc

    cls = xmtc.registry.get("parabel")
    return cls(cls.tiny_config()).fit(tiny_data[0])


def test_rule_is_saved_checksummed_and_reloaded(parabel_model, tiny_data, tmp_path):
    from xmtc.models.base import save_decision
    from xmtc.registry import load

    folder = parabel_model.save(tmp_path / "m")
    with pytest.raises(XMTCError, match="no decision rule: run xmtc tune RUN --data DIR"):
        load(folder).predict_sets(["x"])
    _, test = tiny_data
    rule = tune(test.Y, parabel_model.predict(test, k=8)).rule
    save_decision(folder, rule, {"metric": "micro-F1"})
    meta = json.loads((folder / "meta.json").read_text())
    assert "decision.json" in meta["sha256"]
    model = load(folder)
    assert model.decision_ == rule and model.decision_info_["metric"] == "micro-F1"
    texts = test.texts[:10]
    got = model.predict_sets(texts)
    want = to_sets(parabel_model.predict(texts, k=rule.depth), rule)
    assert [a.tolist() for a in got.indices] == [a.tolist() for a in want.indices]
    # a re-save keeps the rule; a changed decision.json is refused like any other model file
    model.save(tmp_path / "again")
    assert load(tmp_path / "again").decision_ == rule
    (folder / "decision.json").write_text(json.dumps(decision.decision_payload(TopKRule(8))))
    with pytest.raises(ModelLoadError, match="checksum"):
        load(folder)


# --------------------------------------------------------------------------------------------- CLI and server
def poison_test_split(root):
    """Replace the test split by bytes no reader accepts: any read of it fails loudly."""
    for name in ("test.texts.txt.gz", "test.labels.txt.gz"):
        (root / name).write_bytes(b"\x00 not gzip: the test split must never be read when tuning \x00")


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """A parabel run on a tiny dataset with a valid split, tuned by ``xmtc tune`` with the test split poisoned."""
    base = tmp_path_factory.mktemp("sets")
    data = write_tiny_dataset(base / "data", n_valid=40)
    run = base / "run"
    res = run_cli("train", "--model", "parabel", "--data", data, "--out", run, "--set", "n_trees=2")
    assert res.returncode == 0, str(res)
    clean = base / "clean"
    write_tiny_dataset(clean, n_valid=40)  # the same files, test split intact (for evaluate)
    poison_test_split(data)
    res = run_cli("tune", run, "--data", data, "--k", "8", "--json")
    assert res.returncode == 0, str(res)
    return run, data, clean, json.loads(res.stdout)


def test_tune_reads_only_the_validation_split(tuned_run):
    run, data, _, out = tuned_run
    assert out["validation"].startswith("dataset split 'valid': 40 docs")
    assert out["rule"]["rule"] in decision.RULES and out["n_docs"] == 40
    saved = json.loads((run / "model" / "decision.json").read_text())
    assert saved["rule"] == out["rule"]
    with pytest.raises(Exception):  # noqa: B017  (the poisoned split really is unreadable)
        with gzip.open(data / "test.texts.txt.gz") as fh:
            fh.read()


def test_validation_source_never_touches_test(tmp_path, monkeypatch, parabel_model):
    """In-process: every reader call is recorded; tuning a run without a valid split reads train only."""
    import xmtc.data.readers as readers
    from xmtc.cli_sets import validation_for
    from xmtc.runs import write_json

    data = write_tiny_dataset(tmp_path / "d")
    poison_test_split(data)
    read = []
    def recording(orig):
        def reader(path, *args, **kwargs):
            read.append(path.name)
            return orig(path, *args, **kwargs)
        return reader

    for fn in ("read_texts", "read_label_lines"):
        monkeypatch.setattr(readers, fn, recording(getattr(readers, fn)))
    run = tmp_path / "run"
    parabel_model.save(run / "model")
    write_json(run / "run.json", {"model": "parabel", "config": {}, "data": str(data), "valid_split": "valid"})
    with pytest.raises(XMTCError, match="no held-out documents"):
        validation_for(run, None, parabel_model)
    write_json(run / "run.json", {"model": "parabel", "config": {}, "data": str(data), "valid_split": "valid",
                                  "holdout": {"fraction": 0.25, "seed": 3, "max_docs": None}})
    valid, source, _ = validation_for(run, None, parabel_model)
    assert len(valid) == 40 and "hold-out" in source
    assert read and all(name.startswith("train.") for name in read)


def test_cli_api_and_server_give_the_same_sets(tuned_run, tmp_path):
    from xmtc.registry import load

    run, _, clean, _ = tuned_run
    model = load(run)
    texts = [line for line in gzip.open(clean / "test.texts.txt.gz", "rt").read().splitlines()[:12]]
    names = model.label_index_.names
    api = [[names[i] for i in ids] for ids in model.predict_sets(texts).indices]
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(texts) + "\n")
    res = run_cli("predict", run, "--input", inp, "--sets")
    assert res.returncode == 0, str(res)
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["labels"] for r in rows] == api
    assert all(len(r["scores"]) == len(r["labels"]) for r in rows)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmtc.serve import create_app

    with TestClient(create_app(model)) as c:
        r = c.post("/predict", json={"texts": texts, "mode": "sets"})
        assert r.status_code == 200, r.text
        assert [p["labels"] for p in r.json()["predictions"]] == api
        assert c.post("/predict", json={"texts": texts[:1], "mode": "best"}).status_code == 422


@pytest.mark.filterwarnings("ignore::xmtc.data.UnseenLabelsWarning")
def test_evaluate_reports_the_sets(tuned_run):
    from xmtc.data import load as load_data
    from xmtc.registry import load

    run, _, clean, _ = tuned_run
    res = run_cli("evaluate", run, "--data", clean, "--json")
    assert res.returncode == 0, str(res)
    sets = json.loads(res.stdout)["sets"]
    model = load(run)
    test, = load_data(clean, splits=("test",), label_index=model.label_index_)
    P = model.predict_sets(test).to_csr()
    assert sets["micro-F1"] == pytest.approx(set_metrics.micro_f1(test.Y, P, test.n_gold()))
    assert sets["example-F1"] == pytest.approx(set_metrics.example_f1(test.Y, P, test.n_gold()))
    assert set(sets["by_frequency"]) == {"frequent", "few", "zero"}
    assert sets["by_frequency"]["zero"]["n_labels"] >= 1  # the test split's label unseen in training
    res = run_cli("evaluate", run, "--data", clean)
    assert res.returncode == 0 and "label sets (" in res.stdout and "macro-F1" in res.stdout


def test_no_rule_is_a_clear_error(tmp_path, parabel_model):
    parabel_model.save(tmp_path / "m")
    inp = tmp_path / "in.txt"
    inp.write_text("some text\n")
    res = run_cli("predict", tmp_path / "m", "--input", inp, "--sets")
    assert res.returncode == 2 and "no decision rule: run xmtc tune RUN --data DIR" in res.stderr
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmtc.serve import create_app

    with TestClient(create_app(parabel_model)) as c:
        r = c.post("/predict", json={"texts": ["some text"], "mode": "sets"})
        assert r.status_code == 400 and "no decision rule" in r.json()["detail"]


def test_train_tune_holds_out_train_when_there_is_no_valid_split(tmp_path):
    data = write_tiny_dataset(tmp_path / "d")
    run = tmp_path / "run"
    res = run_cli("train", "--model", "parabel", "--data", data, "--out", run, "--set", "n_trees=2", "--tune")
    assert res.returncode == 0, str(res)
    info = json.loads((run / "run.json").read_text())
    assert info["holdout"]["fraction"] == 0.1 and info["n_train"] == 144
    tuning = json.loads((run / "model" / "decision.json").read_text())["tuning"]
    assert tuning["n_docs"] == 16 and "hold-out" in tuning["validation"]
    assert "label sets (" in res.stdout
    report = json.loads((run / "test_report.json").read_text())
    assert "micro-F1" in report["sets"]
    poison_test_split(data)
    res = run_cli("tune", run, "--metric", "macro-F1", "--json")  # the recorded hold-out again, test unread
    assert res.returncode == 0, str(res)
    out = json.loads(res.stdout)
    assert out["n_docs"] == 16 and out["metric"] == "macro-F1"


def test_tune_decoding_chooses_beam_and_gamma_of_a_tree_model_on_validation(tmp_path, tuned_run):
    data = write_tiny_dataset(tmp_path / "data", n_valid=40)
    run = tmp_path / "ax"
    tiny = ["tree=true", "cluster_size=2", "tree_top=2", "candidates=2", "beam=1", "level_epochs=[4,4]",
            "emb_dim=16", "w2v_epochs=1", "hidden=16", "fc=[16]", "batch_size=16", "lr=2e-2", "max_len=64",
            "progress=false", "threads=1"]
    res = run_cli("train", "--model", "attentionxml", "--data", data, "--out", run, "--set", *tiny)
    assert res.returncode == 0, str(res)
    poison_test_split(data)
    res = run_cli("tune", run, "--decoding", "--beams", "1,2,3", "--json")
    assert res.returncode == 0, str(res)
    out = json.loads(res.stdout)
    assert out["validation"].startswith("dataset split 'valid': 40 docs") and out["n_docs"] == 40
    assert set(out["scores"]) == {f"beam={b} gamma={g}" for b in (1, 2, 3) for g in (1.0, 0.5, 0.25, 0.0)}
    assert out["scores"][f"beam={out['beam']} gamma={out['level_gamma']}"] == max(out["scores"].values())
    from xmtc.registry import load

    model = load(run / "model")  # saved: the reloaded model decodes with the chosen pair
    assert (model.beam_, model.gamma_) == (out["beam"], out["level_gamma"])
    res = run_cli("tune", run, "--decoding", "--beams", "2,x")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("error: --beams must be")
    parabel_run = tuned_run[0]  # a model without a neural tree search: one error line, not a traceback
    res = run_cli("tune", parabel_run, "--decoding")
    assert res.returncode == 2 and "does not search a label tree" in res.stderr and "Traceback" not in res.stderr
