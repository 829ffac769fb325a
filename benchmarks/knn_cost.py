"""CPU cost of the exact cosine kNN on sparse TF-IDF (TReaderXML's teacher), before and after the dense-batch product.

    python benchmarks/knn_cost.py --data ../shared/data/eurlex57k [--queries 1024] [--max-len 256] [--seed 0]
        [--out FILE.json]

The base is the whole training split, as the teacher sees it: the first ``--max-len`` whitespace tokens of each
document, TF-IDF with :func:`xmtc.models.treaderxml.teacher.fit_tfidf`'s settings (sublinear tf, terms in at least 2
documents, L2 rows). The queries are a seeded random sample of ``--queries`` training documents (one batch of
:func:`xmtc.features.neighbours.knn`). Two ways to get their (queries, base) similarity block are timed:

* ``sparse x sparse``: the CSR queries times the transposed CSR base (the code before 2026-12-03), whose result
  is a nearly dense CSR;
* ``dense batch``: :func:`xmtc.features.neighbours._similarities`, the queries densified on the terms they use,
  times those rows of the transposed base (the code since).

Both must give the same block (the largest absolute difference is printed and stored). Process CPU seconds and
wall seconds; both products run in scipy's single-threaded sparse kernels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import dataset_name, doc_parser, result_header, seeded_rows, timed, write_json  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = doc_parser(__doc__)
    p.add_argument("--data", required=True, help="dataset folder (its train split is the base)")
    p.add_argument("--queries", type=int, default=1024, help="training documents used as queries (one batch)")
    p.add_argument("--max-len", type=int, default=256, help="tokens of each document the TF-IDF sees")
    p.add_argument("--seed", type=int, default=0, help="seed of the query sample")
    p.add_argument("--out", type=Path, default=None, help="result JSON (benchmarks/schema.py)")
    args = p.parse_args(argv)

    from xmtc.data import load
    from xmtc.features import TfidfFeaturizer
    from xmtc.features.neighbours import _normalised, _similarities

    (train,) = load(args.data, ("train",))
    texts = [" ".join(t.split()[: args.max_len]) for t in train.texts]
    (X, fit_cpu, _) = timed(lambda: TfidfFeaturizer(max_features=None, min_df=2).fit_transform(texts))
    base = _normalised(X)
    rows = seeded_rows(base.shape[0], args.queries, args.seed)
    q = base if rows is None else base[rows]
    bt = base.T.tocsr()
    ref, ref_cpu, ref_wall = timed(lambda: np.asarray((q @ bt).toarray(), dtype=np.float32))
    new, new_cpu, new_wall = timed(lambda: _similarities(q, bt))
    diff = float(np.abs(new - ref).max())
    print(f"{dataset_name(args.data)}: {q.shape[0]} queries x {base.shape[0]} documents, {base.shape[1]} terms "
          f"(TF-IDF fit {fit_cpu:.1f} CPU s)\n  sparse x sparse {ref_cpu:.2f} CPU s ({ref_wall:.2f} s wall)\n"
          f"  dense batch     {new_cpu:.2f} CPU s ({new_wall:.2f} s wall)\n  largest difference {diff:.3g}",
          flush=True)
    out = []
    for name, cpu, wall in (("knn block, sparse x sparse", ref_cpu, ref_wall),
                            ("knn block, dense batch (_similarities)", new_cpu, new_wall)):
        row = make_row(name, "single", dataset_name(args.data), n_train=base.shape[0], n_test=q.shape[0],
                       seed=args.seed)
        row.update(queries=q.shape[0], terms=base.shape[1], max_len=args.max_len,
                   block_cpu_s=round(cpu, 3), block_wall_s=round(wall, 3), max_abs_diff=diff)
        out.append(row)
    if args.out:
        cmd = "python " + " ".join(["benchmarks/knn_cost.py", *(argv if argv is not None else sys.argv[1:])])
        write_json(args.out, {**result_header(cmd), "rows": out})


if __name__ == "__main__":
    main()
