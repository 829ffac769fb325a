"""Sparse peers on one shared TF-IDF: omikuji (Parabel- and Bonsai-like), libpecos XR-Linear, napkinXC PLT
and xmtc's own ``parabel`` model, trained and evaluated in one run.

    python benchmarks/peers.py --data ../shared/data/eurlex57k [--out results.json] [--max-train N]
        [--methods omikuji-parabel,pecos-xrlinear] [--threads 2] [--k 5]

Steps: load the train/test splits with :func:`xmtc.data.load`; fit ONE
:class:`~xmtc.features.tfidf.TfidfFeaturizer` on the training texts only (defaults: 200k terms, min_df 2,
unigrams, sublinear tf, L2 rows); write the CSR features to a work folder; then run every method in its own
subprocess, which trains on the train features and predicts the top-k of the test features. The parent
computes P@k, PSP@k (inverse propensities of the training labels, A=0.55, B=1.5) and nDCG@k with
:mod:`xmtc.metrics` (gold labels unseen in training count as misses) and prints a markdown table.

Timings: "train s" is the wall time of training inside the child (for omikuji it includes writing the
XMLRepository text file omikuji reads); "predict docs/s" is test documents / prediction wall time (omikuji's
own ``Model.predict`` is called per document with Python lists, xmtc's ``parabel`` calls the same C entry
point on CSR views). "peak RSS" is the child's own high-water mark (``VmHWM``; ``ru_maxrss`` from ``wait4``
would also count the parent's memory at the fork); it includes the Python interpreter, the imported libraries
and the loaded features (``rss_loaded_mib`` in the JSON output is the peak before training starts).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import (
    Timer,
    load_csr,
    machine_info,
    markdown_table,
    package_version,
    peak_rss_own_mib,
    read_json,
    run_child,
    save_csr,
    write_json,
)

METHODS = ("omikuji-parabel", "omikuji-bonsai", "pecos-xrlinear", "napkinxc-plt", "xmtc-parabel",
           "xmtc-bonsai")
DEFAULT_METHODS = ("omikuji-parabel", "omikuji-bonsai", "pecos-xrlinear", "napkinxc-plt", "xmtc-parabel")
BEAM = 10


# --------------------------------------------------------------------------- the methods (run in the child)
def _omikuji(X, Y, Xt, k: int, threads: int, work: Path, bonsai: bool):
    import omikuji

    from xmtc.models.base import TopK
    from xmtc.models.sparse import write_xmlrepo

    with Timer() as t_train:
        data_file = work / "omikuji-train.txt"
        write_xmlrepo(data_file, X, Y)
        hp = omikuji.Model.default_hyper_param()  # Parabel: balanced 2-means, depth 20, 3 trees, hinge, C=1
        if bonsai:  # omikuji README: unbalanced k-means, k=100, depth 3
            hp.cluster_k, hp.cluster_balanced, hp.max_depth = 100, False, 3
        model = omikuji.Model.train_on_data(str(data_file), hp, n_threads=threads)
        data_file.unlink()
        model.densify_weights(0.1)  # what `omikuji test` does by default
        model.init_prediction_thread_pool(threads)
    with Timer() as t_pred:
        n = Xt.shape[0]
        idx = np.full((n, k), -1, dtype=np.int32)
        val = np.full((n, k), -np.inf, dtype=np.float32)
        for r in range(n):
            lo, hi = Xt.indptr[r], Xt.indptr[r + 1]
            pairs = model.predict(list(zip(Xt.indices[lo:hi].tolist(), Xt.data[lo:hi].tolist(), strict=True)),
                                  beam_size=BEAM, top_k=k)
            for j, (label, score) in enumerate(pairs):
                idx[r, j], val[r, j] = label, score
        top = TopK(idx, val, n_labels=Y.shape[1])
    return top, t_train.seconds, t_pred.seconds


def _pecos(X, Y, Xt, k: int, threads: int, work: Path):
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    from xmtc.models.base import TopK

    with Timer() as t_train:
        label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
        chain = Indexer.gen(label_feat, indexer_type="hierarchicalkmeans", max_leaf_size=100, seed=0,
                            threads=threads)
        model = XLinearModel.train(X, Y, C=chain, threads=threads)
    with Timer() as t_pred:
        pred = model.predict(Xt, beam_size=BEAM, only_topk=k, threads=threads)
        top = TopK.from_csr(pred, k)
    return top, t_train.seconds, t_pred.seconds


def _napkinxc(X, Y, Xt, k: int, threads: int, work: Path):
    from napkinxc.models import PLT

    from xmtc.models.base import TopK

    with Timer() as t_train:
        model = PLT(str(work / "napkinxc-plt"), seed=0, threads=threads)
        model.fit(X, Y)
    with Timer() as t_pred:
        preds = model.predict_proba(Xt, top_k=k)
        idx = np.full((len(preds), k), -1, dtype=np.int32)
        val = np.full((len(preds), k), -np.inf, dtype=np.float32)
        for r, row in enumerate(preds):
            for j, (label, p) in enumerate(row[:k]):
                idx[r, j], val[r, j] = label, p
        top = TopK(idx, val, n_labels=Y.shape[1])
    return top, t_train.seconds, t_pred.seconds


def _xmtc(X, Y, Xt, k: int, threads: int, work: Path, name: str):
    import scipy.sparse as sp

    import xmtc
    from xmtc.data import Dataset, LabelIndex

    index = LabelIndex([str(i) for i in range(Y.shape[1])])
    cls = xmtc.registry.get(name)
    with Timer() as t_train:
        model = cls(cls.Config(n_threads=threads)).fit(Dataset(Y=Y, label_index=index, X=X))
    with Timer() as t_pred:
        top = model.predict(Dataset(Y=sp.csr_matrix((Xt.shape[0], Y.shape[1]), dtype=np.float32),
                                    label_index=index, X=Xt), k=k)
    return top, t_train.seconds, t_pred.seconds


def worker(method: str, work: Path, k: int, threads: int) -> None:
    """Child process: train ``method`` on the saved train features, predict the test features, save both."""
    X, Y, Xt = load_csr(work / "X_train.npz"), load_csr(work / "Y_train.npz"), load_csr(work / "X_test.npz")
    rss_loaded = peak_rss_own_mib()
    scratch = Path(tempfile.mkdtemp(prefix=f"{method}-", dir=work))
    if method in ("omikuji-parabel", "omikuji-bonsai"):
        top, t_train, t_pred = _omikuji(X, Y, Xt, k, threads, scratch, bonsai=method == "omikuji-bonsai")
    elif method == "pecos-xrlinear":
        top, t_train, t_pred = _pecos(X, Y, Xt, k, threads, scratch)
    elif method == "napkinxc-plt":
        top, t_train, t_pred = _napkinxc(X, Y, Xt, k, threads, scratch)
    elif method in ("xmtc-parabel", "xmtc-bonsai"):
        top, t_train, t_pred = _xmtc(X, Y, Xt, k, threads, scratch, method.split("-", 1)[1])
    else:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    shutil.rmtree(scratch, ignore_errors=True)
    np.savez(work / f"{method}.pred.npz", indices=top.indices, scores=top.scores)
    write_json(work / f"{method}.json", {"train_s": t_train, "predict_s": t_pred,
                                         "rss_loaded_mib": rss_loaded, "peak_rss_mib": peak_rss_own_mib()})


# --------------------------------------------------------------------------- the parent
def prepare(args: argparse.Namespace, work: Path):
    """Load the splits, fit the one shared TF-IDF on train and save the CSR features.

    Returns:
        (train, test, info dict).
    """
    import xmtc
    from xmtc.features.tfidf import TfidfFeaturizer

    train, test = xmtc.data.load(args.data, splits=("train", "test"))
    if args.max_train:
        train = train.subset(np.arange(min(args.max_train, len(train))))
    if args.max_test:
        test = test.subset(np.arange(min(args.max_test, len(test))))
    featurizer = TfidfFeaturizer(max_features=args.tfidf_max_features, min_df=args.tfidf_min_df,
                                 ngram_max=1, sublinear_tf=True)
    with Timer() as t_fit:
        X = featurizer.fit_transform(train.texts)
    with Timer() as t_tr:
        Xt = featurizer.transform(test.texts)
    save_csr(work / "X_train.npz", X)
    save_csr(work / "Y_train.npz", train.Y)
    save_csr(work / "X_test.npz", Xt)
    info = {"n_train": len(train), "n_test": len(test), "n_labels": train.n_labels, "n_features": X.shape[1],
            "nnz_per_doc_train": X.nnz / max(1, X.shape[0]), "tfidf_fit_s": t_fit.seconds,
            "tfidf_transform_test_s": t_tr.seconds, "test_unseen_gold": int(test.unseen.sum())}
    return train, test, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="dataset folder with texts (train and test splits)")
    p.add_argument("--out", help="write all results as JSON here")
    p.add_argument("--max-train", type=int, default=0, help="use only the first N training documents")
    p.add_argument("--max-test", type=int, default=0, help="use only the first N test documents")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma list from {', '.join(METHODS)}")
    p.add_argument("--threads", type=int, default=0, help="threads per method (0: all cores)")
    p.add_argument("--k", type=int, default=5, help="labels predicted per document")
    p.add_argument("--tfidf-max-features", type=int, default=200000)
    p.add_argument("--tfidf-min-df", type=int, default=2)
    p.add_argument("--workdir", help="folder for features and predictions (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    if args.worker:
        worker(args.worker, Path(args.workdir), args.k, threads)
        return 0
    if not args.data:
        p.error("--data is required")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")

    from xmtc import metrics
    from xmtc.models.base import TopK

    work = Path(args.workdir or tempfile.mkdtemp(prefix="xmtc-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"machine: {machine}", flush=True)
    train, test, info = prepare(args, work)
    print(f"data: {args.data} {info}", flush=True)
    inv_prop = metrics.inverse_propensity(train.Y)
    results = []
    for method in methods:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--workdir", str(work),
               "--k", str(args.k), "--threads", str(threads)]
        run = run_child(cmd, log_path=work / f"{method}.log")
        row = {"method": method, "child_wall_s": run["seconds"], "returncode": run["returncode"]}
        if run["returncode"] != 0:
            tail = (work / f"{method}.log").read_text(errors="replace").strip().splitlines()[-5:]
            row["error"] = " | ".join(tail)
            print(f"{method}: FAILED ({row['error']})", flush=True)
            results.append(row)
            continue
        row.update(read_json(work / f"{method}.json"))
        with np.load(work / f"{method}.pred.npz", allow_pickle=False) as z:
            top = TopK(z["indices"], z["scores"], n_labels=train.n_labels)
        row["metrics"] = metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=inv_prop, n_gold=test.n_gold())
        row["predict_docs_per_s"] = len(test) / max(row["predict_s"], 1e-9)
        print(f"{method}: P@1 {100 * row['metrics']['P@1']:.2f} train {row['train_s']:.1f}s "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
        results.append(row)
    table = results_table(results)
    print()
    print(table)
    if args.out:
        names = ("omikuji", "libpecos", "napkinxc", "xmtc", "numpy", "scipy", "scikit-learn")
        versions = {name: package_version(name) for name in names}
        write_json(args.out, {"command": " ".join(sys.argv), "data": args.data, "machine": machine,
                              "versions": versions, "threads": threads, "k": args.k, "data_info": info,
                              "results": results, "table": table})
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["returncode"] == 0 for r in results) else 1


def results_table(results: list[dict]) -> str:
    """Markdown table of the results (metrics in percent)."""
    cols = ["P@1", "P@3", "P@5", "PSP@1", "PSP@3", "PSP@5", "nDCG@3", "nDCG@5"]
    rows = []
    for r in results:
        if r.get("returncode") != 0:
            rows.append([r["method"], *["failed"] + [""] * (len(cols) + 2)])
            continue
        m = r["metrics"]
        rows.append([r["method"], *[f"{100 * m[c]:.2f}" for c in cols], f"{r['train_s']:.1f}",
                     f"{r['predict_docs_per_s']:.0f}", f"{r['peak_rss_mib']:.0f}"])
    return markdown_table(["method", *cols, "train s", "predict docs/s", "peak RSS MiB"], rows)


if __name__ == "__main__":
    sys.exit(main())
