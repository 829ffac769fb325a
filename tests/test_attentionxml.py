"""AttentionXML: label-tree training, beam search, ensembles, persistence, resume and explanations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import make_tiny_corpus

import xmtc
from xmtc import metrics
from xmtc.data import Dataset, LabelIndex
from xmtc.errors import ConfigError, ModelLoadError, XMTCError
from xmtc.models.attentionxml import model as ax_module
from xmtc.models.attentionxml.levels import TreeLevels, candidate_targets, training_candidates
from xmtc.models.attentionxml.model import AttentionXML, AttentionXMLConfig
from xmtc.models.attentionxml.network import AttentionNet
from xmtc.models.baselines import XMLCNN, XMLRNN
from xmtc.predict import beam_search, beam_search_grid, merge_topk
from xmtc.text import tokenize

# 16 labels in 4 leaf clusters of 4: a two-level tree (4 cluster nodes, then the labels)
TREE = {"tree": True, "cluster_size": 4, "tree_top": 4, "candidates": 2, "beam": 2, "level_epochs": [10, 16]}


def tree_config(**changes) -> AttentionXMLConfig:
    return AttentionXML.tiny_config().replace(**{**TREE, **changes})


def keyword_data(n_docs: int, seed: int, index: LabelIndex | None = None, n_labels: int = 16) -> Dataset:
    texts, labels = make_tiny_corpus(n_docs, seed, n_labels=n_labels)
    index = index or LabelIndex.build(labels)
    Y, unseen, _ = index.encode(labels)
    return Dataset(Y=Y, label_index=index, texts=texts, unseen=unseen, name="tiny16")


@pytest.fixture(scope="module")
def data16() -> tuple[Dataset, Dataset]:
    """(train, test) of the keyword task with 16 labels (200 / 60 documents)."""
    train = keyword_data(200, 0)
    return train, keyword_data(60, 2, train.label_index)


@pytest.fixture(scope="module")
def tree_model(data16):
    return AttentionXML(tree_config()).fit(data16[0])


# ------------------------------------------------------------------------- config
def test_presets_fill_unset_fields_and_round_trip():
    fast = AttentionXMLConfig(preset="fast")
    assert fast.hidden == 96 and fast.max_len == 256 and fast.emb_dim == 100
    assert AttentionXMLConfig(preset="fast", hidden=32).hidden == 32  # explicit values win
    large = AttentionXMLConfig(preset="large")
    assert large.hidden == 512 and large.fc == [512, 256]
    assert AttentionXMLConfig.from_dict(fast.to_dict()) == fast
    assert AttentionXMLConfig().with_overrides(["preset=fast"]).emb_dim == 100
    with pytest.raises(ConfigError, match="preset"):
        AttentionXMLConfig(preset="huge").validate()
    with pytest.raises(ConfigError, match="beam"):
        AttentionXMLConfig(beam=0).validate()


def test_fc_dropout_and_xavier_fc_options():
    from torch import nn

    emb = np.zeros((10, 8), dtype=np.float32)
    base = dict(hidden=8, fc=[64], emb_dim=8)

    def drops(net):
        return [m.p for m in net.head.modules() if isinstance(m, nn.Dropout)]

    assert drops(AttentionNet(emb, 5, AttentionXMLConfig(dropout=0.3, **base))) == [0.3]  # null: 'dropout'
    assert drops(AttentionNet(emb, 5, AttentionXMLConfig(dropout=0.3, fc_dropout=0.0, **base))) == [0.0]
    torch.manual_seed(0)
    default = AttentionNet(emb, 5, AttentionXMLConfig(**base)).head.net[0].weight
    torch.manual_seed(0)
    xavier = AttentionNet(emb, 5, AttentionXMLConfig(xavier_fc=True, **base)).head.net[0].weight
    fan_in, fan_out = 16, 64  # BiLSTM output (2 x 8) -> 64
    bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier-uniform's bound; PyTorch's default is 1/sqrt(fan_in)
    assert float(xavier.abs().max()) <= bound and float(xavier.abs().max()) > 1 / fan_in ** 0.5
    assert float(default.abs().max()) <= 1 / fan_in ** 0.5
    with pytest.raises(ConfigError, match="fc_dropout"):
        AttentionXMLConfig(fc_dropout=1.0).validate()


def test_label_output_starts_at_zero_and_children_start_from_their_parent():
    emb = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    base = dict(hidden=8, fc=[16], emb_dim=8, dropout=0.0, emb_dropout=0.0)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    mask = ids > 0
    torch.manual_seed(0)
    plain = AttentionNet(emb, 3, AttentionXMLConfig(**base)).eval()
    torch.manual_seed(0)
    lwan = AttentionNet(emb, 3, AttentionXMLConfig(label_output=True, **base)).eval()
    assert plain.label_output is None and lwan.label_output.weight.shape == (3, 16)
    with torch.no_grad():  # zero at the start: the same logits as the paper's network
        assert torch.allclose(plain(ids, mask), lwan(ids, mask))
        lwan.label_output.weight.copy_(torch.randn(3, 16))
        lwan.label_output.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
        cand = torch.tensor([[2, 0], [1, 1]])
        full = lwan(ids, mask)
        assert torch.allclose(lwan(ids, mask, cand), torch.gather(full, 1, cand), atol=1e-5)  # both paths agree
        m = lwan.attention(lwan.encode(ids, mask), mask)
        term = (m * lwan.label_output.weight).sum(-1) + lwan.label_output.bias
        assert torch.allclose(full - plain(ids, mask), term, atol=1e-5)  # the shared head's logit + u_j.m_j + b_j
    child = AttentionNet(emb, 6, AttentionXMLConfig(label_output=True, **base))
    parents = np.array([0, 0, 1, 1, 2, 2])
    child.init_from(lwan, parents)
    assert torch.equal(child.label_output.bias, lwan.label_output.bias[parents])
    assert torch.equal(child.label_output.weight, lwan.label_output.weight[parents])
    assert torch.equal(child.attention.weight, lwan.attention.weight[parents])


def test_label_output_tree_trains_and_loads_with_identical_predictions(data16, tmp_path):
    train, test = data16
    model = AttentionXML(tree_config(label_output=True)).fit(train)
    top = model.predict(test, k=5)
    assert metrics.precision_at_k(test.Y, top, 1) > 0.5  # the keyword task is easy
    loaded = xmtc.load(model.save(tmp_path / "m"))
    again = loaded.predict(test, k=5)
    assert np.array_equal(top.indices, again.indices) and np.allclose(top.scores, again.scores)
    assert loaded.networks_["tree0.level2"].label_output.weight.abs().sum() > 0  # it trained and was saved


def test_lightattention_takes_the_same_fc_options():
    from torch import nn

    from xmtc.models.lightattention.model import LightAttentionConfig
    from xmtc.models.lightattention.network import LightAttentionNet

    emb = np.zeros((10, 8), dtype=np.float32)
    cfg = LightAttentionConfig(hidden=8, fc=[64], emb_dim=8, dropout=0.3, fc_dropout=0.0, xavier_fc=True)
    net = LightAttentionNet(emb, 6, 2, cfg)
    for stack in (net.generator, net.disc_fc):
        assert [m.p for m in stack.modules() if isinstance(m, nn.Dropout)] == [0.0]
        assert float(stack.net[0].weight.abs().max()) > 1 / 16 ** 0.5  # above PyTorch's default bound: Xavier
    with pytest.raises(ConfigError, match="fc_dropout"):
        LightAttentionConfig(fc_dropout=-0.1).validate()


# ------------------------------------------------------------------------- tree structure
def test_tree_levels_children_targets_and_candidates():
    levels = TreeLevels([2, 4, 8], [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1, 2, 2, 3, 3])])
    assert levels.children(0).tolist() == [[0, 1], [2, 3]]
    assert levels.ancestors(0).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    Y = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0, 0, 0]], dtype=np.float32))
    assert levels.targets(Y, 0).toarray().tolist() == [[1, 1], [1, 0]]
    assert levels.targets(Y, 1).toarray().tolist() == [[1, 0, 0, 1], [0, 1, 0, 0]]
    # positives (node 3 for doc 0, node 1 for doc 1) always enter; predicted ones fill up to C = 2 parents
    cand = training_candidates(np.array([[0, 2], [2, 0]]), levels.targets(Y, 1), levels.children(1), 2)
    assert sorted(cand[0][cand[0] >= 0].tolist()) == [0, 1, 6, 7]
    assert sorted(cand[1][cand[1] >= 0].tolist()) == [2, 3, 4, 5]
    target = candidate_targets(cand, Y)
    assert target.sum() == 3 and all(target[r][cand[r] == c].sum() == 1 for r, c in [(0, 0), (0, 7), (1, 3)])


def stored_logits(logits):
    """level d -> the beam-search callable that returns stored logits (all nodes, or the candidates')."""
    return lambda d: (lambda cand: logits[d] if cand is None else torch.gather(logits[d], 1, cand))


def test_beam_search_scores_are_sorted_path_probability_products():
    torch.manual_seed(0)
    levels = TreeLevels([3, 6, 12], [np.array([0, 0, 1, 1, 2, 2]), np.repeat(np.arange(6), 2)])
    logits = [torch.randn(4, n) for n in levels.sizes]  # fixed logits of every node, per document

    level_fn = stored_logits(logits)

    children = [torch.from_numpy(levels.children(d)) for d in range(2)]
    ids, scores = beam_search([level_fn(d) for d in range(3)], children, beam=3, k=5)
    brute = torch.sigmoid(logits[2]) * torch.sigmoid(logits[1])[:, torch.from_numpy(levels.parents[1])] \
        * torch.sigmoid(logits[0])[:, torch.from_numpy(levels.ancestors(0))]  # (4, 12) exact path products
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    assert torch.allclose(scores, torch.gather(brute, 1, ids))
    # with a beam as wide as the tree, beam search is exact
    ids_full, scores_full = beam_search([level_fn(d) for d in range(3)], children, beam=6, k=5)
    assert torch.allclose(scores_full, torch.topk(brute, 5, dim=1).values)


def test_beam_search_gamma_weighs_the_parent_probability():
    torch.manual_seed(1)
    levels = TreeLevels([3, 9], [np.repeat(np.arange(3), 3)])
    logits = [torch.randn(4, n) for n in levels.sizes]

    level_fn = stored_logits(logits)

    children = [torch.from_numpy(levels.children(0))]
    parent = torch.sigmoid(logits[0])[:, torch.from_numpy(levels.parents[0])]  # (4, 9)
    for gamma in (0.0, 0.5, 1.0):
        ids, scores = beam_search([level_fn(0), level_fn(1)], children, beam=3, k=9, gamma=gamma)
        brute = torch.sigmoid(logits[1]) * parent ** gamma
        assert torch.allclose(scores, torch.topk(brute, 9, dim=1).values)
        assert torch.allclose(scores, torch.gather(brute, 1, ids))


def test_level_gamma_chosen_on_validation_saved_and_loaded(data16, tmp_path):
    train, test = data16
    model = AttentionXML(tree_config(level_gamma=None, level_epochs=[3, 3])).fit(train)
    tried = model.stats_["decoding_validation"]
    assert all(hasattr(r, "epochs_run") for r in model.train_results_.values())  # only training stages there
    beam = model.config.beam
    assert set(tried) == {f"beam={beam} gamma={g}" for g in (1.0, 0.5, 0.25, 0.0)}
    assert model.gamma_ in (1.0, 0.5, 0.25, 0.0) and model.beam_ == beam
    assert tried[f"beam={beam} gamma={model.gamma_}"] == max(tried.values())
    model.gamma_ = 0.25  # the grid's figure of a pair is what the plain beam search scores on the split
    part = train.subset(np.arange(40))
    enc = model.encode(model.texts_of(part), part.Y)
    model.choose_beam_gamma(enc, [beam], [0.25])
    assert model.stats_["decoding_validation"][f"beam={beam} gamma=0.25"] == pytest.approx(model.validation_score(enc))
    loaded = xmtc.load(model.save(tmp_path / "m"))
    assert (loaded.gamma_, loaded.beam_) == (model.gamma_, model.beam_)
    assert np.array_equal(loaded.predict(test, k=3).indices, model.predict(test, k=3).indices)


def test_beam_choices_pick_a_beam_on_validation_and_keep_it(data16, tmp_path):
    train, test = data16
    model = AttentionXML(tree_config(level_epochs=[2, 2], beam=1, beam_choices=[2, 4])).fit(train)
    tried = model.stats_["decoding_validation"]
    assert set(tried) == {f"beam={b} gamma=1.0" for b in (1, 2, 4)}, "level_gamma fixed at 1: beams only"
    assert model.beam_ in (1, 2, 4) and tried[f"beam={model.beam_} gamma=1.0"] == max(tried.values())
    loaded = xmtc.load(model.save(tmp_path / "m"))
    assert loaded.beam_ == model.beam_
    assert np.array_equal(loaded.predict(test, k=3).indices, model.predict(test, k=3).indices)
    with pytest.raises(ConfigError, match="beam_choices must be a list of positive integers"):
        AttentionXML(tree_config(beam_choices=[0]))


@pytest.mark.parametrize("sizes", [[6, 30], [3, 9, 27], [8]], ids=["two levels", "three levels", "flat"])
def test_beam_search_grid_equals_one_beam_search_per_pair(sizes):
    torch.manual_seed(2)
    parents = [np.repeat(np.arange(n), sizes[i + 1] // n) for i, n in enumerate(sizes[:-1])]
    levels = TreeLevels(sizes, parents)
    logits = [torch.randn(5, n) for n in levels.sizes]
    fns = [stored_logits(logits)(d) for d in range(len(sizes))]
    children = [torch.from_numpy(levels.children(d)) for d in range(len(sizes) - 1)]
    grid = beam_search_grid(fns, children, [1, 3, 6], [1.0, 0.25, 0.0], k=7)
    assert len(grid) == 9
    for (beam, gamma), (ids, scores) in grid.items():
        ref_ids, ref_scores = beam_search(fns, children, beam, 7, gamma=gamma)
        assert torch.equal(ids, ref_ids) and torch.allclose(scores, ref_scores, equal_nan=True), (beam, gamma)


def test_random_negatives_and_recall_selection_train(data16):
    train, test = data16
    model = AttentionXML(tree_config(random_negatives=4, upper_select="recall")).fit(train)
    upper = model.train_results_["level-1"]
    assert 0 < upper.best_score <= 1  # recall of the top-C clusters on validation
    cands = model.config.candidates  # the history names what was selected on, not the leaves' select_metric
    assert all(f"valid_recall@{cands}" in r and f"valid_{model.config.select_metric}" not in r for r in upper.history)
    assert all(f"valid_{model.config.select_metric}" in r for r in model.train_results_["level-2"].history)
    assert metrics.precision_at_k(test.Y, model.predict(test, k=1), 1) > 0.5


def test_merge_topk_averages_members():
    a = (torch.tensor([[3, 1, -1]]), torch.tensor([[0.9, 0.5, float("-inf")]]))
    b = (torch.tensor([[1, 2, 0]]), torch.tensor([[0.8, 0.4, 0.1]]))
    ids, scores = merge_topk([a, b], k=4)
    assert ids.tolist() == [[1, 3, 2, 0]]
    assert torch.allclose(scores, torch.tensor([[0.65, 0.45, 0.2, 0.05]]))


def test_candidate_logits_equal_full_logits_gathered():
    torch.manual_seed(0)
    net = AttentionNet(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), 10,
                       AttentionXML.tiny_config()).eval()
    ids = torch.randint(1, 30, (3, 7))
    ids[1, 4:] = 0
    mask = ids != 0
    cand = torch.tensor([[0, 5, 9], [2, 2, 7], [1, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(net(ids, mask, cand), torch.gather(net(ids, mask), 1, cand), atol=1e-6)


# ------------------------------------------------------------------------- training and prediction
def test_flat_mode_learns(tiny_data):
    train, test = tiny_data
    model = AttentionXML(AttentionXML.tiny_config()).fit(train)
    assert [t.n_levels for t in model.trees_] == [1]  # 8 labels <= tree_min_labels: no tree
    assert metrics.precision_at_k(test.Y, model.predict(test, k=3), 1) > 0.7


def test_tree_mode_learns_toy_problem(tree_model, data16):
    _, test = data16
    assert tree_model.trees_[0].sizes == [4, 16]
    assert set(tree_model.train_results_) == {"level-1", "level-2"}
    top = tree_model.predict(test, k=5)
    assert top.indices.shape == (len(test), 5)
    assert np.all(np.diff(top.scores, axis=1) <= 1e-7)
    # beam 2 over clusters of 4 labels: 8 candidates, products of probabilities in (0, 1]
    assert np.all((top.scores > 0) & (top.scores <= 1)) and np.all(top.indices >= 0)
    assert metrics.precision_at_k(test.Y, top, 1) > 0.5  # chance is about 0.1


def test_auto_tree_choice(data16):
    model = AttentionXML(tree_config(tree=None, tree_min_labels=8, level_epochs=[1])).fit(data16[0])
    assert model.trees_[0].n_levels == 2
    model = AttentionXML(tree_config(tree=None, tree_min_labels=16, level_epochs=[1])).fit(data16[0])
    assert model.trees_[0].n_levels == 1


def test_save_load_identical_predictions_ensemble(data16, tmp_path):
    train, test = data16
    model = AttentionXML(tree_config(n_trees=2, level_epochs=[3, 2])).fit(train)
    assert set(model.train_results_) == {"tree0-level-1", "tree0-level-2", "tree1-level-1", "tree1-level-2"}
    top = model.predict(test, k=4)
    model.save(tmp_path / "m")
    loaded = xmtc.load(tmp_path / "m")
    top2 = loaded.predict(test, k=4)
    assert np.array_equal(top.indices, top2.indices) and np.allclose(top.scores, top2.scores)
    # the saved weights are checked against the config shapes
    other = AttentionXML(tree_config(n_trees=2, hidden=8))
    other.label_index_ = train.label_index
    with pytest.raises(ModelLoadError, match="shape"):
        other._load_state(tmp_path / "m")


def fit_killed_in_level2(cfg, train, run_dir, monkeypatch) -> None:
    """Fit AttentionXML into ``run_dir`` and die right after level 2's first epoch was checkpointed."""
    real_loop = ax_module.train_loop

    class Killed(Exception):
        pass

    def killing_loop(module, *, batches, tag, **kw):
        def maybe_kill(epoch):
            if tag == "level-2" and epoch == 1:
                raise Killed
            return batches(epoch)

        return real_loop(module, batches=maybe_kill, tag=tag, **kw)

    monkeypatch.setattr(ax_module, "train_loop", killing_loop)
    with pytest.raises(Killed):
        AttentionXML(cfg).fit(train, run_dir=run_dir)
    monkeypatch.setattr(ax_module, "train_loop", real_loop)


def test_resume_per_level_matches_uninterrupted_run(data16, tmp_path, monkeypatch):
    train, test = data16
    cfg = tree_config(level_epochs=[3, 3])
    expected = AttentionXML(cfg).fit(train).predict(test, k=3)
    fit_killed_in_level2(cfg, train, tmp_path, monkeypatch)
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"level-1.pt", "level-2.pt"}
    resumed = AttentionXML(cfg).fit(train, run_dir=tmp_path, resume=True)
    top = resumed.predict(test, k=3)
    assert np.array_equal(top.indices, expected.indices) and np.allclose(top.scores, expected.scores)
    tags = [json.loads(line)["tag"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert tags.count("level-1") == 3 and tags.count("level-2") == 3  # nothing trained twice


def test_shared_encoder_trains_one_bilstm_per_tree(data16, tmp_path, monkeypatch):
    train, test = data16
    seen = {}
    real_loop = ax_module.train_loop

    def recording_loop(module, *, tag, **kw):
        if tag == "level-2":
            seen["before"] = {k: v.clone() for k, v in module.encoder.state_dict().items()}
        result = real_loop(module, tag=tag, **kw)
        if tag == "level-2":
            seen["after"] = {k: v.clone() for k, v in module.encoder.state_dict().items()}
        return result

    monkeypatch.setattr(ax_module, "train_loop", recording_loop)
    model = AttentionXML(tree_config(share_encoder=True)).fit(train)
    upper, lower = model.networks_["tree0.level1"], model.networks_["tree0.level2"]
    assert lower.encoder is upper.encoder and lower.emb is upper.emb
    assert all(torch.equal(seen["before"][k], seen["after"][k]) for k in seen["before"])  # frozen in level 2
    top = model.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) > 0.5
    loaded = xmtc.load(model.save(tmp_path / "m"))
    assert loaded.networks_["tree0.level2"].encoder is loaded.networks_["tree0.level1"].encoder
    top2 = loaded.predict(test, k=3)
    assert np.array_equal(top.indices, top2.indices) and np.allclose(top.scores, top2.scores)


def test_explain_aligned_with_tokens(tree_model):
    text = "The report on KALOTON policy, with extra words!"
    tokens, weights = tree_model.explain(text, tree_model.label_index_.names[0])
    assert tokens == tokenize(text)
    assert weights.shape == (len(tokens),) and weights.dtype == np.float32
    assert np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-5
    tokens2, weights2 = tree_model.explain(text, 0)
    assert tokens2 == tokens and np.allclose(weights, weights2)
    assert tree_model.explain("!!!", 0)[0] == []
    with pytest.raises(XMTCError, match="unknown label"):
        tree_model.explain(text, "no-such-label")
    with pytest.raises(XMTCError, match="out of range"):
        tree_model.explain(text, 99)


def test_explain_truncates_to_max_len(tree_model):
    text = " ".join(["word"] * (tree_model.config.max_len + 10))
    tokens, weights = tree_model.explain(text, 1)
    assert len(tokens) == len(weights) == tree_model.config.max_len


@pytest.mark.parametrize("cls", [XMLCNN, XMLRNN])
def test_baselines_learn(cls, tiny_data):
    train, test = tiny_data
    model = cls(cls.tiny_config()).fit(train)
    assert metrics.precision_at_k(test.Y, model.predict(test, k=3), 1) > 0.6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tree_model_on_gpu(tiny_data):
    train, test = tiny_data
    model = AttentionXML(tree_config(device="auto", bf16=True, level_epochs=[2])).fit(train)
    assert model.device_.type == "cuda"
    assert next(model.networks_["tree0.level1"].parameters()).is_cuda
    top = model.predict(test, k=3)
    assert top.indices.shape == (len(test), 3) and np.all(top.indices >= 0)


def test_beam_search_orders_saturated_probabilities_by_their_logits():
    """sigmoid(logit) is exactly 1.0 in float32 above a logit of ~17: the ranking must still follow the
    logits, so that the top-1 does not depend on k (it did: 3 of 5,427 goemotions documents)."""
    from xmtc.predict import beam_search

    logits = torch.tensor([[25.0, 40.0, 18.0, -3.0]])
    for k in (1, 2, 4):
        ids, p = beam_search([lambda cand: logits], [], beam=4, k=k)
        assert ids[0].tolist() == [1, 0, 2, 3][:k]
    ids, p = beam_search([lambda cand: logits], [], beam=4, k=6)
    assert ids[0, 4:].tolist() == [-1, -1] and torch.isinf(p[0, 4:]).all()
    assert torch.allclose(p[0, :4], torch.sigmoid(logits[0, [1, 0, 2, 3]]))
    # two levels: the leaves are ranked by log p_label + log p_parent, probabilities returned
    top = torch.tensor([[30.0, 20.0]])
    leaves = torch.tensor([[35.0, 18.0, 25.0, 19.0]])
    children = [torch.tensor([[0, 1], [2, 3]])]
    ids, p = beam_search([lambda c: top, lambda cand: torch.gather(leaves, 1, cand)], children, beam=2, k=4)
    assert ids[0].tolist() == [0, 2, 3, 1]
