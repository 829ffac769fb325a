"""Is a deep model's P@5 gap to the sparse peers a matter of how it ranks rare labels against frequent ones?

    python benchmarks/label_prior.py --model DIR --data ../shared/data/eurlex57k --max-train 8000 --max-test 2000 \
        --max-valid 1000 --seed 0 --out benchmarks/results/FILE.json

Loads a model saved by ``benchmarks.run --save`` and the same documents (the same ``--max-*`` and ``--seed``:
:func:`benchmarks.common.load_splits`), takes its top ``--k`` labels of every validation and test document
once, and re-ranks them by ``log score + tau * log w_j`` for each ``tau`` of ``--taus``, with ``w_j`` either
``1 / (n_j + 1)`` (``n_j`` the label's training count: a log-frequency prior, as post-hoc logit adjustment does)
or the label's inverse propensity (Jain et al.; the weights of PSP@k). ``tau`` is chosen on **validation** by
P@5 (ties: the smaller tau); the test split is evaluated at every tau only to print the whole curve, and the
row marked ``chosen`` is the one a user would get. A prior that helps says the network under-scores rare labels
(a decoding fix); one that does not says the gap is in the network's ranking of the documents (its
representation), which a re-ranking cannot reach.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import load_splits, markdown_table, result_header, write_results  # noqa: E402
from benchmarks.extras import evaluate  # noqa: E402
from benchmarks.schema import ROW_KEYS, make_row  # noqa: E402

PRIORS = ("logfreq", "invprop")


def rerank(indices: np.ndarray, scores: np.ndarray, log_w: np.ndarray, tau: float) -> np.ndarray:
    """Top-k label ids re-ordered by ``log score + tau * log_w[label]``; -1 padding stays last.

    Args:
        indices: int (n, k) label ids, -1 padding.
        scores: float (n, k) positive scores of those labels.
        log_w: float (L,) the prior's log weight of every label.
        tau: the prior's weight (0: the model's own order).
    """
    ok = indices >= 0
    if np.any(scores[ok] < 0):
        raise ValueError("label_prior needs positive scores (probabilities), got negative ones")
    key = np.log(np.maximum(scores.astype(np.float64), 1e-12)) + tau * log_w[np.maximum(indices, 0)]
    key = np.where(ok, key, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, type=Path, help="model folder saved by benchmarks.run --save")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--max-train", type=int, default=None, help="as the run that saved the model")
    p.add_argument("--max-test", type=int, default=None, help="as the run that saved the model")
    p.add_argument("--max-valid", type=int, default=None, help="as the run that saved the model")
    p.add_argument("--seed", type=int, default=0, help="as the run that saved the model")
    p.add_argument("--k", type=int, default=50, help="labels of each document re-ranked (default 50)")
    p.add_argument("--taus", type=float, nargs="+", default=[0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="result JSON (schema of benchmarks/schema.py)")
    args = p.parse_args(argv)

    import torch

    from xmtc import metrics, registry
    from xmtc.models.base import TopK

    torch.set_num_threads(args.threads)
    splits = load_splits(args.data, seed=args.seed, max_train=args.max_train, max_test=args.max_test,
                         max_valid=args.max_valid, valid="valid")
    model = registry.load(args.model)
    counts = np.asarray(splits.train.Y.sum(0)).ravel()
    inv_prop = metrics.inverse_propensity(splits.train.Y)
    log_w = {"logfreq": -np.log(counts + 1.0), "invprop": np.log(inv_prop)}
    parts = {"valid": splits.valid, "test": splits.test}
    tops = {name: model.predict(d, k=args.k) for name, d in parts.items()}
    info = splits.info()
    rows = []
    for prior in PRIORS:
        found = []
        for tau in args.taus:
            got = {}
            for name, d in parts.items():
                top = TopK(rerank(tops[name].indices, tops[name].scores, log_w[prior], tau),
                           np.zeros_like(tops[name].scores), n_labels=tops[name].n_labels)
                got[name] = evaluate(top, d, inv_prop)  # the runner's metrics (unseen gold labels are misses)
            found.append((tau, got))
            print(f"{prior} tau={tau:<5} valid P@1 {got['valid']['P@1']:.2f} P@5 {got['valid']['P@5']:.2f} | "
                  f"test P@1 {got['test']['P@1']:.2f} P@5 {got['test']['P@5']:.2f} "
                  f"PSP@5 {got['test']['PSP@5']:.2f}", flush=True)
        best = max(found, key=lambda f: (round(f[1]["valid"]["P@5"], 6), -f[0]))[0]
        for tau, got in found:
            rows.append(make_row(f"{model.name} + {prior} prior, tau={tau}", "single", info["dataset"],
                                 n_train=info["n_train"], n_test=info["n_test"], seed=args.seed,
                                 **got["test"], valid=got["valid"],
                                 prior=prior, tau=tau, chosen=tau == best, n_valid=info["n_valid"]))
    cols = [*ROW_KEYS[:11], "chosen"]
    write_results(args.out, {**result_header("python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])),
                             "rows": rows, "model_dir": str(args.model)},
                  markdown_table(cols, [[r.get(c) for c in cols] for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
