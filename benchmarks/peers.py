"""The sparse peers of the runner (:mod:`benchmarks.run`): omikuji (Parabel- and Bonsai-like), libpecos
XR-Linear, napkinXC PLT, and xmtc's ``parabel`` / ``bonsai`` on the same features.

The peers of one command share one feature set: a child process of its own (:func:`prepare`) fits one
:class:`~xmtc.features.TfidfFeaturizer` on the training texts only (at most 200k terms, min_df 2, unigrams,
sublinear tf, L2 rows; sparse-only datasets use their own features) and writes the CSR matrices; then each
peer run (``python -m benchmarks.run --model omikuji-bonsai --data DIR``) loads them in its own child,
trains and predicts the top 5 of the test documents (:func:`run_peer`). So "peak_rss_mib" is the method's
process alone (interpreter, libraries, the loaded features; ``rss_loaded_mib`` is the peak before
training). "train_s" / "train_cpu_s" are the training inside the child, without the TF-IDF (``features_s``;
for omikuji it includes writing the XMLRepository text file omikuji reads); "predict_docs_s" is test
documents / prediction wall seconds (omikuji's ``Model.predict`` is called per document with Python lists;
xmtc's models call the same C entry point on CSR views).

Settings: omikuji with Parabel settings (balanced 2-means, depth 20, 3 trees, squared hinge, C 1, beam 10)
and Bonsai settings (unbalanced 100-means, depth 3); XR-Linear with a PIFA label embedding and a hierarchical
k-means indexer (leaves of at most 100 labels, beam 10); napkinXC PLT with its defaults. omikuji cannot be
seeded; the others get the run's seed.

The old command line still works and runs every method through the runner::

    python benchmarks/peers.py --data ../shared/data/goemotions [--methods omikuji-parabel,pecos-xrlinear]
        [--max-train N] [--max-test N] [--threads T] [--seed S] --out FILE.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    Timer,
    import_first,
    load_csr,
    peak_rss_own_mib,
    read_json,
    save_csr,
    write_json,
)

BEAM = 10


def _topk(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)


def _omikuji(X, Y, Xt, k: int, threads: int, work: Path, seed: int, bonsai: bool):
    import omikuji

    from xmtc.models.base import TopK

    write_xmlrepo = import_first(["xmtc.models.baselines.parabel", "xmtc.models.sparse"], "write_xmlrepo")
    with Timer() as t_train:
        data_file = work / "omikuji-train.txt"
        write_xmlrepo(data_file, X, Y)
        hp = omikuji.Model.default_hyper_param()  # Parabel: balanced 2-means, depth 20, 3 trees, hinge, C=1
        if bonsai:  # omikuji README: unbalanced k-means, k=100, depth 3
            hp.cluster_k, hp.cluster_balanced, hp.max_depth = 100, False, 3
        omikuji_output = import_first(["xmtc.models.baselines.omikuji_io"], "omikuji_output")
        with omikuji_output(True, "training"):  # off a terminal: plain lines, not thousands of \r redraws
            model = omikuji.Model.train_on_data(str(data_file), hp, n_threads=threads)
        data_file.unlink()
        model.densify_weights(0.1)  # what `omikuji test` does by default
        model.init_prediction_thread_pool(threads)
    with Timer() as t_pred:
        idx, val = _topk(Xt.shape[0], k)
        for r in range(Xt.shape[0]):
            lo, hi = Xt.indptr[r], Xt.indptr[r + 1]
            pairs = model.predict(list(zip(Xt.indices[lo:hi].tolist(), Xt.data[lo:hi].tolist(), strict=True)),
                                  beam_size=BEAM, top_k=k)
            for j, (label, score) in enumerate(pairs):
                idx[r, j], val[r, j] = label, score
        top = TopK(idx, val, n_labels=Y.shape[1])
    return top, t_train, t_pred


def _pecos(X, Y, Xt, k: int, threads: int, work: Path, seed: int):
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    from xmtc.models.base import TopK

    with Timer() as t_train:
        label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
        chain = Indexer.gen(label_feat, indexer_type="hierarchicalkmeans", max_leaf_size=100, seed=seed,
                            threads=threads)
        model = XLinearModel.train(X, Y, C=chain, threads=threads)
    with Timer() as t_pred:
        top = TopK.from_csr(model.predict(Xt, beam_size=BEAM, only_topk=k, threads=threads), k)
    return top, t_train, t_pred


def _napkinxc(X, Y, Xt, k: int, threads: int, work: Path, seed: int):
    from napkinxc.models import PLT

    from xmtc.models.base import TopK

    with Timer() as t_train:
        model = PLT(str(work / "napkinxc-plt"), seed=seed, threads=threads)
        model.fit(X, Y)
    with Timer() as t_pred:
        preds = model.predict_proba(Xt, top_k=k)
        idx, val = _topk(len(preds), k)
        for r, row in enumerate(preds):
            for j, (label, p) in enumerate(row[:k]):
                idx[r, j], val[r, j] = label, p
        top = TopK(idx, val, n_labels=Y.shape[1])
    return top, t_train, t_pred


def _xmtc(X, Y, Xt, k: int, threads: int, work: Path, seed: int, name: str):
    import scipy.sparse as sp

    import xmtc
    from xmtc.data import Dataset, LabelIndex

    index = LabelIndex([str(i) for i in range(Y.shape[1])])
    cls = xmtc.registry.get(name)
    with Timer() as t_train:
        model = cls(cls.Config(n_threads=threads, seed=seed)).fit(Dataset(Y=Y, label_index=index, X=X))
    with Timer() as t_pred:
        top = model.predict(Dataset(Y=sp.csr_matrix((Xt.shape[0], Y.shape[1]), dtype=np.float32),
                                    label_index=index, X=Xt), k=k)
    return top, t_train, t_pred


METHODS = {
    "omikuji-parabel": lambda *a: _omikuji(*a, bonsai=False),
    "omikuji-bonsai": lambda *a: _omikuji(*a, bonsai=True),
    "pecos-xrlinear": _pecos,
    "napkinxc-plt": _napkinxc,
    "xmtc-parabel": lambda *a: _xmtc(*a, name="parabel"),
    "xmtc-bonsai": lambda *a: _xmtc(*a, name="bonsai"),
}
PEERS = tuple(METHODS)
DEFAULT_METHODS = ("omikuji-parabel", "omikuji-bonsai", "pecos-xrlinear", "napkinxc-plt", "xmtc-parabel")
SEEDED = {"pecos-xrlinear", "napkinxc-plt", "xmtc-parabel", "xmtc-bonsai"}  # omikuji has no seed


#: The peers' TF-IDF: every script that trains a peer on texts uses these (``featurizer``).
TFIDF_MAX_FEATURES, TFIDF_MIN_DF = 200000, 2


def featurizer(max_features: int = TFIDF_MAX_FEATURES, min_df: int = TFIDF_MIN_DF) -> tuple[Any, str]:
    """(the peers' TF-IDF featurizer, its one-line description for the result files)."""
    from xmtc.features import TfidfFeaturizer

    what = f"tfidf (at most {max_features} terms, min_df {min_df}, unigrams, sublinear tf, L2 rows)"
    return TfidfFeaturizer(max_features=max_features, min_df=min_df, ngram_max=1, sublinear_tf=True), what


def prepare(splits: Any, work: Path, *, max_features: int = TFIDF_MAX_FEATURES,
            min_df: int = TFIDF_MIN_DF) -> dict[str, Any]:
    """Write the features every peer of one command shares to ``work`` (in a child process of its own): the
    TF-IDF of the training texts (fitted on them only) and of the test texts, or the dataset's own sparse
    features, the label matrices and the test documents' gold counts. Returns the facts (also
    ``features.json``)."""
    train, test = splits.train, splits.test
    with Timer() as t:
        if train.texts is None:
            X, Xt, what = train.X, test.X, "the dataset's own sparse features"
        else:
            tfidf, what = featurizer(max_features, min_df)
            X, Xt = tfidf.fit_transform(train.texts), tfidf.transform(test.texts)
    for name, m in (("X_train", X), ("Y_train", train.Y), ("X_test", Xt), ("Y_test", test.Y)):
        save_csr(work / f"{name}.npz", m)
    np.save(work / "n_gold_test.npy", test.n_gold())
    facts = {**splits.info(), "features": what, "n_features": X.shape[1],
             "nnz_per_doc_train": round(X.nnz / max(1, X.shape[0]), 2), "features_s": round(t.seconds, 2)}
    write_json(work / "features.json", facts)
    return facts


def run_peer(method: str, work: Path, *, threads: int, seed: int, k: int = 5) -> dict[str, Any]:
    """Train ``method`` on the features in ``work`` (:func:`prepare`) and evaluate its top ``k`` on the test
    documents. Returns {"top", "train" (Timer), "predict" (Timer), "metrics" (report, fractions), "facts"}."""
    from xmtc import metrics

    if method not in METHODS:
        raise SystemExit(f"unknown peer {method!r}; choose from {', '.join(PEERS)}")
    X, Y, Xt = (load_csr(work / f"{name}.npz") for name in ("X_train", "Y_train", "X_test"))
    facts = {**read_json(work / "features.json"), "rss_loaded_mib": round(peak_rss_own_mib())}
    with tempfile.TemporaryDirectory(prefix=f"{method}-", dir=work) as scratch:
        top, t_train, t_pred = METHODS[method](X, Y, Xt, k, threads, Path(scratch), seed)
    rep = metrics.report(load_csr(work / "Y_test.npz"), top, ks=(1, 3, 5), inv_prop=metrics.inverse_propensity(Y),
                         n_gold=np.load(work / "n_gold_test.npy"))
    return {"top": top, "train": t_train, "predict": t_pred, "metrics": rep, "facts": facts}


def main(argv: list[str] | None = None) -> int:
    """The old ``benchmarks/peers.py`` command line, run through :mod:`benchmarks.run`."""
    p = argparse.ArgumentParser(description="Sparse peers on one dataset, each through benchmarks.run")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma list from {', '.join(PEERS)}")
    p.add_argument("--max-train", type=int, default=None)
    p.add_argument("--max-test", type=int, default=None)
    p.add_argument("--threads", type=int, default=0, help="threads per method (0: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tfidf-max-features", type=int, default=TFIDF_MAX_FEATURES)
    p.add_argument("--tfidf-min-df", type=int, default=TFIDF_MIN_DF)
    args = p.parse_args(argv)
    from benchmarks import run

    new = ["--data", args.data, "--seed", str(args.seed), "--threads", str(args.threads),
           "--tfidf-max-features", str(args.tfidf_max_features), "--tfidf-min-df", str(args.tfidf_min_df)]
    for method in filter(None, (m.strip() for m in args.methods.split(","))):
        new += ["--model", method]
    for flag, value in (("--max-train", args.max_train), ("--max-test", args.max_test), ("--out", args.out)):
        if value is not None:
            new += [flag, str(value)]
    command = "python benchmarks/peers.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return run.main(new, command=command)


if __name__ == "__main__":
    sys.exit(main())
