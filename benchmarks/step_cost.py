"""CPU cost of one AttentionXML (or TReaderXML) training step per configuration, on synthetic EURLEX57K-shaped batches.

    python benchmarks/step_cost.py [--model attentionxml] [--labels 4271] [--threads 1] [--steps 6] [--out FILE.json]

It answers two questions of the deep-core recipe (issue 14) without a full training run:

* flat vs tree: the cost of one step of a flat network over all ``--labels`` labels, against the steps of the
  two levels of the ``fast`` tree (256 cluster nodes at the top, ~C*M + R candidates at the leaves);
* what the speed options save: bf16 autocast, a frozen shared encoder at the leaf level (``share_encoder``),
  frozen word vectors (``freeze_embeddings``).

Each row is the median over ``--steps`` steps (after one warm-up step) of the process CPU seconds
(``time.process_time``, all threads) and wall seconds of forward + backward + Adam step, batch 64 x 256 tokens,
``fast`` sizes (BiLSTM 96 per direction, FC 128, 100-d vectors, 50k vocabulary). CPU seconds, not wall seconds,
so a busy machine distorts the figures less; they are still a micro-benchmark, not an epoch.

``--model treaderxml``: one step of a TReaderNet with the defaults (100-d vectors, configuration 6's Reading
stack, bottleneck 256, 4 heads) over all ``--labels`` labels, batch 32 x 256 tokens, fp32 and bf16, with the
teacher branch (``--teacher-items`` items of 4 words per document, EURLEX57K's ~40) and without it;
``--pooling label_attention`` times the label-attention Prediction instead of the mean pooling. The cases of
each model are run ``--rounds`` times, interleaved, and the median is kept, so drift in the machine's load hits
every case alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import loop_adam, machine_info, with_env, write_json  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402


def timed_steps(forward, opt: torch.optim.Optimizer, *, bf16: bool, steps: int) -> dict[str, float]:
    """Median CPU and wall seconds of ``steps`` training steps (after one warm-up): ``forward()`` under bf16
    autocast when asked, BCE against zeros, backward, ``opt.step()``."""
    cpu, wall = [], []
    for _ in range(steps + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward().float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_s": float(np.median(cpu[1:])), "wall_s": float(np.median(wall[1:]))}


def step_cost(n_labels: int, candidates: int, *, bf16: bool, frozen_encoder: bool, freeze_embeddings: bool,
              steps: int, batch: int = 64, seq: int = 256, seed: int = 0) -> dict[str, float]:
    """Median CPU and wall seconds of one training step of an AttentionNet (``candidates=0``: all labels)."""
    from xmtc.models.attentionxml import AttentionXMLConfig
    from xmtc.models.attentionxml.network import AttentionNet

    torch.manual_seed(seed)
    cfg = AttentionXMLConfig(preset="fast", freeze_embeddings=freeze_embeddings)
    vectors = np.random.default_rng(seed).standard_normal((cfg.vocab_size, cfg.emb_dim)).astype(np.float32)
    net = AttentionNet(vectors, n_labels, cfg)
    if frozen_encoder:
        net.share_encoder_of(AttentionNet(vectors, 8, cfg))
    params = [p for p in net.parameters() if p.requires_grad and not (
        frozen_encoder and any(p is q for q in [*net.emb.parameters(), *net.encoder.parameters()]))]
    opt = loop_adam(params, lr=1e-3)
    ids = torch.randint(2, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.bool)
    cand = torch.randint(0, n_labels, (batch, candidates)) if candidates else None
    return timed_steps(lambda: net(ids, mask, cand), opt, bf16=bf16, steps=steps)


def treaderxml_step_cost(n_labels: int, *, bf16: bool, teacher: bool, items: int, steps: int, batch: int = 32,
                         seq: int = 256, seed: int = 0, pooling: str = "mean") -> dict[str, float]:
    """Median CPU and wall seconds of one training step of a TReaderNet over all ``n_labels`` labels."""
    from xmtc.models.treaderxml.config import TReaderXMLConfig
    from xmtc.models.treaderxml.network import TReaderNet
    from xmtc.models.treaderxml.teacher import TeacherBatch

    torch.manual_seed(seed)
    cfg = TReaderXMLConfig(teacher=teacher, pooling=pooling)
    g = np.random.default_rng(seed)
    vectors = g.standard_normal((50_000, cfg.emb_dim)).astype(np.float32)
    net = TReaderNet(vectors, n_labels, cfg)
    opt = loop_adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(2, len(vectors), (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.bool)
    tb, prior = None, None
    if teacher:
        distinct, words = batch * items // 2, 4  # neighbours share labels: about half the items are repeats
        tb = TeacherBatch(tokens=torch.randint(2, len(vectors), (distinct * words,)),
                          offsets=torch.arange(0, distinct * words, words),
                          weights=torch.full((distinct * words,), 1.0 / words),
                          slots=torch.randint(0, distinct, (batch, items)))
        prior = torch.zeros(batch, n_labels)
        prior[:, :items] = 0.1
    return timed_steps(lambda: net(ids, mask, tb, None, prior), opt, bf16=bf16, steps=steps)


def _treaderxml_rows(args) -> list[dict]:
    cases = [(f"{'teacher' if t else 'no teacher'}, {'bf16' if b else 'fp32'}", t, b)
             for t in (True, False) for b in (False, True)]
    costs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):
        for name, teacher, bf16 in cases:
            costs[name].append(treaderxml_step_cost(args.labels, bf16=bf16, teacher=teacher, items=args.teacher_items,
                                                    steps=args.steps, seq=args.seq, pooling=args.pooling))
    rows = []
    for name, teacher, bf16 in cases:
        cpu = float(np.median([c["cpu_s"] for c in costs[name]]))
        wall = float(np.median([c["wall_s"] for c in costs[name]]))
        row = make_row(f"treaderxml step: {name}", "single", "synthetic", n_train=None, n_test=None, seed=0)
        row.update(step_cpu_s=round(cpu, 4), step_wall_s=round(wall, 4), labels=args.labels, teacher=teacher,
                   teacher_items=args.teacher_items if teacher else 0, bf16=bf16, threads=args.threads,
                   rounds=args.rounds, batch=32, seq=args.seq, pooling=args.pooling)
        rows.append(row)
        print(f"{name:24s} cpu {cpu:.3f} s  wall {wall:.3f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("attentionxml", "treaderxml"), default="attentionxml")
    p.add_argument("--teacher-items", type=int, default=40, help="treaderxml: teacher items per document")
    p.add_argument("--seq", type=int, default=256, help="treaderxml: tokens per document")
    p.add_argument("--pooling", choices=("mean", "label_attention"), default="mean",
                   help="treaderxml: the Prediction's pooling (config field 'pooling')")
    p.add_argument("--rounds", type=int, default=1, help="repeat the cases, interleaved; keep the median")
    p.add_argument("--labels", type=int, default=4271, help="labels of the flat network (EURLEX57K: 4,271)")
    p.add_argument("--top", type=int, default=256, help="nodes of the tree's top level (fast: ~L/16.7)")
    p.add_argument("--leaf-candidates", type=int, default=200, help="leaf candidates (C=12 clusters x ~16.7)")
    p.add_argument("--random-negatives", type=int, default=100, help="random labels added at the leaves")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model == "treaderxml":
        _write(args, argv, _treaderxml_rows(args))
        return
    leaf = args.leaf_candidates + args.random_negatives
    cases = [  # (row name, labels, candidates, bf16, frozen encoder, frozen vectors)
        ("flat, all labels, fp32", args.labels, 0, False, False, False),
        ("flat, all labels, bf16", args.labels, 0, True, False, False),
        ("tree level 1 (top nodes), fp32", args.top, 0, False, False, False),
        ("tree level 1 (top nodes), bf16", args.top, 0, True, False, False),
        ("tree leaf level, fp32", args.labels, leaf, False, False, False),
        ("tree leaf level, bf16", args.labels, leaf, True, False, False),
        ("tree leaf level, bf16, frozen vectors", args.labels, leaf, True, False, True),
        ("tree leaf level, bf16, shared frozen encoder", args.labels, leaf, True, True, False),
    ]
    rows = []
    for name, n_labels, cand, bf16, frozen, freeze_emb in cases:
        cost = step_cost(n_labels, cand, bf16=bf16, frozen_encoder=frozen, freeze_embeddings=freeze_emb,
                         steps=args.steps)
        row = make_row(f"attentionxml step: {name}", "single", "synthetic", n_train=None, n_test=None, seed=0)
        row.update(step_cpu_s=round(cost["cpu_s"], 4), step_wall_s=round(cost["wall_s"], 4), labels=n_labels,
                   candidates=cand, bf16=bf16, threads=args.threads)
        rows.append(row)
        print(f"{name:48s} cpu {cost['cpu_s']:.3f} s  wall {cost['wall_s']:.3f} s", flush=True)
    _write(args, argv, rows)


def _write(args, argv: list[str] | None, rows: list[dict]) -> None:
    if args.out:
        write_json(args.out, {"command": with_env("python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])),
                              "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
