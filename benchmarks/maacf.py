"""MAACF+ variants and ablations (paper Tables 5-8, Fig. 2-4) next to peers trained on the same documents: the
old command line of this script, run by :mod:`benchmarks.run` (see :mod:`benchmarks.legacy`).

Every ``--run NAME [key=value ...]`` trains one registered model in its own subprocess on the same documents;
``--set`` applies to the ``maacf`` runs, ``--epochs`` to every run. Besides the runner's figures every row has
tail-label precision (MAACF+ Eq. 14: the ``--n-tail`` rarest labels of the dataset that occur in the test
documents, K = 1, 10, 20; MAACF+ scores every test document against each tail label exactly with
``label_scores``, other models are ranked by their top ``--tail-k`` predictions) and MAACF+ runs the recall
of their shortlist on the test documents.

Example::

    nice -n 10 python benchmarks/maacf.py --data ../shared/data/debian-tags --max-train 3000 --max-test 1000 \\
        --max-valid 400 --epochs 10 --threads 1 --set emb_dim=100 max_len=128 w2v_epochs=3 lr=3e-3 \\
        rank_loss=bpr hard_negatives=3 patience=0 --run maacf --run maacf variant=mcf --run parabel \\
        --out /tmp/maacf.json

is ``python -m benchmarks.run ... --tail 10 --run maacf emb_dim=100 ... --run maacf emb_dim=100 ... variant=mcf
--run parabel``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import legacy, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = legacy.parser(__doc__.split("\n\n")[0], "maacf")
    p.add_argument("--n-tail", type=int, default=10, help="N_tail of the tail-label precision (Eq. 14)")
    p.add_argument("--tail-k", type=int, default=100, help="top-k of non-MAACF models used for tail labels")
    args = p.parse_args(argv)
    extra = ["--tail", str(args.n_tail), "--tail-k", str(args.tail_k)]
    return run.main(legacy.runner_argv(args, extra), command=legacy.command("maacf.py", argv))


if __name__ == "__main__":
    sys.exit(main())
