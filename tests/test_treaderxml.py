"""TReaderXML: teacher knowledge (no leakage, parents, descriptions), the (M)MHSA layers, Table 3 ablations,
the shortlist, persistence and the CLI. The generic contract (fit/predict/save/load/determinism) is in
test_model_contract.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmtc import metrics, registry
from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.data.split import Dataset
from xmtc.errors import ConfigError, ModelLoadError
from xmtc.models.treaderxml.candidates import gather_csr, shortlist, shortlist_recall, top_per_row
from xmtc.models.treaderxml.config import ABLATIONS, TReaderXMLConfig
from xmtc.models.treaderxml.model import TReaderXML
from xmtc.models.treaderxml.network import Reading, SelfAttention, TReaderNet, parse_reading
from xmtc.models.treaderxml.teacher import (
    TeacherKnowledge,
    bag_matrix,
    build_items,
    doc_vectors,
    id_texts,
    resolve_parent_mode,
)
from xmtc.text import Vocab, tokenize


# --------------------------------------------------------------------------------------------- config
def test_ablation_ids_set_teacher_and_reading():
    assert TReaderXMLConfig().reading == "mmhsa+r+mhsa" and TReaderXMLConfig().teacher
    for aid, (teacher, reading) in ABLATIONS.items():
        cfg = TReaderXMLConfig().with_overrides([f"ablation={aid}"])
        assert (cfg.teacher, cfg.reading) == (teacher, reading)
        assert TReaderXMLConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert [len(parse_reading(ABLATIONS[i][1])) for i in range(7)] == [0, 0, 1, 1, 2, 2, 2]
    assert parse_reading("mmhsa+r+mhsa") == [(True, True), (False, False)]
    assert parse_reading("mhsa+r+mmhsa") == [(False, True), (True, False)]


def test_capacity_defaults_match_attentionxml_fast_and_tiny_stays_small():
    cfg = TReaderXMLConfig()
    assert cfg.emb_dim >= 100 and cfg.bottleneck >= 256 and cfg.max_len == 256
    assert cfg.teacher_encoder == "tfidf" and cfg.teacher_prior and cfg.reading_residual
    assert cfg.interaction == "paper"
    tiny = TReaderXML.tiny_config()
    assert tiny.emb_dim <= 16 and tiny.bottleneck <= 16 and tiny.max_len <= 64


@pytest.mark.parametrize("change, match", [
    ({"ablation": 7}, "ablation must be -1 or a Table 3 configuration"),
    ({"reading": "mmhsa+x"}, "reading must be layers"),
    ({"reading": "r+mhsa"}, "reading must be layers"),
    ({"bottleneck": 30, "heads": 4}, "bottleneck must be a positive multiple of heads"),
    ({"parents": "grandparents"}, "parents must be one of"),
    ({"n_neighbours": 0}, "n_neighbours must be positive, but is 0"),
    ({"teacher_encoder": "bert"}, "teacher_encoder must be one of"),
    ({"interaction": "sum"}, "interaction must be one of"),
    ({"teacher_prior_init": [1.0]}, "teacher_prior_init must be two finite numbers"),
    ({"teacher_fusion": "votes"}, "teacher_fusion must be a number >= 0 or one of"),
    ({"teacher_fusion": -1.0}, "teacher_fusion must be a number >= 0 or one of"),
    ({"teacher_fusion_grid": []}, "teacher_fusion_grid must be finite weights"),
])
def test_invalid_config_values_are_config_errors(change, match):
    with pytest.raises(ConfigError, match=match):
        TReaderXMLConfig.from_dict(change)


# --------------------------------------------------------------------------------------------- layers
def test_masked_attention_never_looks_ahead_and_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    causal, plain = SelfAttention(8, 4, causal=True), SelfAttention(8, 4, causal=False)
    changed = x.clone()
    changed[:, 3:] += 5.0  # positions 3.. differ
    torch.testing.assert_close(causal(x, mask)[:, :3], causal(changed, mask)[:, :3])  # MMHSA: no look-ahead
    assert not torch.allclose(plain(x, mask)[0, :3], plain(changed, mask)[0, :3])  # MHSA sees the whole text
    padded = x.clone()
    padded[1, 4:] = 100.0  # padding of document 1
    out = plain(padded, mask)
    torch.testing.assert_close(out[1, :4], plain(x, mask)[1, :4])
    assert (out[1, 4:] == 0).all() and out.abs().max() <= 1  # tanh output, zeros at padding


def test_reading_residual_adds_the_input():
    torch.manual_seed(0)
    x, mask = torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool)
    reading = Reading(8, 4, "mmhsa+r")
    torch.testing.assert_close(reading(x, mask), x + reading.layers[0](x, mask))
    assert len(Reading(8, 4, "").layers) == 0


@pytest.mark.parametrize("pooling", ["mean", "label_attention"])
def test_network_scores_all_labels_or_candidates_consistently(pooling, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(TReaderNet, "LABEL_BLOCK", 4)  # all labels at prediction: two blocks of labels
    cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0, pooling=pooling)
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    net = TReaderNet(vectors, 6, cfg).eval()
    ids = torch.tensor([[2, 3, 4], [5, 6, 0]])
    mask = ids != 0
    bags = sp.csr_matrix(np.eye(6, 10, k=2, dtype=np.float32))
    teacher = TeacherKnowledge(vectors, vectors[:2], sp.csr_matrix((2, 6)), bags, sp.eye(6, format="csr"),
                               n_neighbours=1, size=3)
    tb = teacher.batch(np.array([[0, 4, -1], [-1, -1, -1]]), torch.device("cpu"))
    full = net(ids, mask, tb)  # (2, 6)
    cand = torch.tensor([[5, 1, -1], [0, 2, 3]])
    part = net(ids, mask, tb, cand)  # (2, 3)
    torch.testing.assert_close(part[0, :2], full[0, [5, 1]])
    torch.testing.assert_close(part[1], full[1, [0, 2, 3]])
    with torch.enable_grad():  # the one-pass all-labels path (training) gives the blocked path's scores
        torch.testing.assert_close(net(ids, mask, tb), full)


def test_label_attention_scores_each_label_from_its_own_attended_vector():
    torch.manual_seed(0)
    cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0, pooling="label_attention",
                           teacher=False)
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    net = TReaderNet(vectors, 3, cfg).eval()
    ids = torch.tensor([[2, 3, 4, 0]])
    mask = ids != 0
    z = torch.randn(1, 4, 8)
    with torch.no_grad():
        net.label_attention.weight[1] = 0.0  # label 1 attends uniformly over the three real positions
        logits = net.label_logits(z, mask, None)
    m1 = z[0, :3].mean(0)
    torch.testing.assert_close(logits[0, 1], m1 @ net.out.weight[1] + net.out.bias[1])
    with pytest.raises(ConfigError, match="pooling must be one of"):
        TReaderXMLConfig(pooling="max").validate()


def _net_inputs(vectors: np.ndarray, n_labels: int = 6):
    """(ids, mask, teacher batch) of two documents (the second padded) with 2 / 1 teacher items."""
    ids = torch.tensor([[2, 3, 4, 5, 6], [5, 6, 7, 0, 0]])
    bags = sp.csr_matrix(np.eye(n_labels, len(vectors), k=2, dtype=np.float32))
    teacher = TeacherKnowledge(vectors, vectors[:2], sp.csr_matrix((2, n_labels)), bags,
                               sp.eye(n_labels, format="csr"), n_neighbours=1, size=3)
    return ids, ids != 0, teacher.batch(np.array([[0, 4, -1], [1, -1, -1]]), torch.device("cpu"))


def test_residual_layer_norm_wraps_every_attention_block_and_keeps_padding_out():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    reading = Reading(8, 4, "mmhsa+mhsa", norm=True)  # no '+r': the norm option adds the residual anyway
    h = x
    for layer, norm in zip(reading.layers, reading.norms, strict=True):
        h = norm(h + layer(h, mask)) * mask.unsqueeze(-1)
    torch.testing.assert_close(reading(x, mask), h)
    paper = Reading(8, 4, "mmhsa+mhsa")
    assert paper.norms is None
    torch.testing.assert_close(paper(x, mask), paper.layers[1](paper.layers[0](x, mask), mask))
    changed = x.clone()
    changed[1, 4:] = 50.0  # padding of document 1
    out = reading(changed, mask)
    torch.testing.assert_close(out[1, :4], reading(x, mask)[1, :4])
    assert (out[1, 4:] == 0).all()


@pytest.mark.parametrize("interaction", ["paper", "lcf"])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("reading", ["", "mmhsa+r+mhsa"])
def test_network_shapes_and_padding_with_every_interaction(interaction, residual, reading):
    torch.manual_seed(0)
    cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0, reading=reading,
                           reading_residual=residual, interaction=interaction)
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    net = TReaderNet(vectors, 6, cfg).eval()
    assert (net.fuse is not None) == (interaction == "lcf") and (net.interaction_norm is not None) == residual
    ids, mask, tb = _net_inputs(vectors)
    logits = net(ids, mask, tb)
    assert logits.shape == (2, 6) and torch.isfinite(logits).all()
    noisy = ids.clone()
    noisy[1, 3:] = 9  # real token ids at padded positions: they must get no weight anywhere
    torch.testing.assert_close(net(noisy, mask, tb), logits)
    cand = torch.tensor([[5, 1, -1], [0, 2, 3]])
    torch.testing.assert_close(net(ids, mask, tb, cand)[1], logits[1, [0, 2, 3]])
    if interaction == "lcf":  # position i = [item i; word i]: 5 positions, doc 1 counts words 0-2, item 0
        oy, ym = torch.randn(2, 3, 8), torch.tensor([[True, True, False], [True, False, False]])
        fused, m = net.fuse_features(oy, ym, torch.randn(2, 5, 8), mask)
        assert fused.shape == (2, 5, 8) and m.tolist() == mask.tolist()
        assert (fused[1, 3:] == 0).all()
        a, _ = net.fuse_features(oy, ym, torch.zeros(2, 5, 8), mask)
        changed = oy.clone()
        changed[0, 2] = 7.0  # a padded teacher slot
        b, _ = net.fuse_features(changed, ym, torch.zeros(2, 5, 8), mask)
        torch.testing.assert_close(a, b)


def test_residual_path_carries_the_signal_when_attention_is_silent():
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    ids, mask, tb = _net_inputs(vectors)
    outputs = {}
    for residual in (True, False):
        cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0, reading_residual=residual,
                               teacher_prior=False)
        net = TReaderNet(vectors, 6, cfg).eval()
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, SelfAttention):
                    module.proj.weight.zero_()  # every attention block now outputs tanh(0) = 0
        outputs[residual] = net(ids, mask, tb)
    assert not torch.allclose(outputs[True][0], outputs[True][1])  # the residual path still reads the text
    torch.testing.assert_close(outputs[False][0], outputs[False][1])  # the paper's stack: only the bias left


def test_teacher_prior_marks_each_label_the_teacher_proposes():
    torch.manual_seed(0)
    cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0, reading="")
    assert cfg.teacher_prior and cfg.teacher_prior_init == [8.0, 2.0]  # on by default, at a useful scale
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    net = TReaderNet(vectors, 6, cfg).eval()
    torch.testing.assert_close(net.prior.detach(), torch.tensor([8.0, 2.0]))
    ids = torch.tensor([[2, 3, 4], [5, 6, 0]])
    teacher = TeacherKnowledge(vectors, vectors[:2], sp.csr_matrix((2, 6)), sp.csr_matrix(np.eye(6, 10, k=2,
                               dtype=np.float32)), sp.eye(6, format="csr"), n_neighbours=1, size=3)
    tb = teacher.batch(np.array([[0, 4, -1], [1, -1, -1]]), torch.device("cpu"))
    votes = torch.tensor([[0.75, 0, 0, 0, 0.25, 0], [0, 1.0, 0, 0, 0, 0]])  # (b, L) vote shares
    plain = net(ids, ids != 0, tb)
    with_prior = net(ids, ids != 0, tb, prior=votes)
    torch.testing.assert_close(with_prior - plain, 8 * votes + 2 * (votes > 0).float())  # label by label
    cand = torch.tensor([[4, 2, -1], [1, 0, 3]])
    part = net(ids, ids != 0, tb, cand, prior=torch.gather(votes, 1, cand.clamp(min=0)))
    torch.testing.assert_close(part[:, :2], with_prior.gather(1, cand.clamp(min=0))[:, :2])
    off = TReaderNet(vectors, 6, cfg.replace(teacher_prior=False))
    assert off.prior is None and TReaderNet(vectors, 6, cfg.replace(teacher=False)).prior is None


# --------------------------------------------------------------------------------------------- teacher
def _vocab() -> Vocab:
    return Vocab.build([["alpha", "beta", "gamma", "delta", "court", "trade", "law", "fish"]])


def test_doc_vectors_are_mean_word_vectors_without_unknown_tokens():
    vocab = _vocab()
    w = np.arange(len(vocab) * 2, dtype=np.float32).reshape(-1, 2)
    ids = [vocab.encode(["alpha", "zzz", "beta"]), vocab.encode(["zzz"])]
    v = doc_vectors(ids, w)
    np.testing.assert_allclose(v[0], (w[vocab.index("alpha")] + w[vocab.index("beta")]) / 2)
    np.testing.assert_allclose(v[1], w[1])  # only unknown words: the unknown vector
    assert bag_matrix(ids, len(vocab)).sum(axis=1).A.ravel().tolist() == [1.0, 1.0]


def test_items_from_hierarchy_descriptions_and_tree():
    vocab, index = _vocab(), LabelIndex(["a", "b", "c"])
    h = Hierarchy([("a", "b"), ("a", "outside"), ("c", "outside")])
    desc = {"a": "Alpha beta gamma delta court", "outside": "trade law"}
    bags, items, extra = build_items(index, tokenize, vocab, mode="index", hierarchy=h, descriptions=desc,
                                     desc_words=2)
    assert extra == [] and items.toarray().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert sorted(vocab.decode(bags[0].indices)) == ["alpha", "beta"]  # truncated to 2 description words
    assert bags[2].indices.tolist() == [1]  # no description, name 'c' unknown -> <unk>
    bags, items, extra = build_items(index, tokenize, vocab, mode="all", hierarchy=h, descriptions=desc,
                                     desc_words=4)
    assert extra == ["outside"] and items.shape == (3, 4) and items[2, 3] == 1 and items[0, 3] == 1
    assert sorted(vocab.decode(bags[3].indices)) == ["law", "trade"]
    bags, items, extra = build_items(index, tokenize, vocab, mode="tree", hierarchy=None, descriptions=desc,
                                     desc_words=4, clusters=np.array([0, 1, 0]))
    assert extra == ["cluster:0", "cluster:1"] and items[0, 3] == 1 and items[2, 3] == 1 and items[1, 4] == 1
    np.testing.assert_allclose(bags[3].toarray(), (bags[0].toarray() + bags[2].toarray()) / 2)
    assert resolve_parent_mode("auto", h, index) == "index"
    assert resolve_parent_mode("auto", Hierarchy([("a", "outside")]), index) == "tree"
    assert resolve_parent_mode("auto", None, index) == "tree"


def test_training_documents_never_use_their_own_labels():
    # 6 documents, two topics; each document also has a private label only it carries.
    vectors = np.array([[1, 0], [1, 0.1], [1, 0.2], [0, 1], [0.1, 1], [0.2, 1]], dtype=np.float32)
    Y = sp.csr_matrix(np.hstack([np.repeat(np.eye(2), 3, axis=0), np.eye(6)]).astype(np.float32))  # (6, 8)
    L = Y.shape[1]
    t = TeacherKnowledge(vectors, vectors, Y, sp.eye(L, format="csr"), sp.eye(L, format="csr"), 2, 8)
    out = t.query(training=True)
    for i in range(6):
        items = set(out.items[i][out.items[i] >= 0].tolist())
        assert 2 + i not in items, f"document {i} sees its own private label"
        assert (0 if i < 3 else 1) in items  # the topic label of its neighbours
        assert len(items & ({2, 3, 4} if i < 3 else {5, 6, 7})) == 2  # its two neighbours' private labels


def _tiny_teachers(tiny_data, max_len: int = 64) -> tuple[dict[str, TeacherKnowledge], list, sp.csr_matrix]:
    """Both teachers of the tiny keyword task (word2vec on its training texts), the test ids and gold labels."""
    from xmtc.text import train_word2vec

    train, test = tiny_data
    tokens = [tokenize(t) for t in train.texts]
    vocab = Vocab.build(tokens)
    vectors = train_word2vec(tokens, vocab, dim=16, epochs=5, seed=0)
    L = train.n_labels
    ids = [vocab.encode(t, max_len) for t in tokens]
    teachers = {enc: TeacherKnowledge.build(ids, train.Y, encoder=enc, word_vectors=vectors,
                                            item_bags=sp.eye(L, len(vocab), format="csr"),
                                            label_items=sp.eye(L, format="csr"), n_neighbours=5, size=L)
                for enc in ("tfidf", "mean_w2v")}
    return teachers, [vocab.encode(tokenize(t), max_len) for t in test.texts], test.Y


def test_tfidf_teacher_votes_recall_at_least_the_mean_vector_teachers(tiny_data):
    teachers, test_ids, Y = _tiny_teachers(tiny_data)
    assert teachers["tfidf"].encoder == "tfidf" and teachers["mean_w2v"].encoder == "mean_w2v"
    recall = {}
    for enc, t in teachers.items():
        top, _ = top_per_row(t.query(test_ids).label_scores, 3)  # the teacher's 3 best-voted labels
        recall[enc] = shortlist_recall(top, Y)
        own = t.query(training=True)  # training documents: neighbours among the others
        assert shortlist_recall(top_per_row(own.label_scores, 3)[0], t.base_Y) > 0.5
    assert recall["tfidf"] >= recall["mean_w2v"] and recall["tfidf"] > 0.8, recall


def test_tfidf_teacher_reads_only_the_models_truncated_known_tokens(tiny_data, tmp_path):
    ids = [np.array([5, 1, 7, 5]), np.array([1]), np.array([9, 8, 7, 6])]
    assert id_texts(ids) == ["5 7 5", "", "9 8 7 6"]  # unknown (1) dropped
    teachers, test_ids, _ = _tiny_teachers(tiny_data, max_len=4)
    t = teachers["tfidf"]
    assert all(term.isdigit() and int(term) > 1 for term in t.tfidf.terms)  # terms = the model's token ids
    assert np.diff(t.base_vectors.indptr).max() <= 4  # the first max_len = 4 tokens only
    assert (t.vectors(test_ids)[:, :] > 0).sum(axis=1).max() <= 4
    path = tmp_path / "m"
    path.mkdir()
    files = t.save(path)
    assert sorted(files) == ["teacher.npz", "teacher_tfidf.idf.npz", "teacher_tfidf.vocab.json"]
    loaded = TeacherKnowledge.load(path, t.base_Y.shape[1], t.item_bags.shape[1])
    assert loaded.encoder == "tfidf" and loaded.word_vectors is None
    np.testing.assert_array_equal(loaded.query(test_ids).items, t.query(test_ids).items)
    np.testing.assert_array_equal(loaded.query(training=True).items, t.query(training=True).items)
    w2v = teachers["mean_w2v"]
    (tmp_path / "w").mkdir()
    assert w2v.save(tmp_path / "w") == ["teacher.npz"]
    again = TeacherKnowledge.load(tmp_path / "w", w2v.base_Y.shape[1], w2v.item_bags.shape[1])
    assert again.encoder == "mean_w2v"
    np.testing.assert_array_equal(again.query(test_ids).items, w2v.query(test_ids).items)


def test_top_per_row_matches_sorting():
    m = sp.random(20, 30, density=0.2, random_state=1, format="csr", dtype=np.float32)
    cols, vals = top_per_row(m, 4)
    dense = m.toarray()
    for r in range(20):
        order = sorted(np.flatnonzero(dense[r]), key=lambda c: (-dense[r, c], c))[:4]
        assert cols[r][cols[r] >= 0].tolist() == order
        np.testing.assert_allclose(vals[r][: len(order)], dense[r, order])


def test_shortlist_holds_teacher_labels_cluster_mates_and_positives():
    scores = sp.csr_matrix(np.array([[0.0, 3.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]],
                                    dtype=np.float32))
    clusters = np.array([0, 0, 1, 1, 2, 2])
    cand = shortlist(scores, clusters, n_labels=1, n_clusters=1)
    assert sorted(cand[0][cand[0] >= 0].tolist()) == [0, 1]  # label 1 and its cluster mate 0
    assert (cand[1] == -1).all()
    pos = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0]], dtype=np.float32))
    cand = shortlist(scores, clusters, n_labels=2, n_clusters=2, positives=pos)
    assert sorted(cand[0][cand[0] >= 0].tolist()) == [0, 1, 2, 3, 5] and cand[1][cand[1] >= 0].tolist() == [2]
    assert shortlist_recall(cand, pos) == 1.0
    assert shortlist_recall(np.array([[1, -1], [-1, -1]]), pos) == 0.0


def test_gather_csr_reads_entries_without_densifying():
    m = sp.random(5, 9, density=0.3, format="csr", random_state=0, dtype=np.float32)
    cols = np.array([[0, 1, 2, -1], [8, 7, 6, 5], [3, 3, -1, -1], [0, 0, 0, 0], [4, 5, 6, 7]])
    expected = np.take_along_axis(m.toarray(), np.maximum(cols, 0), axis=1) * (cols >= 0)
    np.testing.assert_allclose(gather_csr(m, cols), expected)
    assert not gather_csr(sp.csr_matrix((5, 9)), cols).any()


def test_output_bias_starts_at_label_log_odds():
    cfg = TReaderXMLConfig(bottleneck=8, heads=4)
    net = TReaderNet(np.zeros((5, 8), dtype=np.float32), 3, cfg)
    Y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.float32)
    net.init_output_bias(sp.csr_matrix(Y))
    p = np.array([0.75, 0.25, 0.125])  # a label without documents counts as half a document
    np.testing.assert_allclose(net.out.bias.detach().numpy(), np.log(p / (1 - p)), rtol=1e-5)


# --------------------------------------------------------------------------------------------- the model
def _tiny(**changes) -> TReaderXMLConfig:
    """The tiny config with ``changes``, where only the fields tiny_config sets and ``changes`` count as the
    user's (``replace`` would make every field explicit, so an ``ablation`` preset would fill nothing)."""
    base = TReaderXML.tiny_config()
    data = {k: v for k, v in base.to_dict().items() if k in base.explicit_fields()}
    return TReaderXMLConfig.from_dict({**data, **changes})


def _with_label_hierarchy(train: Dataset) -> Dataset:
    """The tiny data with a hierarchy between its own labels (lab1..lab7 -> lab0) and descriptions."""
    names = train.label_index.names
    h = Hierarchy([(n, names[0]) for n in names[1:]] + [(names[1], "not_a_label")])
    return Dataset(Y=train.Y, label_index=train.label_index, texts=train.texts, hierarchy=h, name="tiny",
                   label_descriptions={n: f"{n} description words" for n in names})


@pytest.fixture(scope="module")
def fitted(tiny_data, tmp_path_factory):
    train, test = tiny_data
    cfg = TReaderXML.tiny_config().replace(shortlist=True, shortlist_labels=3, shortlist_clusters=1,
                                           teacher_prior=True)
    model = TReaderXML(cfg).fit(_with_label_hierarchy(train), run_dir=tmp_path_factory.mktemp("run"))
    return model, test


def test_fit_uses_hierarchy_parents_and_records_recall(fitted):
    model, test = fitted
    assert model.parent_mode_ == "index" and model.use_shortlist_
    assert model.teacher_.n_items == model.n_labels_  # the parent outside the label index was skipped
    assert model.teacher_.label_items[1, 0] == 1  # lab1 -> lab0
    stats = model.stats_
    assert 0 < stats["teacher_label_recall"] <= 1 and 0 < stats["shortlist_recall"] <= 1
    assert 0 <= stats["teacher_parent_items_per_doc"] <= 1  # only lab0 can come in as a parent alone
    prior = model.networks_["network"].prior.detach()
    assert (prior != torch.tensor([8.0, 2.0])).all()  # both teacher-prior scalars moved from their start
    top = model.predict(test, k=5)
    assert metrics.precision_at_k(test.Y, top, 1) >= 0.5
    labels = model.teacher_labels(test.texts[:2], k=3)
    assert len(labels) == 2 and all(set(r) <= set(model.label_index_.names) for r in labels)


def test_shortlist_model_round_trips_and_checks_its_files(fitted, tmp_path):
    model, test = fitted
    path = model.save(tmp_path / "m")
    assert {"teacher.npz", "clusters.npz"} <= set(json.loads((path / "meta.json").read_text())["sha256"])
    loaded = registry.load(path)
    a, b = model.predict(test, k=4), loaded.predict(test, k=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    with np.load(path / "teacher.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["label_items_shape"] = np.asarray([3, 3])
    np.savez(path / "teacher.npz", **arrays)
    meta = json.loads((path / "meta.json").read_text())
    from xmtc.models.base import _sha256

    meta["sha256"]["teacher.npz"] = _sha256(path / "teacher.npz")
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="teacher"):
        registry.load(path)


def test_teacher_fusion_is_chosen_on_validation_and_saved(fitted, tmp_path):
    """The weight of logit + w * log(vote share) is the best on validation; w = inf ranks by the teacher's
    votes; w = 0 is the network alone; the weight survives save/load."""
    model, test = fitted
    table = model.stats_["teacher_fusion_validation"]
    assert set(table) == {"0.0", "0.5", "1.0", "2.0", "4.0", "8.0", "inf"}
    chosen = model.stats_["teacher_fusion_weight"]
    assert table[str(chosen)] == max(table.values()) and model.fusion_partner_ == "its teacher's votes"
    loaded = registry.load(model.save(tmp_path / "m"))
    assert loaded.fusion_weight_ == model.fusion_weight_
    w = model.fusion_weight_
    try:
        model.fusion_weight_ = float("inf")
        top = model.predict(test, k=1)
        votes = model.teacher_.query(model.encode(test.texts).ids).label_scores
        best = np.asarray(votes.max(axis=1).todense()).ravel()
        got = np.asarray(votes[np.arange(len(test)), np.maximum(top.indices[:, 0], 0)]).ravel()
        np.testing.assert_allclose(got, best, rtol=1e-6)  # each document's top label has the most votes
        model.fusion_weight_ = w
        np.testing.assert_array_equal(model.predict(test, k=3).indices, loaded.predict(test, k=3).indices)
    finally:
        model.fusion_weight_ = w


def test_label_attention_model_learns_and_round_trips(tiny_data, tmp_path):
    train, test = tiny_data
    model = TReaderXML(_tiny(pooling="label_attention", epochs=4)).fit(train)
    assert model.networks_["network"].label_attention is not None
    top = model.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) >= 0.5
    loaded = registry.load(model.save(tmp_path / "m"))
    assert loaded.config.pooling == "label_attention"
    np.testing.assert_allclose(loaded.predict(test, k=3).scores, top.scores, rtol=1e-5)


def test_teacher_fusion_is_off_without_teacher_and_fixed_when_set(tiny_data):
    train, _ = tiny_data
    off = TReaderXML(_tiny(ablation=0, epochs=1, decay_epochs=0)).fit(train)
    assert off.fusion_weight_ == 0.0 and "teacher_fusion_validation" not in off.stats_
    assert off.fusion_partner_ is None
    fixed = TReaderXML(_tiny(epochs=1, decay_epochs=0, teacher_fusion="none")).fit(train)
    assert fixed.fusion_weight_ == 0.0 and fixed.stats_["teacher_fusion_weight"] == 0.0


def test_ablation_zero_has_no_teacher_branch(tiny_data, tmp_path):
    train, test = tiny_data
    model = TReaderXML(_tiny(ablation=0, epochs=2, decay_epochs=0)).fit(train)
    assert model.teacher_ is None and model.networks_["network"].read_y is None
    assert len(model.networks_["network"].read_x.layers) == 0
    path = model.save(tmp_path / "m")
    assert not (path / "teacher.npz").exists()
    again = registry.load(path).predict(test, k=3)
    np.testing.assert_array_equal(again.indices, model.predict(test, k=3).indices)


def test_cli_trains_an_ablation(tiny_dir, tmp_path, xmtc_cli):
    cfg = _tiny(epochs=2, decay_epochs=0)  # a JSON of the fields set, so that ablation=1 fills the rest
    (tmp_path / "cfg.json").write_text(json.dumps({k: v for k, v in cfg.to_dict().items()
                                                   if k in cfg.explicit_fields()}))
    res = xmtc_cli("train", "--model", "treaderxml", "--data", tiny_dir, "--out", tmp_path / "run",
                   "--config", tmp_path / "cfg.json", "--set", "ablation=1")
    assert res.returncode == 0, str(res)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["ablation"] == 1 and saved["reading"] == "" and saved["teacher"] is True
    bad = xmtc_cli("train", "--model", "treaderxml", "--data", tiny_dir, "--out", tmp_path / "bad",
                   "--set", "reading=mmhsa+q")
    assert bad.returncode != 0 and "reading must be layers" in bad.stderr + bad.stdout


# --------------------------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_teacher_on_eurlex57k_uses_eurovoc_parents(shared_data):
    from xmtc.data import load

    folder = shared_data / "eurlex57k"
    if not folder.is_dir():
        pytest.skip("eurlex57k is not in the shared data")
    (train,) = load(folder, ("train",), max_docs=3000)
    model = TReaderXML(TReaderXMLConfig(emb_dim=32, w2v_epochs=1, epochs=1, decay_epochs=0, max_len=64,
                                        bottleneck=32, progress=False, threads=1, device="cpu"))
    model.fit(train)
    assert model.parent_mode_ == "index"
    assert model.teacher_.label_items.nnz > model.n_labels_ + 1000  # EuroVoc broader terms inside the index
    assert model.stats_["teacher_label_recall"] > 0.3


def test_network_logits_are_float32_under_bf16_autocast():
    """bf16 keeps 8 bits of mantissa: ranked logits must come out of a float32 output layer (as AttentionXML's)."""
    torch.manual_seed(0)
    cfg = TReaderXMLConfig(bottleneck=8, heads=4, dropout=0.0, emb_dropout=0.0)
    vectors = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    net = TReaderNet(vectors, 6, cfg).eval()
    ids, mask, tb = _net_inputs(vectors)
    cand = torch.tensor([[5, 1, -1], [0, 2, 3]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full, part = net(ids, mask, tb), net(ids, mask, tb, cand)
    assert full.dtype == torch.float32 and part.dtype == torch.float32
    torch.testing.assert_close(part[1], full[1, [0, 2, 3]])


def test_step_cost_benchmark_times_every_treaderxml_case(tmp_path):
    from benchmarks import step_cost
    from benchmarks.schema import load as load_result

    out = tmp_path / "steps.json"
    step_cost.main(["--model", "treaderxml", "--labels", "12", "--teacher-items", "3", "--steps", "1", "--seq", "16",
                    "--out", str(out)])
    rows = load_result(out)["rows"]
    assert [(r["teacher"], r["bf16"]) for r in rows] == [(True, False), (True, True), (False, False), (False, True)]
    assert all(r["step_cpu_s"] > 0 and r["labels"] == 12 for r in rows)
    assert rows[2]["teacher_items"] == 0 and rows[0]["teacher_items"] == 3


def test_profile_fit_benchmark_lists_where_the_time_goes(tiny_dir_with_valid, capsys):
    from benchmarks import profile_fit

    profile_fit.main(["--data", str(tiny_dir_with_valid), "--model", "treaderxml", "--max-train", "40",
                      "--max-valid", "10", "--top", "5", "--set", "emb_dim=8", "bottleneck=8", "max_len=16",
                      "heads=2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("treaderxml fit on 40 documents:") and len(out) == 2 + 5
    shares = [float(line.split()[1].rstrip("%")) for line in out[2:]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.0


def test_profile_fit_applies_only_the_default_keys_a_model_has(tiny_dir_with_valid, capsys):
    """AttentionXML has no ``decay_epochs``: the profile still runs (it failed with an unknown-key error)."""
    from benchmarks import profile_fit

    profile_fit.main(["--data", str(tiny_dir_with_valid), "--model", "attentionxml", "--max-train", "40",
                      "--max-valid", "10", "--top", "3", "--set", "emb_dim=8", "hidden=8", "fc=[8]",
                      "max_len=16", "tree=false"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("attentionxml fit on 40 documents:") and len(out) == 2 + 3
