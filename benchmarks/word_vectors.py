"""Coverage and cost of the named offline word vectors (``embeddings=glove-6b-50d | minilm-static``).

    python benchmarks/word_vectors.py --data ../shared/data/eurlex57k [--docs 2000] [--seed 0] [--threads 1]
        [--out FILE.json]

Builds the vocabulary of a seeded random sample of ``--docs`` training documents (``xmtc.text`` tokenizer,
``min_count=1``), loads each named vector set for it with :func:`xmtc.text.pretrained.load_pretrained` and
records the share of vocabulary words with a vector, the share of token occurrences they cover, and the wall
and process-CPU seconds of the load (for ``minilm-static``: the distillation, one forward pass per word).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import machine_info, write_json  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--docs", type=int, default=2000, help="seeded random sample of training documents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--names", nargs="+", default=["glove-6b-50d", "minilm-static"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from xmtc.data import load
    from xmtc.text import Vocab, tokenize_all
    from xmtc.text.pretrained import load_pretrained

    torch.set_num_threads(args.threads)
    (train,) = load(args.data, ("train",))
    rows_idx = np.sort(np.random.default_rng(args.seed).choice(len(train), min(args.docs, len(train)),
                                                                replace=False))
    tokens = tokenize_all([train.texts[i] for i in rows_idx])
    vocab = Vocab.build(tokens, min_count=1)
    rows = []
    for name in args.names:
        c0, w0 = time.process_time(), time.perf_counter()
        _, stats = load_pretrained(name, vocab, None, args.seed)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        words = len(vocab) - 2
        row = make_row(f"word vectors: {name}", "single", args.data.name, n_train=len(rows_idx), seed=args.seed)
        row.update(vocab_words=words, coverage=round(100 * stats["coverage"], 2),
                   token_coverage=round(100 * stats["token_coverage"], 2), load_wall_s=round(wall, 2),
                   load_cpu_s=round(cpu, 2), cpu_s_per_10k_words=round(cpu * 1e4 / max(words, 1), 2),
                   threads=args.threads)
        rows.append(row)
        print(f"{name:15s} words {words}  coverage {row['coverage']:.2f} %  tokens {row['token_coverage']:.2f} %  "
              f"load {wall:.1f} s wall, {cpu:.1f} s CPU ({row['cpu_s_per_10k_words']} CPU s per 10k words)",
              flush=True)
    if args.out:
        write_json(args.out, {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
                              "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
