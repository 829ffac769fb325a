"""The model contract, run over every registered model (docs/ARCHITECTURE.md, "Models").

Each model is trained once per module on the tiny keyword task (conftest) with its ``tiny_config()``
(a classmethod returning a fast config; the default config when a model defines none) and checked for:
prediction shapes/dtypes/order/padding, learning the task, save -> load -> identical predictions,
same seed -> identical predictions, refusal of tampered or incompatible folders, and argument errors.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from xmtc import metrics, registry
from xmtc.config import Config
from xmtc.data.split import Dataset
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import TopK, XMTCModel

# ``ensemble`` combines saved models; it is built from two fitted members below.
ENSEMBLE = "ensemble"
MODELS = registry.available()
K = 5
MIN_P1 = 0.6  # the keyword task is easy: every working model clears this with its tiny config


def tiny_config(cls: type[XMTCModel]) -> Config:
    """The model's ``tiny_config()`` when it defines one, else its default config."""
    make = getattr(cls, "tiny_config", None)
    return make() if make is not None else cls.Config()


def _ensemble_members(root: Path, train: Dataset) -> list[str]:
    members = [n for n in ("parabel", "bonsai", "xmlcnn") if n in MODELS][:2]
    if len(members) < 2:
        pytest.skip("the ensemble contract needs two registered member models")
    paths = []
    for name in members:
        cls = registry.get(name)
        paths.append(str(cls(tiny_config(cls)).fit(train).save(root / name)))
    return paths


def build(name: str, train: Dataset, root: Path) -> XMTCModel:
    """A fitted model ``name`` on ``train`` (``root``: scratch folder for run files and ensemble members)."""
    cls = registry.get(name)
    cfg = tiny_config(cls)
    if name == ENSEMBLE:
        members = _ensemble_members(root / "members", train)
        cfg = cfg.replace(members=members)
    model = cls(cfg)
    out = model.fit(train, run_dir=root / "run")
    assert out is model, "fit must return self"
    return model


@dataclass
class Fitted:
    name: str
    model: XMTCModel
    top: TopK
    train: Dataset
    test: Dataset


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, tiny_data, tmp_path_factory) -> Fitted:
    train, test = tiny_data
    model = build(request.param, train, tmp_path_factory.mktemp(request.param))
    return Fitted(request.param, model, model.predict(test, k=K), train, test)


def _save(f: Fitted, tmp_path: Path) -> Path:
    return f.model.save(tmp_path / "model")


def _assert_same(a: TopK, b: TopK) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", MODELS)
def test_config_contract(name):
    cls = registry.get(name)
    assert issubclass(cls.Config, Config)
    assert cls.name == name
    default = cls.Config()
    default.validate()
    undocumented = [f for f, doc in cls.Config.describe().items() if not doc.strip()]
    assert not undocumented, f"fields without a one-line doc: {undocumented}"
    cfg = tiny_config(cls)
    assert isinstance(cfg, cls.Config)
    assert cls.Config.from_dict(json.loads(cfg.to_json())) == cfg  # JSON round trip


@pytest.mark.parametrize("name", MODELS)
def test_unfitted_model_refuses_to_predict_or_save(name, tmp_path):
    cls = registry.get(name)
    model = cls(cls.Config())
    assert model.label_index_ is None
    with pytest.raises(XMTCError, match="not fitted"):
        model.predict(["some text"], k=3)
    with pytest.raises(XMTCError, match="not fitted"):
        model.save(tmp_path / "m")


# --------------------------------------------------------------------------------------------- predict
def test_fit_sets_label_index(fitted):
    assert fitted.model.label_index_ is not None
    assert fitted.model.label_index_.names == fitted.train.label_index.names


def test_predict_shapes_dtypes_and_order(fitted):
    top, n, L = fitted.top, len(fitted.test), fitted.train.n_labels
    assert isinstance(top, TopK)
    assert top.indices.shape == (n, K) and top.scores.shape == (n, K)
    assert top.indices.dtype == np.int32 and top.scores.dtype == np.float32
    assert top.n_labels == L
    assert ((top.indices >= -1) & (top.indices < L)).all()
    for ids, scores in zip(top.indices, top.scores, strict=True):
        valid = ids >= 0
        n_valid = int(valid.sum())
        assert valid[:n_valid].all(), f"-1 padding must come last: {ids}"
        assert n_valid >= 1
        assert len(set(ids[valid].tolist())) == n_valid, f"duplicate labels in a row: {ids}"
        s = scores[valid]
        assert np.isfinite(s).all()
        assert (np.diff(s) <= 1e-6).all(), f"scores must be sorted in decreasing order: {s}"


def test_k_larger_than_label_count_pads_with_minus_one(fitted):
    L = fitted.train.n_labels
    top = fitted.model.predict(fitted.test.texts[:6], k=L + 3)
    assert top.indices.shape == (6, L + 3)
    assert (top.indices[:, L:] == -1).all(), "positions beyond the label count must be -1"
    for ids in top.indices:
        real = ids[ids >= 0]
        assert len(set(real.tolist())) == len(real)


def test_learns_the_keyword_task(fitted):
    p1 = metrics.precision_at_k(fitted.test.Y, fitted.top, 1)
    assert p1 >= MIN_P1, f"{fitted.name} reaches P@1 {p1:.3f} on the keyword task (tiny config)"


def test_texts_and_dataset_give_the_same_predictions(fitted):
    _assert_same(fitted.model.predict(fitted.test.texts, k=K), fitted.top)


def test_prediction_of_a_subset_matches(fitted):
    rows = [3, 0, 7]
    top = fitted.model.predict([fitted.test.texts[i] for i in rows], k=K)
    np.testing.assert_array_equal(top.indices, fitted.top.indices[rows])
    np.testing.assert_allclose(top.scores, fitted.top.scores[rows], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_invalid_k_is_a_user_error(fitted, k):
    with pytest.raises(XMTCError, match="k must be a positive integer"):
        fitted.model.predict(fitted.test.texts[:2], k=k)


def test_single_string_is_rejected(fitted):
    with pytest.raises(XMTCError):
        fitted.model.predict("one document as a bare string", k=3)


# --------------------------------------------------------------------------------------------- persistence
def test_save_load_gives_identical_predictions(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["model"] == fitted.name and meta["n_labels"] == fitted.train.n_labels
    assert {"config.json", "label_index.json"} <= set(meta["sha256"])
    loaded = registry.load(path)
    assert type(loaded) is type(fitted.model)
    assert loaded.config == fitted.model.config
    assert loaded.label_index_.names == fitted.model.label_index_.names
    _assert_same(loaded.predict(fitted.test, k=K), fitted.top)


def test_saved_folder_holds_no_pickle(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    for f in path.rglob("*"):
        assert f.suffix not in (".pkl", ".pickle", ".pt", ".joblib"), f"{f.name}: pickle-based format"
        if f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as z:
                for key in z.files:
                    assert z[key].dtype != object


def test_same_seed_gives_identical_predictions(fitted, tmp_path):
    again = build(fitted.name, fitted.train, tmp_path)
    _assert_same(again.predict(fitted.test, k=K), fitted.top)


def _state_files(path: Path) -> list[str]:
    meta = json.loads((path / "meta.json").read_text())
    return [f for f in meta["sha256"] if f not in ("config.json", "label_index.json")]


def test_tampered_weight_file_is_refused(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    files = _state_files(path)
    assert files, "the model must record its state files (returned by _save_state) in meta.json"
    target = path / files[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        registry.load(path)


def test_missing_weight_file_is_refused(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    (path / _state_files(path)[-1]).unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        registry.load(path)


def test_incompatible_format_is_refused(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    meta["format"] = 999
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="format"):
        registry.load(path)


def test_folder_of_another_model_is_refused(fitted, tmp_path):
    path = _save(fitted, tmp_path)
    other = next((n for n in MODELS if n != fitted.name), None)
    if other is None:
        pytest.skip("only one model registered")
    with pytest.raises(ModelLoadError, match=f"not '{other}'"):
        registry.get(other).load(path)


def test_not_a_model_folder_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no meta.json"):
        registry.load(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="invalid JSON"):
        registry.load(tmp_path)


def test_load_accepts_a_run_folder(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(_save(fitted, tmp_path), run / "model")
    _assert_same(registry.load(run).predict(fitted.test, k=K), fitted.top)
