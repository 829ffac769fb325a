"""Data-parallel training on torchrun (issue 17): 2 gloo processes on CPU, one thread each, on the tiny task.

One launch (``tests/dist_worker.py`` -> the real ``xmtc train`` then ``xmtc predict`` under torchrun) serves the
end-to-end tests; the unit tests check batch sharding, the rank-0 state broadcast format and the refusals
without starting processes. The kill-and-resume test starts two more launches and is marked ``slow``.

Tolerance: the 2-rank run (batch 8 per rank) and a 1-process run with the same global batch (16) do not see
the same batches, so their best validation P@1 (40 documents) may differ; they must agree within
``P1_TOLERANCE`` = 0.1 (4 documents), and both must have learned the task (>= 0.8; the most frequent label
alone gives 0.625).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, cli_env, make_tiny_corpus, write_tiny_dataset

from xmtc.errors import ConfigError
from xmtc.train import distributed

P1_TOLERANCE = 0.1
BATCH = 8  # per rank; the 1-process comparison uses 2 * BATCH
TINY = ["emb_dim=16", "w2v_epochs=1", "n_filters=8", "chunks=2", "bottleneck=32", "epochs=8", "lr=2e-2",
        "dropout=0.1", "emb_dropout=0.0", "max_len=64", "patience=0", "progress=false", "device=cpu",
        "threads=1"]


def torchrun(*args: str, env: dict[str, str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 ARGS`` (a free port per launch), one thread per process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    full_env = {**cli_env(), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO)


def _shown(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--model", "xmlcnn", "--data", str(data), "--out", str(out), "--no-test",
            "--set", f"batch_size={BATCH}", *TINY]


def _state_files(folder: Path) -> dict[str, bytes]:
    """Every file under a model folder but the meta.json files (they record the time of saving)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "meta.json"}


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """One 2-rank launch: ``xmtc train`` (each rank also saves what it trained), then a sharded ``xmtc predict``."""
    root = tmp_path_factory.mktemp("dist")
    data = write_tiny_dataset(root / "tiny", n_valid=40)
    texts, _ = make_tiny_corpus(21, seed=5)
    texts[3] = ""  # an empty line keeps its row
    (root / "inputs.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    run = root / "run"
    proc = torchrun(str(REPO / "tests" / "dist_worker.py"), str(root), *_train_args(data, run),
                    "--then", "predict", str(run), "--input", str(root / "inputs.txt"),
                    "--output", str(root / "preds.jsonl"), "--k", "3")
    assert proc.returncode == 0, _shown(proc)
    return {"root": root, "data": data, "run": run, "texts": texts, "proc": proc}


# --------------------------------------------------------------------------------------------- 2 ranks
def test_two_ranks_train_the_same_weights(launch):
    run, root = launch["run"], launch["root"]
    rank0, rank1 = _state_files(root / "rank0" / "0"), _state_files(root / "rank1" / "0")
    assert rank0 == rank1  # weights, vocabulary, state: bit-identical on both ranks
    assert _state_files(run / "model") == rank0  # and what rank 0 saved
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["world_size"] == 2 for r in records)  # rank 0 alone wrote it
    assert records[0]["step"] == 160 // BATCH // 2  # each rank takes half of the epoch's 20 batches
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    ckpt = torch.load(run / "checkpoints" / "network.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["model"])  # the bare network, no DDP prefix


def test_model_loads_and_predicts_in_one_process(launch):
    import xmtc

    model = xmtc.load(launch["run"])
    top = model.predict(launch["texts"], k=3)
    rows = [json.loads(line) for line in (launch["root"] / "preds.jsonl").read_text().splitlines()]
    assert len(rows) == len(launch["texts"])  # the sharded predict wrote every row, in input order
    names = model.label_index_.names
    for row, ids, scores in zip(rows, top.indices, top.scores, strict=True):
        assert row["labels"] == [names[i] for i in ids[ids >= 0]]
        np.testing.assert_allclose(row["scores"], scores[ids >= 0], atol=2e-6)


def test_validation_p1_close_to_one_process_with_the_same_global_batch(launch):
    from xmtc.data import load
    from xmtc.models.baselines.xmlcnn import XMLCNN

    records = [json.loads(line) for line in (launch["run"] / "metrics.jsonl").read_text().splitlines()]
    two_ranks = max(r["valid_P@1"] for r in records)
    train, valid = load(launch["data"], splits=("train", "valid"))
    cfg = XMLCNN.Config().with_overrides([f"batch_size={2 * BATCH}", *TINY])
    one = XMLCNN(cfg).fit(train, valid).train_results_["network"].best_score
    assert two_ranks >= 0.8 and one >= 0.8  # both learned (predicting the most frequent label gives 0.625)
    assert abs(two_ranks - one) <= P1_TOLERANCE, (two_ranks, one)


@pytest.mark.slow
def test_killed_rank_then_resume_finishes_with_the_same_weights(launch, tmp_path):
    run = tmp_path / "run"
    killed = torchrun("-m", "xmtc", *_train_args(launch["data"], run),
                      env={distributed.TEST_EXIT_ENV: "1:3"})  # rank 1 dies after epoch 3
    assert killed.returncode != 0, _shown(killed)
    ckpt = torch.load(run / "checkpoints" / "network.pt", weights_only=True)
    assert ckpt["epoch"] >= 3 and not ckpt["finished"]
    assert json.loads((run / "run.json").read_text())["status"] != "done"
    resumed = torchrun("-m", "xmtc", "train", "--model", "xmlcnn", "--out", str(run), "--resume", "--no-test")
    assert resumed.returncode == 0, _shown(resumed)
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    # the same batches, dropout and decisions as the uninterrupted run of the launch fixture
    assert _state_files(run / "model")["weights.safetensors"] == \
        _state_files(launch["run"] / "model")["weights.safetensors"]


#: Settings (besides each model's tiny_config) that reach the paths data-parallel training must cover: a 3-level
#: label tree with a frozen shared encoder (unused parameters in DDP), cross-fitted Parabel shortlists.
EXTRA = {"attentionxml": ["tree=true", "cluster_size=2", "tree_top=2", "share_encoder=true"],
         "maacf": ["shortlist=parabel", "shortlist_size=4", "rank_loss=listwise"],
         "lightattention": [], "treaderxml": [], "xmlrnn": [], "xmlcnn": []}


def _tiny_sets(name: str) -> list[str]:
    """``key=value`` pairs of the fields where ``name``'s tiny_config differs from its defaults."""
    from xmtc import registry

    cls = registry.get(name)
    tiny, default = cls.tiny_config().to_dict(), cls.Config().to_dict()
    return [f"{k}={json.dumps(v)}" for k, v in tiny.items() if v != default.get(k)] + ["epochs=3", *EXTRA[name]]


@pytest.mark.slow
def test_every_deep_model_trains_data_parallel_with_identical_ranks(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny", n_valid=40)
    names = list(EXTRA)
    args: list[str] = []
    for i, name in enumerate(names):
        args += [*(["--then"] if i else []), "train", "--model", name, "--data", str(data), "--out",
                 str(tmp_path / name), "--no-test", "--set", *_tiny_sets(name)]
    proc = torchrun(str(REPO / "tests" / "dist_worker.py"), str(tmp_path), *args, timeout=1800)
    assert proc.returncode == 0, _shown(proc)
    import xmtc

    texts, _ = make_tiny_corpus(8, seed=9)
    for i, name in enumerate(names):
        rank0 = _state_files(tmp_path / "rank0" / str(i))
        assert rank0 == _state_files(tmp_path / "rank1" / str(i)), name  # bit-identical on both ranks
        assert rank0["weights.safetensors"] == _state_files(tmp_path / name / "model")["weights.safetensors"]
        top = xmtc.load(tmp_path / name).predict(texts, k=2)  # loads and predicts in one process
        assert (top.indices[:, 0] >= 0).all(), name


# --------------------------------------------------------------------------------------------- no processes
def _batches(epoch: int, n: int = 203, bs: int = 8) -> list[np.ndarray]:
    from xmtc.text import bucket_batches
    from xmtc.train import epoch_rng

    lengths = np.random.default_rng(1).integers(1, 90, size=n)
    return bucket_batches(lengths, bs, epoch_rng(0, epoch))


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shards_are_disjoint_cover_the_batches_and_are_deterministic(world):
    batches = _batches(epoch=2)
    shards = [distributed.shard(batches, r, world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # the same number of steps on every rank
    kept = len(batches) - len(batches) % world
    assert sum(len(s) for s in shards) == kept
    seen = [tuple(b) for s in shards for b in s]
    assert sorted(seen) == sorted(tuple(b) for b in batches[:kept])  # all batches but the dropped tail ...
    docs = np.concatenate([b for s in shards for b in s])
    assert len(docs) == len(set(docs.tolist()))  # ... and no document on two ranks
    again = [distributed.shard(_batches(epoch=2), r, world) for r in range(world)]
    assert all(np.array_equal(a, b) for s, t in zip(shards, again, strict=True) for a, b in zip(s, t, strict=True))
    other = distributed.shard(_batches(epoch=3), 0, world)
    assert any(not np.array_equal(a, b) for a, b in zip(shards[0], other, strict=False))  # a new epoch reshuffles


def test_one_process_keeps_every_batch_and_too_few_batches_are_refused():
    batches = _batches(epoch=0)
    assert distributed.shard(batches, 0, 1) == batches
    with pytest.raises(ConfigError, match="fewer than the 4 processes"):
        distributed.shard(batches[:3], 0, 4)


def test_train_batches_shard_under_a_launcher(monkeypatch, tiny_data):
    from xmtc.models.baselines.xmlcnn import XMLCNN
    from xmtc.text import Vocab

    model = XMLCNN(XMLCNN.tiny_config())
    model._setup_runtime()
    model.vocab_ = Vocab.build(model._tokenize(tiny_data[0].texts))
    enc = model.encode(tiny_data[0].texts, tiny_data[0].Y)
    full = [b.rows for b in model.train_batches(enc, 1)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    parts = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert distributed.is_distributed() and distributed.get_rank() == rank
        parts.append([b.rows for b in model.train_batches(enc, 1)])
    assert [tuple(r) for r in parts[0]] == [tuple(r) for r in full[: len(full) // 2 * 2][0::2]]
    assert [tuple(r) for r in parts[1]] == [tuple(r) for r in full[: len(full) // 2 * 2][1::2]]


def test_sparse_gradients_are_refused_under_a_launcher(monkeypatch):
    from xmtc.train import TrainConfig, train_loop

    net = torch.nn.Embedding(10, 4, sparse=True)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="sparse_grad=false"):
        train_loop(net, cfg=TrainConfig(epochs=1, progress=False), batches=lambda e: [torch.tensor([1])],
                   loss=lambda m, b: m(b).sum())


def test_shared_state_round_trips_without_pickle():
    import scipy.sparse as sp

    from xmtc.train.state_codec import pack_state, unpack_state

    values = {"vectors": np.arange(12, dtype=np.float32).reshape(3, 4), "tokens": ["<pad>", "<unk>", "ünï"],
              "Y": sp.csr_matrix(np.eye(3, dtype=np.float32)), "none": None, "n": 7}
    back = unpack_state(pack_state(values))
    assert back["tokens"] == values["tokens"] and back["none"] is None and back["n"] == 7
    np.testing.assert_array_equal(back["vectors"], values["vectors"])
    assert back["vectors"].dtype == np.float32
    assert (back["Y"] != values["Y"]).nnz == 0
    assert distributed.share(lambda: values) is values  # one process: build() itself, nothing packed


def test_nothing_changes_without_a_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.get_world_size() == 1 and distributed.is_main()
    assert distributed.init("cpu") is False and not torch.distributed.is_initialized()
    assert distributed.device_name("auto") == "auto"
    assert distributed.shard_range(10) == (0, 10)
    assert [distributed.shard_range(10, r, 3) for r in range(3)] == [(0, 3), (3, 7), (7, 10)]
    assert os.environ.get(distributed.TEST_EXIT_ENV) is None
