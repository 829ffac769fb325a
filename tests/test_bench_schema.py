"""Every result file in benchmarks/results/ is in the one result schema (benchmarks/schema.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import schema  # noqa: E402
from benchmarks.table import main as table_main  # noqa: E402

RESULTS = sorted((REPO / "benchmarks" / "results").rglob("*.json"))


def test_results_folder_has_files():
    assert len(RESULTS) > 40


@pytest.mark.parametrize("path", RESULTS, ids=[str(p.relative_to(REPO / "benchmarks" / "results")) for p in RESULTS])
def test_result_file_in_schema(path):
    assert schema.validate(json.loads(path.read_text(encoding="utf-8"))) == []


def _file(**row_fields):
    row = schema.make_row("parabel", "single", "tiny", n_train=10, n_test=5, seed=0, **row_fields)
    return {"command": "python -m benchmarks.run ...", "date": "2026-11-22", "machine": None, "rows": [row]}


def test_make_row_orders_required_keys_and_fills_nulls():
    row = schema.make_row("m", "peer", "d", **{"P@1": 50.0, "nDCG@3": 40.0}, extra=1)
    assert list(row)[: len(schema.ROW_KEYS)] == list(schema.ROW_KEYS)
    assert row["P@3"] is None and row["nDCG@3"] == 40.0 and row["extra"] == 1
    assert schema.validate(_file(**{"P@1": 50.0})) == []


def test_validate_reports_problems():
    assert any("fractions" in e for e in schema.validate(_file(**{k: 0.5 for k in schema.METRICS})))
    assert any("percent" in e for e in schema.validate(_file(**{"P@1": 150.0})))
    bad = _file()
    bad["rows"][0]["kind"] = "deep"
    del bad["rows"][0]["seed"]
    del bad["machine"]
    errors = schema.validate(bad)
    assert any("kind" in e for e in errors) and any("'seed'" in e for e in errors)
    assert any("'machine'" in e for e in errors)
    assert schema.validate({"command": "x", "date": "today", "machine": None, "rows": []})


def test_table_reader(tmp_path, capsys):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(_file(**{"P@1": 61.234, "train_s": 12.3})))
    assert table_main([str(a), str(REPO / "benchmarks" / "results" / "peers_goemotions.json")]) == 0
    out = capsys.readouterr().out
    assert "| model |" in out and "| 61.23 |" in out and "omikuji-bonsai" in out and "| 57.79 |" in out
    assert table_main([str(a), "--columns", "model,P@1,file"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| model | P@1 | file |" and lines[2] == "| parabel | 61.23 | a.json |"


def test_table_stages_gives_cpu_seconds_per_epoch_and_best_valid(tmp_path, capsys):
    obj = _file(**{"P@1": 50.0})
    obj["runs"] = [{"label": "ax fast", "stages": {
        "level-1": {"epochs_run": 4, "best_epoch": 3, "best_valid": 0.8125, "stage_cpu_s": 100.0, "stage_wall_s": 90.0},
        "level-2": {"epochs_run": 2, "best_epoch": 2, "best_valid": 0.5, "stage_cpu_s": 30.0}}}]
    a = tmp_path / "a.json"
    a.write_text(json.dumps(obj))
    assert table_main([str(a), "--stages", "--columns", "model,stage,best_valid,cpu_s_per_epoch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2:] == ["| ax fast | level-1 | 81.25 | 25.0 |", "| ax fast | level-2 | 50.00 | 15.0 |"]


def test_table_stages_divides_a_resumed_stage_by_the_epochs_it_trained(tmp_path, capsys):
    """A --resume run's stage CPU covers only the epochs after its checkpoint; older files without
    ``epochs_resumed`` from a --resume command get no per-epoch figure rather than a wrong one."""
    stage = {"epochs_run": 8, "best_epoch": 8, "best_valid": 0.79, "stage_cpu_s": 400.0}
    new, old = _file(**{"P@1": 50.0}), _file(**{"P@1": 50.0})
    new["runs"] = [{"label": "la", "stages": {"network": {**stage, "epochs_resumed": 7}}}]
    old["runs"] = [{"label": "la", "stages": {"network": stage}}]
    old["command"] = "python -m benchmarks.run --run lightattention epochs=8 --run-dir x --resume"
    (tmp_path / "new.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert table_main([str(tmp_path / "new.json"), str(tmp_path / "old.json"), "--stages",
                       "--columns", "file,epochs_run,cpu_s_per_epoch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2:] == ["| new.json | 8 | 400.0 |", "| old.json | 8 |  |"]


def test_table_fusion_gives_the_weight_chosen_on_validation_and_both_ends(tmp_path, capsys):
    obj = _file(**{"P@1": 50.0})
    obj["runs"] = [
        {"label": "maacf", "stats_valid": {"fusion_weight": "4.0", "fusion_validation": {
            "0.0": [86.1, 81.5], "1.0": [87.0, 83.0], "4.0": [87.65, 84.0], "inf": [85.6, 83.4]}}},
        {"label": "treaderxml", "stats_valid": {"teacher_fusion_weight": "inf",
                                                "teacher_fusion_validation": {"0.0": [90.0], "inf": [90.5]}}},
        {"label": "xmlcnn", "stats_valid": {"fusion_weight": "0.0"}}]  # no fusion was scored: no row
    a = tmp_path / "a.json"
    a.write_text(json.dumps(obj))
    assert table_main([str(a), "--fusion"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| model | fusion | weight | valid_w0 | valid_chosen | valid_inf | file |"
    assert lines[2:] == ["| maacf | shortlist | 4.0 | 86.10 | 87.65 | 85.60 | a.json |",
                         "| treaderxml | teacher | inf | 90.00 | 90.50 | 90.50 | a.json |"]
