"""Does MAACF+ learn from the text or only label popularity? Validation-only diagnosis (never the test split).

Fits MAACF+ on a seeded random sample of ``--max-train`` training documents with a seeded ``--valid`` of them held
out, then prints the
validation P@1 per epoch, the P@1 of always predicting the most frequent label, the P@1 of the shortlist in its
own (Parabel) order, the variance of the pair logits across documents (fixed label) vs across labels (fixed
document), and the gradient norm that one BPR batch sends into each part of the network.

Example (the runs behind deviation 12 of the MAACF+ section in docs/MODELS.md; outputs in
benchmarks/results/maacf_diagnose/)::

    nice -n 5 python benchmarks/maacf_diagnose.py --data /work/shared/data/debian-tags --max-train 2000 \\
        --set epochs=10 lr=3e-3 rank_loss=bpr hard_negatives=3 patience=0 predictor_input=product
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_splits  # noqa: E402
from xmtc import metrics, registry  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--max-train", type=int, default=2000, help="seeded random sample of N training documents")
    p.add_argument("--valid", type=int, default=400, help="validation documents held out of them")
    p.add_argument("--set", nargs="*", default=[], help="MAACF config overrides key=value")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    splits = load_splits(args.data, seed=0, max_train=args.max_train, max_valid=args.valid, valid="holdout")
    train, valid = splits.train, splits.valid
    MAACF = registry.get("maacf")
    cfg = MAACF.Config().with_overrides(["emb_dim=100", "max_len=128", "w2v_epochs=3", "progress=false",
                                         "threads=1", "epochs=3", *args.set])
    m = MAACF(cfg).fit(train, valid)
    for r in m.train_results_["network"].history:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    Yv = valid.Y.tocsr()
    top1 = int(np.argmax(np.asarray(train.Y.sum(0)).ravel()))
    print("valid popularity P@1", round(100 * Yv[:, top1].toarray().mean(), 2))
    top = m.predict(valid, k=5)
    print("valid model P@1", round(100 * metrics.precision_at_k(Yv, top, 1), 2),
          "P@5", round(100 * metrics.precision_at_k(Yv, top, 5), 2))
    enc = m.encode(m.texts_of(valid))
    side = m._side_inputs(enc)
    if side["cand"] is not None:
        cand = side["cand"]
        print("shortlist own order P@1", round(100 * np.mean([Yv[i, cand[i, 0]] for i in range(len(cand))]), 2))
    net = m.networks_["network"].eval()
    with torch.no_grad():
        docs = [net.encode(m._pair_batch(tb, side)) for tb in m.eval_batches(enc)]
        sc = torch.cat([m._score_labels(net, d, torch.arange(min(m.n_labels_, 300))) for d in docs])[:200]
    print("logit variance across docs", float(sc.var(0).mean()), "across labels", float(sc.var(1).mean()))
    net.train()
    enc_t = m.encode(m.texts_of(train), train.Y)
    batch = m._pair_batch(next(iter(m.train_batches(enc_t, 0))),
                          m._side_inputs(enc_t, candidates=cfg.hard_negatives > 0))
    net.zero_grad()
    m.pair_loss(net, batch).backward()
    norms: dict[str, float] = {}
    for name, prm in net.named_parameters():
        if prm.grad is not None:
            key = name.split(".")[0]
            norms[key] = norms.get(key, 0.0) + float(prm.grad.norm() ** 2)
    print("gradient norms", {k: round(v ** 0.5, 5) for k, v in norms.items()})


if __name__ == "__main__":
    main()
