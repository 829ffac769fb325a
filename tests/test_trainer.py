"""The one training loop: early stopping, lr schedule, SWA, metrics.jsonl and kill -9 / resume exactness."""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xmtc.errors import XMTCError
from xmtc.train import TrainConfig, epoch_rng, lr_at, train_loop

N_DOCS, N_FEATURES, N_LABELS, BATCH = 48, 6, 3, 8


def _toy_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.normal(size=(N_DOCS, N_FEATURES)).astype(np.float32))  # (n, f)
    W = torch.from_numpy(rng.normal(size=(N_FEATURES, N_LABELS)).astype(np.float32))
    Y = (X @ W > 0).float()  # (n, L)
    return X, Y


def _toy_module(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, 8), nn.ReLU(), nn.Linear(8, N_LABELS))


def _pieces(cfg: TrainConfig):
    X, Y = _toy_problem()

    def batches(epoch: int):
        order = epoch_rng(cfg.seed, epoch).permutation(N_DOCS)
        return [order[i:i + BATCH] for i in range(0, N_DOCS, BATCH)]

    def loss(module: nn.Module, rows) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(module(X[rows]), Y[rows])

    return batches, loss


def _cfg(**changes) -> TrainConfig:
    base = {"seed": 1, "epochs": 4, "batch_size": BATCH, "lr": 0.05, "progress": False, "device": "cpu",
            "patience": 0}
    return TrainConfig.from_dict({**base, **changes})


class ScriptedEval:
    """Returns scripted validation scores and snapshots the weights seen at each evaluation."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def __call__(self, module: nn.Module) -> float:
        assert not module.training and not torch.is_grad_enabled()
        self.snapshots.append({k: v.detach().clone() for k, v in module.state_dict().items()})
        return self.scores[len(self.snapshots) - 1]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_restores_best_weights(tmp_path):
    cfg = _cfg(epochs=10, patience=2)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    ev = ScriptedEval([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    result = train_loop(module, cfg=cfg, batches=batches, loss=loss, evaluate=ev, run_dir=tmp_path, tag="t")
    assert len(ev.snapshots) == 4  # epochs 3 and 4 did not improve -> stop after epoch 4
    assert result.stopped_early and result.epochs_run == 4
    assert result.best_epoch == 2 and result.best_score == pytest.approx(0.5)
    assert _same(module.state_dict(), ev.snapshots[1])
    assert not _same(module.state_dict(), ev.snapshots[3])


def test_without_evaluate_keeps_last_weights():
    cfg = _cfg(epochs=2)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    result = train_loop(module, cfg=cfg, batches=batches, loss=loss)
    assert result.epochs_run == 2 and result.steps == 2 * math.ceil(N_DOCS / BATCH)
    assert not result.stopped_early


def test_training_reduces_loss():
    cfg = _cfg(epochs=5)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    X, Y = _toy_problem()
    with torch.no_grad():
        before = nn.functional.binary_cross_entropy_with_logits(module(X), Y).item()
    train_loop(module, cfg=cfg, batches=batches, loss=loss)
    with torch.no_grad():
        after = nn.functional.binary_cross_entropy_with_logits(module(X), Y).item()
    assert after < 0.8 * before


def _raw_epoch_weights(epochs: int) -> list[dict[str, torch.Tensor]]:
    """Weights at the end of each epoch of a run without SWA (SWA never changes the raw trajectory)."""
    cfg = _cfg(epochs=epochs)
    batches, loss = _pieces(cfg)
    ev = ScriptedEval([0.0] * epochs)
    train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ev)
    return ev.snapshots


def _mean(states):
    return {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}


def test_swa_evaluates_and_keeps_the_averaged_weights():
    raw = _raw_epoch_weights(4)
    cfg = _cfg(epochs=4, swa=True, swa_start=2)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    ev = ScriptedEval([0.1, 0.2, 0.3, 0.4])
    train_loop(module, cfg=cfg, batches=batches, loss=loss, evaluate=ev)
    assert _same(ev.snapshots[0], raw[0])  # before swa_start validation sees the raw weights
    for e in range(1, 4):  # from swa_start on it sees the running average of epochs 2..e+1
        expected = _mean(raw[1:e + 1])
        for key in expected:
            torch.testing.assert_close(ev.snapshots[e][key], expected[key], rtol=1e-5, atol=1e-6)
    final = module.state_dict()  # the best evaluation (the last here) is what the run keeps
    for key in final:
        torch.testing.assert_close(final[key], _mean(raw[1:])[key], rtol=1e-5, atol=1e-6)


def test_swa_keeps_the_best_evaluation_not_the_last_average():
    raw = _raw_epoch_weights(4)
    cfg = _cfg(epochs=4, swa=True, swa_start=2)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    ev = ScriptedEval([0.1, 0.2, 0.9, 0.4])  # the average of epochs 2-3 validates best
    train_loop(module, cfg=cfg, batches=batches, loss=loss, evaluate=ev)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, _mean(raw[1:3])[key], rtol=1e-5, atol=1e-6)


def test_swa_auto_start_begins_at_the_first_validation_plateau():
    raw = _raw_epoch_weights(5)
    cfg = _cfg(epochs=5, swa=True, swa_start=0)  # 0 = auto
    batches, loss = _pieces(cfg)
    module = _toy_module()
    ev = ScriptedEval([0.1, 0.3, 0.2, 0.5, 0.4])  # epoch 3 is the first that does not improve
    train_loop(module, cfg=cfg, batches=batches, loss=loss, evaluate=ev)
    for e in range(3):  # up to and including the plateau, validation sees the raw weights
        assert _same(ev.snapshots[e], raw[e])
    for e in (3, 4):  # then the average seeded at the plateau (epoch 3) and updated at each epoch's end
        expected = _mean(raw[2:e + 1])
        for key in expected:
            torch.testing.assert_close(ev.snapshots[e][key], expected[key], rtol=1e-5, atol=1e-6)
    for key, value in module.state_dict().items():  # the best evaluation: the average of epochs 3-4
        torch.testing.assert_close(value, _mean(raw[2:4])[key], rtol=1e-5, atol=1e-6)


def test_swa_auto_start_resets_patience_at_the_plateau():
    cfg = _cfg(epochs=6, swa=True, swa_start=0, patience=2)
    batches, loss = _pieces(cfg)
    ev = ScriptedEval([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])  # every evaluation after the first is worse
    result = train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ev)
    assert result.epochs_run == 4  # the plateau (epoch 2) starts SWA, then 2 bad averaged evaluations stop it


def test_progress_prints_one_summary_line_per_epoch_with_the_validation_score(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    cfg = _cfg(epochs=4, progress=True, patience=2, select_metric="nDCG@5")
    batches, loss = _pieces(cfg)
    train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ScriptedEval([0.5, 0.25, 0.125, 0.9]),
               tag="level-1")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ": train loss " in ln]
    assert len(lines) == 3  # patience 2 stops after epoch 3
    assert lines[0].startswith("level-1 epoch 1/4: train loss ")
    assert "valid nDCG@5 50.00 (best 50.00)" in lines[0]
    assert "valid nDCG@5 12.50 (best 50.00)" in lines[2] and lines[2].endswith("; early stop")
    assert not any("\r" in ln for ln in lines)


def test_no_progress_prints_nothing(capsys):
    cfg = _cfg(epochs=2)
    batches, loss = _pieces(cfg)
    train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ScriptedEval([0.5, 0.6]))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_swa_every_n_steps_without_evaluation_ends_with_the_average():
    def run(epochs: int, **swa):
        cfg = _cfg(epochs=epochs, **swa)
        batches, loss = _pieces(cfg)
        seen: list[dict[str, torch.Tensor]] = []  # seen[i]: the weights after step i (before step i + 1)

        def recording_loss(module, rows):
            seen.append({k: v.detach().clone() for k, v in module.state_dict().items()})
            return loss(module, rows)

        module = _toy_module()
        train_loop(module, cfg=cfg, batches=batches, loss=recording_loss)
        return module, seen, len(batches(0))

    _, raw, n = run(4)  # the raw trajectory (SWA never changes it); its epoch 4 shows the weights after step 3n
    module, _, _ = run(3, swa=True, swa_start=2, swa_every=2)
    expected = _mean([raw[s] for s in range(n + 1, 3 * n + 1) if s % 2 == 0])  # every 2nd step of epochs 2-3
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)


def test_lr_at_values():
    assert lr_at(0, 100, 1.0) == 1.0
    assert lr_at(99, 100, 1.0, "constant", 0) == 1.0
    # warmup: linear from peak/warmup up to peak
    assert lr_at(0, 100, 1.0, "cosine", 10) == pytest.approx(0.1)
    assert lr_at(4, 100, 1.0, "linear", 10) == pytest.approx(0.5)
    assert lr_at(9, 100, 1.0, "linear", 10) == pytest.approx(1.0)
    # cosine: peak right after warmup, half way at the middle, 0 at the end
    assert lr_at(10, 110, 2.0, "cosine", 10) == pytest.approx(2.0)
    assert lr_at(60, 110, 2.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(110, 110, 2.0, "cosine", 10) == pytest.approx(0.0, abs=1e-12)
    # linear: straight line to 0
    assert lr_at(25, 100, 1.0, "linear") == pytest.approx(0.75)
    assert lr_at(100, 100, 1.0, "linear") == pytest.approx(0.0)
    assert lr_at(500, 100, 1.0, "linear") == pytest.approx(0.0)  # clamped past the end
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(5, 10, 1.0, "step")


def test_metrics_jsonl_records_every_epoch(tmp_path):
    cfg = _cfg(epochs=3, schedule="linear", warmup_steps=2, lr=0.01)
    batches, loss = _pieces(cfg)
    scores = [0.3, 0.2, 0.6]
    result = train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ScriptedEval(scores),
                        run_dir=tmp_path, tag="level-1")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3 and records == result.history
    steps_per_epoch = math.ceil(N_DOCS / BATCH)
    total = 3 * steps_per_epoch
    best = -math.inf
    for epoch, (rec, score) in enumerate(zip(records, scores, strict=True), start=1):
        best = max(best, score)
        assert rec["tag"] == "level-1" and rec["epoch"] == epoch
        assert rec["step"] == epoch * steps_per_epoch
        assert rec["valid_P@1"] == pytest.approx(score)
        assert rec["best"] == pytest.approx(best)
        assert rec["lr"] == pytest.approx(lr_at(rec["step"] - 1, total, 0.01, "linear", 2))
        assert rec["train_loss"] > 0 and rec["epoch_seconds"] >= 0
    assert (tmp_path / "checkpoints" / "level-1.pt").is_file()


def test_checkpoint_loads_with_weights_only(tmp_path):
    cfg = _cfg(epochs=1)
    batches, loss = _pieces(cfg)
    train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, run_dir=tmp_path, tag="t")
    ckpt = torch.load(tmp_path / "checkpoints" / "t.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["finished"] is True
    assert set(ckpt["model"]) == set(_toy_module().state_dict())


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_optimizer_steps_like_the_per_tensor_form(tmp_path, optimizer):
    """The default steps with torch's fused Adam/AdamW (recorded in the checkpoint); fused_optimizer=false
    keeps the per-tensor form, and both reach the same weights up to rounding."""
    weights, fused = {}, {}
    for on in (True, False):
        cfg = _cfg(epochs=2, optimizer=optimizer, weight_decay=0.01, fused_optimizer=on)
        batches, loss = _pieces(cfg)
        module = _toy_module()
        train_loop(module, cfg=cfg, batches=batches, loss=loss, run_dir=tmp_path / str(on), tag="t")
        ckpt = torch.load(tmp_path / str(on) / "checkpoints" / "t.pt", weights_only=True)
        fused[on] = ckpt["optimizer"]["param_groups"][0]["fused"]
        weights[on] = module.state_dict()
    assert fused == {True: True, False: None}
    assert not _same(weights[True], _toy_module().state_dict())  # it trained
    for k in weights[True]:
        torch.testing.assert_close(weights[True][k], weights[False][k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("first", [False, True])
def test_on_resume_the_run_setting_not_the_checkpoint_decides_the_fused_step(tmp_path, first):
    cfg = _cfg(epochs=1, fused_optimizer=first)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    train_loop(module, cfg=cfg, batches=batches, loss=loss, run_dir=tmp_path, tag="t")
    cfg = _cfg(epochs=2, fused_optimizer=not first)
    train_loop(module, cfg=cfg, batches=batches, loss=loss, run_dir=tmp_path, tag="t", resume=True)
    ckpt = torch.load(tmp_path / "checkpoints" / "t.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["optimizer"]["param_groups"][0]["fused"] == ((not first) or None)
    assert all(s["step"].item() == ckpt["step"] for s in ckpt["optimizer"]["state"].values())


def test_a_parameter_the_fused_kernel_cannot_step_falls_back_to_the_per_tensor_form():
    from xmtc.train.device import fusable

    assert fusable([torch.zeros(2, requires_grad=True), torch.zeros(3, dtype=torch.bfloat16)])
    assert not fusable([torch.zeros(2), torch.zeros(2, device="meta")])
    assert not fusable([])


def test_resume_of_finished_run_returns_without_training(tmp_path):
    cfg = _cfg(epochs=2)
    batches, loss = _pieces(cfg)
    module = _toy_module()
    first = train_loop(module, cfg=cfg, batches=batches, loss=loss, run_dir=tmp_path, tag="t")
    lines = (tmp_path / "metrics.jsonl").read_text()
    again = _toy_module(seed=5)
    calls = []
    second = train_loop(again, cfg=cfg, batches=batches, loss=lambda m, b: calls.append(b) or loss(m, b),
                        run_dir=tmp_path, tag="t", resume=True)
    assert not calls
    assert second.epochs_run == first.epochs_run and second.steps == first.steps
    assert _same(again.state_dict(), module.state_dict())
    assert (tmp_path / "metrics.jsonl").read_text() == lines


def test_resume_with_a_larger_budget_goes_on_like_one_longer_run(tmp_path):
    cfg2, cfg4 = _cfg(epochs=2), _cfg(epochs=4)  # constant learning rate: the budget does not change the steps
    batches, loss = _pieces(cfg4)
    straight = _toy_module()
    whole = train_loop(straight, cfg=cfg4, batches=batches, loss=loss)
    extended = _toy_module()
    train_loop(extended, cfg=cfg2, batches=batches, loss=loss, run_dir=tmp_path, tag="t")
    more = train_loop(_toy_module(seed=5), cfg=cfg4, batches=batches, loss=loss, run_dir=tmp_path, tag="t",
                      resume=True)
    assert more.epochs_run == 4 and more.steps == whole.steps
    assert (whole.epochs_resumed, more.epochs_resumed) == (0, 2), "this call trained epochs 3-4 only"
    assert [r["epoch"] for r in more.history] == [1, 2, 3, 4]
    ckpt = torch.load(tmp_path / "checkpoints" / "t.pt", weights_only=True)
    assert ckpt["finished"] is True and ckpt["epoch"] == 4
    assert _same(ckpt["model"], straight.state_dict()), "2 epochs, then 2 more = 4 epochs in one go"


def test_resume_does_not_go_on_after_early_stopping(tmp_path):
    cfg = _cfg(epochs=3, patience=1)
    batches, loss = _pieces(cfg)
    first = train_loop(_toy_module(), cfg=cfg, batches=batches, loss=loss, evaluate=ScriptedEval([0.5, 0.4, 0.3]),
                       run_dir=tmp_path, tag="t")
    assert first.epochs_run == 2 and first.stopped_early
    calls = []
    again = train_loop(_toy_module(), cfg=_cfg(epochs=6, patience=1), batches=batches,
                       loss=lambda m, b: calls.append(b) or loss(m, b), evaluate=ScriptedEval([0.9] * 6),
                       run_dir=tmp_path, tag="t", resume=True)
    assert not calls and again.epochs_run == 2, "an early-stopped run is finished whatever the budget"


def test_non_finite_loss_is_a_clear_error():
    cfg = _cfg(epochs=1)
    batches, _ = _pieces(cfg)
    module = _toy_module()

    def bad_loss(m, rows):
        return m(torch.zeros(1, N_FEATURES)).sum() * float("nan")

    with pytest.raises(XMTCError, match="loss became nan at epoch 1"):
        train_loop(module, cfg=cfg, batches=batches, loss=bad_loss)


# ----------------------------------------------------------------------------- kill -9 and resume
RESUME_SCRIPT = r'''
import sys, time
import numpy as np
import torch
from torch import nn
from xmtc.train import TrainConfig, epoch_rng, train_loop

run_dir, out, resume, sleep = sys.argv[1], sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])
torch.set_num_threads(1)
cfg = TrainConfig(seed=7, epochs=6, batch_size=8, lr=0.03, schedule="cosine", warmup_steps=3, patience=0,
                  progress=False, device="cpu")
rng = np.random.default_rng(0)
X = torch.from_numpy(rng.normal(size=(80, 12)).astype(np.float32))        # (n, f)
Y = (X @ torch.from_numpy(rng.normal(size=(12, 5)).astype(np.float32)) > 0.3).float()   # (n, L)
Xv, Yv = X[64:], Y[64:]
X, Y = X[:64], Y[:64]
torch.manual_seed(cfg.seed)
module = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 5))

def batches(epoch):
    order = epoch_rng(cfg.seed, epoch).permutation(len(X))
    return [order[i:i + cfg.batch_size] for i in range(0, len(X), cfg.batch_size)]

def loss(m, rows):
    time.sleep(sleep)
    return nn.functional.binary_cross_entropy_with_logits(m(X[rows]), Y[rows])

def evaluate(m):
    top = m(Xv).argmax(1)                                                # (n_valid,)
    return float(Yv[torch.arange(len(Xv)), top].mean()) - 1e-3 * float(
        nn.functional.binary_cross_entropy_with_logits(m(Xv), Yv))

result = train_loop(module, cfg=cfg, batches=batches, loss=loss, evaluate=evaluate, run_dir=run_dir,
                    tag="toy", resume=resume)
with torch.no_grad():
    module.eval()
    scores = module(Xv).numpy()
np.savez(out, scores=scores, best=np.array(result.best_score), steps=np.array(result.steps),
         **{"w_" + k: v.numpy() for k, v in module.state_dict().items()})
'''


def _run_script(script: Path, run_dir: Path, out: Path, resume: bool, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run_dir), str(out), "1" if resume else "0",
                             str(sleep)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_first_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``ckpt`` exists; fail if the process ends (or times out) before that."""
    deadline = time.monotonic() + timeout
    while not ckpt.is_file():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"process ended (rc={proc.returncode}) before writing {ckpt}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint {ckpt} after {timeout} s")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "toy_train.py"
    script.write_text(RESUME_SCRIPT)
    # 1) the reference: one uninterrupted run
    ref = _run_script(script, tmp_path / "ref", tmp_path / "ref.npz", resume=False, sleep=0.0)
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    # 2) the same run, slowed down and killed with SIGKILL after its first checkpoint
    run_dir = tmp_path / "killed"
    ckpt = run_dir / "checkpoints" / "toy.pt"
    proc = _run_script(script, run_dir, tmp_path / "never.npz", resume=False, sleep=0.05)
    kill_after_first_checkpoint(proc, ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert 1 <= state["epoch"] < 6 and not state["finished"], "the kill must land mid-run"
    assert not (tmp_path / "never.npz").exists()
    # 3) resume it to the end
    resumed = _run_script(script, run_dir, tmp_path / "resumed.npz", resume=True, sleep=0.0)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] == 6 and sorted(set(epochs)) == list(range(1, 7))


def _deep_model_for_cli() -> str:
    from xmtc import registry

    for name in ("attentionxml", "xmlcnn"):
        if name in registry.available():
            return name
    pytest.skip("no deep model (attentionxml or xmlcnn) registered")


def test_cli_train_killed_and_resumed_matches_uninterrupted_run(tmp_path):
    """``xmtc train`` SIGKILLed after its first checkpoint, then resumed: same model, same test report."""
    from conftest import cli_env, run_cli, write_tiny_dataset

    from xmtc import registry

    name = _deep_model_for_cli()
    data = write_tiny_dataset(tmp_path / "data", n_train=800, n_test=48)
    cfg_file = tmp_path / "cfg.json"
    registry.get(name).tiny_config().replace(epochs=6).to_json(cfg_file)
    args = ["train", "--model", name, "--data", str(data), "--config", str(cfg_file)]

    ref = run_cli(*args, "--out", tmp_path / "ref")
    assert ref.returncode == 0, str(ref)

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "xmtc", *args, "--out", str(run)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((run / "checkpoints").glob("*.pt")):
        if proc.poll() is not None:
            err = proc.stderr.read()
            pytest.fail(f"train ended (rc={proc.returncode}) before its first checkpoint:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint after 300 s")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert json.loads((run / "run.json").read_text())["status"] == "training"
    assert not (run / "model").exists()

    resumed = run_cli("train", "--model", name, "--out", run, "--resume")  # data, config: from run.json
    assert resumed.returncode == 0, str(resumed)
    reference = json.loads((tmp_path / "ref" / "test_report.json").read_text())
    assert json.loads((run / "test_report.json").read_text()) == reference
    with gzip.open(data / "test.texts.txt.gz", "rt", encoding="utf-8") as fh:
        docs = fh.read().splitlines()
    a, b = registry.load(tmp_path / "ref").predict(docs, k=5), registry.load(run).predict(docs, k=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_importing_xmtc_sets_a_passive_openmp_wait_policy():
    """Spinning OpenMP threads burn the partner core on a 2-core machine: xmtc sets PASSIVE before torch loads."""
    import subprocess
    import sys

    code = "import os; os.environ.pop('OMP_WAIT_POLICY', None); import xmtc; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", "import os, xmtc; print(os.environ['OMP_WAIT_POLICY'])"],
                          capture_output=True, text=True, env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, check=True)
    assert kept.stdout.strip() == "ACTIVE"  # a value the user set wins


def test_bf16_auto_follows_the_hardware(monkeypatch):
    from xmtc.train import device as train_device

    cpu = torch.device("cpu")
    monkeypatch.setattr(train_device, "bf16_supported", lambda device: False)
    assert isinstance(train_device.autocast(cpu, None), contextlib.nullcontext)
    monkeypatch.setattr(train_device, "bf16_supported", lambda device: True)
    assert isinstance(train_device.autocast(cpu, None), torch.autocast)
    assert isinstance(train_device.autocast(cpu, False), contextlib.nullcontext)
    cfg = TrainConfig.from_dict({"bf16": None})
    assert cfg.bf16 is None


def test_bf16_true_without_native_kernels_runs_in_fp32_with_a_warning(monkeypatch):
    """A model trained with bf16=true on a bf16 CPU must still train and predict on a CPU without bf16 kernels
    (oneDNN's LSTM has no bf16 path there and would fail)."""
    from xmtc.train import device as train_device

    cpu = torch.device("cpu")
    monkeypatch.setattr(train_device, "bf16_supported", lambda device: False)
    train_device._warn_no_bf16.cache_clear()
    with pytest.warns(RuntimeWarning, match="no native bf16 kernels"):
        ctx = train_device.autocast(cpu, True)
    assert isinstance(ctx, contextlib.nullcontext)
    lstm = torch.nn.LSTM(4, 3, batch_first=True)
    with train_device.autocast(cpu, True):  # warned once; fp32 LSTM works
        assert lstm(torch.randn(2, 5, 4))[0].dtype == torch.float32
