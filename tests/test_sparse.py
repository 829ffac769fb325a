"""Sparse tree baselines (``parabel``, ``bonsai`` via omikuji) and the XMLRepository writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

import xmtc
from xmtc.data import Dataset, LabelIndex
from xmtc.errors import ConfigError, DataError, ModelLoadError, XMTCError
from xmtc.models.baselines.omikuji_io import omikuji_output, write_xmlrepo
from xmtc.models.baselines.parabel import BonsaiConfig, ParabelConfig

TOPICS = {
    "sport": "football goal match league striker referee",
    "finance": "bank loan interest credit market shares",
    "health": "doctor hospital vaccine patient disease clinic",
    "space": "rocket orbit planet astronaut telescope galaxy",
    "food": "recipe bread cheese kitchen flavour soup",
    "law": "court judge lawyer verdict appeal statute",
}


def _texts(seed: int, n: int) -> Dataset:
    """Documents mixing two topics' words with filler; labels are the two topics (chance P@1 = 1/3)."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    filler = [f"w{i}" for i in range(60)]
    texts, rows, cols = [], [], []
    for i in range(n):
        pair = rng.choice(len(names), 2, replace=False)
        words = [w for p in pair for w in rng.choice(TOPICS[names[p]].split(), 3).tolist()]
        words += rng.choice(filler, 8).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
        rows += [i, i]
        cols += sorted(pair.tolist())
    Y = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(names)))
    return Dataset(Y=Y, label_index=LabelIndex(names), texts=texts, name="topics")


def _sparse(seed: int, n: int = 300, n_labels: int = 150, n_features: int = 1500) -> Dataset:
    """Sparse-X documents carrying 4 signature features per gold label (more labels than min_branch_size)."""
    rng = np.random.default_rng(seed)
    sig = np.random.default_rng(99).integers(0, n_features, (n_labels, 4))  # same signatures for every split
    labels = np.stack([rng.choice(n_labels, 2, replace=False) for _ in range(n)])
    Y = sp.csr_matrix((np.ones(2 * n, np.float32), (np.repeat(np.arange(n), 2), labels.ravel())),
                      shape=(n, n_labels))
    Y.data[:] = 1
    cols = np.hstack([sig[labels].reshape(n, -1), rng.integers(0, n_features, (n, 5))])
    rows = np.repeat(np.arange(n), cols.shape[1])
    X = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols.ravel())), shape=(n, n_features))
    X = sp.csr_matrix(X.multiply(1 / np.sqrt(X.multiply(X).sum(axis=1))), dtype=np.float32)
    return Dataset(Y=Y, label_index=LabelIndex([f"L{i}" for i in range(n_labels)]), X=X, name="sig")


def _p1(Y: sp.csr_matrix, top) -> float:
    return float(np.take_along_axis(Y.toarray(), np.maximum(top.indices[:, :1], 0), axis=1).mean())


@pytest.mark.parametrize("name", ["parabel", "bonsai"])
def test_fit_predict_save_load_on_texts(name, tmp_path):
    train, test = _texts(0, 240), _texts(1, 60)
    cfg = (ParabelConfig if name == "parabel" else BonsaiConfig)(n_trees=2, n_threads=1)
    model = xmtc.create(name, cfg).fit(train)
    top = model.predict(test, k=3)
    assert top.indices.shape == (60, 3) and top.indices.dtype == np.int32
    assert _p1(test.Y, top) > 0.8  # chance is 1/3
    assert np.all((top.scores > 0) & (top.scores <= 1))  # omikuji scores are probabilities
    assert np.all(np.diff(top.scores, axis=1) <= 0)
    model.save(tmp_path / "m")
    files = json.loads((tmp_path / "m" / "meta.json").read_text())["sha256"]
    assert {"omikuji/settings.json", "omikuji/tree0.cbor", "omikuji/tree1.cbor", "tfidf.vocab.json",
            "tfidf.idf.npz"} <= set(files)
    loaded = xmtc.load(tmp_path / "m")
    again = loaded.predict(test.texts, k=3)  # raw texts work too
    np.testing.assert_array_equal(again.indices, top.indices)
    np.testing.assert_allclose(again.scores, top.scores, rtol=1e-6)


@pytest.mark.parametrize("name", ["parabel", "bonsai"])
def test_converged_training_is_repeatable(name):
    """omikuji cannot be seeded, but without clustering (labels <= min_branch_size) and with the node solvers
    run to convergence (tiny_config) every training reaches the same unique optimum up to float32 rounding."""
    train, test = _texts(2, 200), _texts(3, 40)
    cls = xmtc.registry.get(name)
    tops = [cls(cls.tiny_config()).fit(train).predict(test, k=4) for _ in range(3)]
    for other in tops[1:]:
        np.testing.assert_array_equal(other.indices, tops[0].indices)
        np.testing.assert_allclose(other.scores, tops[0].scores, rtol=1e-5, atol=1e-6)


def test_sparse_x_input_with_label_trees(tmp_path):
    train, test = _sparse(0), _sparse(1, n=80)
    model = xmtc.create("parabel", ParabelConfig(n_trees=2, min_branch_size=20)).fit(train)  # real trees
    top = model.predict(test, k=5)
    assert _p1(test.Y, top) > 0.8  # chance is 2/150
    model.save(tmp_path / "x")
    assert json.loads((tmp_path / "x" / "sparse_state.json").read_text())["features"] == "X"
    loaded = xmtc.load(tmp_path / "x")
    np.testing.assert_array_equal(loaded.predict(test, k=5).indices, top.indices)  # saved model: exact
    with pytest.raises(XMTCError, match="precomputed sparse features"):
        loaded.predict(["some text"], k=1)
    wide = Dataset(Y=test.Y, label_index=test.label_index,
                   X=sp.hstack([test.X, sp.csr_matrix(np.ones((len(test), 1), np.float32))], format="csr"))
    with pytest.raises(DataError, match="trained on 1500"):
        loaded.predict(wide, k=1)
    narrow = Dataset(Y=test.Y, label_index=test.label_index, X=test.X[:, :1000])
    assert loaded.predict(narrow, k=2).indices.shape == (80, 2)  # fewer columns are fine


def test_load_refuses_mismatched_state(tmp_path):
    train = _sparse(0, n=120, n_labels=20)
    xmtc.create("bonsai", BonsaiConfig(n_trees=1)).fit(train).save(tmp_path / "b")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    cfg["n_trees"] = 3
    (tmp_path / "b" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="checksum"):
        xmtc.load(tmp_path / "b")


def test_config_validation_and_errors():
    with pytest.raises(ConfigError, match="cluster_k must be >= 2, but is 1"):
        ParabelConfig(cluster_k=1).validate()
    with pytest.raises(ConfigError, match="linear_loss"):
        BonsaiConfig.from_dict({"linear_loss": "squared"})
    assert BonsaiConfig().cluster_k == 100 and not BonsaiConfig().cluster_balanced
    assert BonsaiConfig().max_depth == 3 and ParabelConfig().max_depth == 20
    empty = Dataset(Y=sp.csr_matrix((3, 2), dtype=np.float32), label_index=LabelIndex(["a", "b"]),
                    X=sp.csr_matrix(np.eye(3, dtype=np.float32)))
    with pytest.raises(DataError, match="no labels"):
        xmtc.create("parabel").fit(empty)


def test_omikuji_failure_message_is_captured():
    import omikuji

    with pytest.raises(XMTCError, match="omikuji failed while loading data.*Failed to load data"):
        with omikuji_output(False, "loading data"):
            omikuji.Model.train_on_data("/nonexistent/xmtc-train.txt")


def test_write_xmlrepo_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.random(30, 1234, density=0.05, format="lil", dtype=np.float32, random_state=1)
    X[4] = 0
    X = sp.csr_matrix(X)
    X.data = ((X.data - 0.5) * 10.0 ** rng.integers(-40, 30, X.nnz)).astype(np.float32)  # any magnitude/sign
    Y = sp.random(30, 17, density=0.15, format="lil", random_state=2)
    Y[4] = 0
    Y[7] = 0
    Y = sp.csr_matrix(Y)
    Y.data[:] = 1
    path = tmp_path / "d.txt"
    write_xmlrepo(path, X, Y, chunk_nnz=11)  # many chunks
    lines = path.read_text().split("\n")
    assert lines[0] == "30 1234 17" and lines[-1] == "" and len(lines) == 32
    assert lines[5] == ""  # a document without labels and features
    rows, cols, vals, yr, yc = [], [], [], [], []
    for r, line in enumerate(lines[1:-1]):
        labels, *feats = line.split(" ")
        for lab in labels.split(","):
            if lab:
                yr.append(r)
                yc.append(int(lab))
        for tok in feats:
            i, v = tok.split(":")
            rows.append(r)
            cols.append(int(i))
            vals.append(np.float32(float(v)))
    X2 = sp.csr_matrix((vals, (rows, cols)), shape=X.shape, dtype=np.float32)
    Y2 = sp.csr_matrix((np.ones(len(yr), np.float32), (yr, yc)), shape=Y.shape)
    assert (X2 != X).nnz == 0  # float32 values round-trip exactly
    assert (Y2 != Y).nnz == 0
    with pytest.raises(DataError, match="NaN"):
        write_xmlrepo(path, sp.csr_matrix(np.array([[np.nan]], np.float32)), sp.csr_matrix((1, 1)))
