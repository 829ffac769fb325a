"""Where a two-level AttentionXML tree loses precision: its level-1 beam, or the leaf network's ranking.

    python benchmarks/beam_diagnostic.py --model RUN_OR_MODEL --data ../shared/data/eurlex57k [--docs 2000] [--seed 123]

Reads a seeded sample of ``--docs`` documents of the dataset's **validation** split (``--split``; never the test
split) and, for tree 0 of the saved model, prints P@1/3/5 of four rankings of the same leaf scores
``log p_label + gamma * log p_parent`` (the model's own gamma and beam):

* ``model``: restricted to the children of the top-``beam`` level-1 clusters (what the model predicts);
* ``all labels``: every label scored, no beam (does the beam help or hurt?);
* ``leaf only``: every label by its own leaf probability (gamma 0, no beam);
* ``oracle beam``: the beam plus the clusters of the document's gold labels (the ceiling of a perfect level 1).

and the share of gold labels whose cluster is in the level-1 beam. The gap between ``model`` and ``oracle beam``
is what a better level 1 could add; the rest of the gap to another model is the leaf network's ranking. The leaf
network scores every label of every document here, so this costs about as much as predicting ``--docs``
documents with a flat network.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, type=Path, help="saved AttentionXML model folder (or run folder)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", default="valid", help="split to read (default: valid; use a validation split)")
    p.add_argument("--docs", type=int, default=2000, help="seeded random sample of N documents (default 2000)")
    p.add_argument("--seed", type=int, default=123, help="seed of the sample")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    import torch

    import xmtc
    from xmtc import metrics
    from xmtc.data import load as load_data
    from xmtc.errors import XMTCError
    from xmtc.models.base import TopK
    from xmtc.train import autocast

    torch.set_num_threads(args.threads)
    try:
        if args.split == "test":
            raise XMTCError("beam_diagnostic reads a validation split, not test (--split)")
        model = xmtc.load(args.model)
        if getattr(model, "trees_", None) is None or model.trees_[0].n_levels != 2:
            raise XMTCError(f"{args.model}: not an AttentionXML model with a two-level label tree")
        (data,) = load_data(args.data, (args.split,))
    except XMTCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = min(args.docs, len(data))
    data = data.subset(np.sort(np.random.default_rng(args.seed).choice(len(data), n, replace=False)))
    names = data.label_index.names
    Y = model.label_index_.encode([[names[j] for j in data.Y[i].indices] for i in range(n)])[0]
    enc = model.encode(data.texts, Y)
    tree = model.trees_[0]
    parent = torch.as_tensor(tree.parents[0])  # label -> its level-1 cluster
    Y_clusters = tree.targets(Y, 0)
    top_net, leaf_net = model.networks_[model.net_name(0, 0)], model.networks_[model.net_name(0, 1)]
    gamma, beam = model.gamma_, model.beam_
    ranks = {name: np.zeros((n, 5), dtype=np.int32) for name in ("model", "all labels", "leaf only", "oracle beam")}
    in_beam_gold = 0
    with torch.no_grad(), autocast(model.device_, model.config.bf16):
        for batch in model.eval_batches(enc, 32):
            r = batch.rows
            lp_top = torch.nn.functional.logsigmoid(top_net(batch.ids, batch.mask).float())  # (b, clusters)
            lp_leaf = torch.nn.functional.logsigmoid(leaf_net(batch.ids, batch.mask).float())  # (b, labels)
            score = lp_leaf + gamma * lp_top[:, parent]
            in_beam = torch.zeros_like(lp_top, dtype=torch.bool)
            in_beam.scatter_(1, lp_top.topk(beam, dim=1).indices, True)
            gold = torch.as_tensor(Y_clusters[r].toarray() > 0)
            ranks["model"][r] = score.masked_fill(~in_beam[:, parent], -1e9).topk(5, 1).indices.numpy()
            ranks["all labels"][r] = score.topk(5, 1).indices.numpy()
            ranks["leaf only"][r] = lp_leaf.topk(5, 1).indices.numpy()
            ranks["oracle beam"][r] = score.masked_fill(~(in_beam | gold)[:, parent], -1e9).topk(5, 1).indices.numpy()
            rows_y = Y[r]
            for i in range(len(r)):
                in_beam_gold += int(in_beam[i, parent[rows_y[i].indices]].sum())
    print(f"{args.model}: {n} documents of {args.split}, beam {beam}, gamma {gamma}")
    print(f"gold labels whose cluster is in the level-1 beam: {100 * in_beam_gold / max(Y.nnz, 1):.2f} % "
          f"of {Y.nnz}")
    order = np.tile(-np.arange(5, dtype=np.float32), (n, 1))
    for name, idx in ranks.items():
        top = TopK(idx, order, n_labels=model.n_labels_)
        figures = " ".join(f"P@{k} {100 * metrics.precision_at_k(Y, top, k):.2f}" for k in (1, 3, 5))
        print(f"{name:12s} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
