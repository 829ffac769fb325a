"""LightAttention: candidate generation, the losses (Eqs. 2, 6, 7), the discriminator (Eq. 5), the product
score at prediction, several trees, persistence and the CLI registration. Tiny data only (see conftest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xmtc import metrics, registry
from xmtc.errors import ConfigError, XMTCError
from xmtc.models.deep_batches import make_batch
from xmtc.models.lightattention.model import LightAttention, LightAttentionConfig
from xmtc.models.lightattention.network import LightAttentionNet, candidate_clusters


@pytest.fixture(scope="module")
def fitted(tiny_data) -> LightAttention:
    train, _ = tiny_data
    return LightAttention(LightAttention.tiny_config()).fit(train)


def _batch(model: LightAttention, data, rows) -> tuple:
    enc = model.encode(data.texts, data.Y)
    return make_batch(enc, np.asarray(rows), model.device_)


# --------------------------------------------------------------------------------------------- candidates
def test_candidate_clusters_are_top_b_plus_positives():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, -2.0],
                           [0.0, 1.0, 2.0, 3.0, 4.0]])
    positives = torch.tensor([[0, 0, 0, 0, 1],
                              [0, 0, 0, 0, 1]])
    out = candidate_clusters(logits, positives, b=2)
    # row 0: top-2 {0, 1} + positive {4}; row 1: top-2 {3, 4} already holds the positive -> padded with -1
    assert out.tolist() == [[0, 1, 4], [3, 4, -1]]
    assert candidate_clusters(logits, None, b=2).tolist() == [[0, 1], [3, 4]]
    assert candidate_clusters(logits, None, b=99).shape == (2, 5)  # b is clamped to K


def test_training_candidates_hold_every_positive_and_follow_the_generator(fitted, tiny_data):
    train, _ = tiny_data
    model, net = fitted, fitted.networks_["model0"]
    Yc = model.trees_[0].targets(train.Y, 0)
    batch = _batch(model, train, range(12))
    net.train()
    try:
        total, parts = model.loss(net, batch, Yc)
        cand = parts["candidates"].numpy()
        for r in range(len(batch)):
            gold = set(batch.Y[r].indices.tolist())
            assert gold <= set(cand[r][cand[r] >= 0].tolist()), "all positives are candidates in training"
        assert torch.isclose(total, parts["L_g"] + parts["L_d"])  # Eq. 7
        # dynamic: make the generator prefer other clusters; the candidates follow at the next step
        clusters = model.trees_[0].parents[0]  # (L,) cluster of each label
        n_clusters, b = model.trees_[0].sizes[0], model.config.top_clusters
        original = net.cluster_logits
        for forced in range(n_clusters):
            fake = -torch.arange(n_clusters, dtype=torch.float32).repeat(len(batch), 1)  # distinct scores
            fake[:, forced] = 9.0
            top_b = set(np.argsort(-fake[0].numpy())[:b].tolist())
            net.cluster_logits = lambda h, mask, fake=fake: fake.clone().requires_grad_()
            try:
                _, parts = model.loss(net, batch, Yc)
            finally:
                net.cluster_logits = original
            cand = parts["candidates"].numpy()
            for r in range(len(batch)):
                gold_clusters = {int(clusters[j]) for j in batch.Y[r].indices}
                expected = set(np.flatnonzero(np.isin(clusters, list(top_b | gold_clusters))).tolist())
                assert set(cand[r][cand[r] >= 0].tolist()) == expected  # labels of top-b + positive clusters
    finally:
        net.eval()


def test_discriminator_targets_are_one_for_positives(fitted, tiny_data):
    train, _ = tiny_data
    model, net = fitted, fitted.networks_["model0"]
    Yc = model.trees_[0].targets(train.Y, 0)
    batch = _batch(model, train, range(8))
    with torch.no_grad():
        _, parts = model.loss(net, batch, Yc)
        h = net.encode(batch.ids, batch.mask)
        g = net.cluster_logits(h, batch.mask)
        cand = parts["candidates"]
        d = net.label_logits(h, batch.mask, cand.clamp(min=0))
    y_g = torch.from_numpy(np.asarray(Yc[batch.rows].todense(), dtype=np.float32))
    y_d = torch.tensor([[1.0 if c in set(batch.Y[r].indices.tolist()) else 0.0 for c in cand[r].tolist()]
                        for r in range(len(batch))])
    w = (cand >= 0).float()
    expected_g = torch.nn.functional.binary_cross_entropy_with_logits(g, y_g)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(d, y_d, reduction="none")
    expected_d = (bce * w).sum() / w.sum()
    assert torch.isclose(parts["L_g"], expected_g, atol=1e-6)
    assert torch.isclose(parts["L_d"], expected_d, atol=1e-6)


# --------------------------------------------------------------------------------------------- network
@pytest.mark.parametrize("activation", ["sigmoid", "none"])
def test_discriminator_is_eq5_with_one_document_vector(activation):
    cfg = LightAttention.tiny_config().replace(label_attention=False, bottleneck_activation=activation,
                                               dropout=0.0, fc=[])
    torch.manual_seed(0)
    vectors = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    net = LightAttentionNet(vectors, 6, 3, cfg).eval()
    ids = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    mask = ids != 0
    cand = torch.tensor([[0, 5, 2], [1, 1, 4]])
    with torch.no_grad():
        h = net.encode(ids, mask)
        e = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values  # (batch, dim) max pooling
        z = net.bottleneck(e)  # W_h e + b_h
        z = torch.sigmoid(z) if activation == "sigmoid" else z
        expected = torch.einsum("bce,be->bc", net.label_emb[cand], z)  # M sigma(W_h e + b_h)
        got = net.label_logits(h, mask, cand)
    torch.testing.assert_close(got, expected)


def test_label_output_adds_a_zero_started_label_wise_term_to_the_discriminator():
    cfg = LightAttention.tiny_config().replace(dropout=0.0, emb_dropout=0.0)
    vectors = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    torch.manual_seed(0)
    plain = LightAttentionNet(vectors, 6, 3, cfg).eval()
    torch.manual_seed(0)
    lwan = LightAttentionNet(vectors, 6, 3, cfg.replace(label_output=True)).eval()
    assert plain.label_output is None and lwan.label_output.weight.shape == (6, 32)
    ids = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    mask, cand = ids != 0, torch.tensor([[0, 5, 2], [1, 1, 4]])
    with torch.no_grad():
        h = lwan.encode(ids, mask)
        torch.testing.assert_close(lwan.label_logits(h, mask, cand), plain.label_logits(h, mask, cand))
        lwan.label_output.weight.copy_(torch.randn(6, 32))
        lwan.label_output.bias.copy_(torch.arange(6.0))
        e = lwan.label_attention(h, mask, cand)  # (batch, c, dim): each candidate's attended vector
        term = (e * lwan.label_output.weight[cand]).sum(-1) + lwan.label_output.bias[cand]
        torch.testing.assert_close(lwan.label_logits(h, mask, cand), plain.label_logits(h, mask, cand) + term)


def test_label_output_model_trains_and_loads_with_identical_predictions(tiny_data, tmp_path):
    train, test = tiny_data
    model = LightAttention(LightAttention.tiny_config().replace(label_output=True)).fit(train)
    top = model.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) >= 0.6
    loaded = registry.load(model.save(tmp_path / "m"))
    again = loaded.predict(test, k=3)
    assert np.array_equal(top.indices, again.indices) and np.allclose(top.scores, again.scores)
    assert loaded.networks_["model0"].label_output.weight.abs().sum() > 0  # it trained and was saved


def test_prediction_score_is_cluster_probability_times_label_probability(fitted, tiny_data):
    _, test = tiny_data
    model, net = fitted, fitted.networks_["model0"]
    top = model.predict(test.texts[:5], k=3)
    batch = _batch(model, test, range(5))
    clusters = torch.from_numpy(model.trees_[0].parents[0])
    with torch.no_grad():
        h = net.encode(batch.ids, batch.mask)
        p_g = torch.sigmoid(net.cluster_logits(h, batch.mask))  # (5, K)
        labels = torch.from_numpy(top.indices.astype(np.int64))
        p_d = torch.sigmoid(net.label_logits(h, batch.mask, labels))  # (5, 3)
    expected = p_g.gather(1, clusters[labels]) * p_d
    np.testing.assert_allclose(top.scores, expected.numpy(), rtol=1e-4, atol=1e-6)
    # only labels of the generator's top-b clusters are ranked
    top_b = torch.topk(p_g, model.config.top_clusters, dim=1).indices
    assert all(int(clusters[j]) in top_b[r].tolist() for r in range(5) for j in top.indices[r] if j >= 0)


# --------------------------------------------------------------------------------------------- model
def test_learns_with_a_single_document_vector(tiny_data):
    train, test = tiny_data
    cfg = LightAttention.tiny_config().replace(label_attention=False, bottleneck_activation="none")
    model = LightAttention(cfg).fit(train)
    assert metrics.precision_at_k(test.Y, model.predict(test, k=1), 1) >= 0.6
    tokens, weights = model.explain(test.texts[0], 0)  # cluster attention of label 0
    assert len(tokens) == len(weights) and weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_several_trees_average_and_round_trip(tiny_data, tmp_path):
    train, test = tiny_data
    cfg = LightAttention.tiny_config().replace(n_models=2, epochs=6, swa=True, swa_start=3)
    model = LightAttention(cfg).fit(train)
    assert set(model.networks_) == {"model0", "model1"} and len(model.trees_) == 2
    top = model.predict(test, k=4)
    loaded = registry.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(test, k=4).indices, top.indices)
    one = model.members(1)
    assert one.config.n_models == 1 and one.networks_["model0"] is model.networks_["model0"]
    # the average of two members: a label's score is the mean of its per-member scores (0 when absent)
    single = [model.members(2)._model_topk(m, _batch(model, test, range(3)), 8) for m in range(2)]
    for r in range(3):
        scores = {}
        for ids, val in single:
            for j, s in zip(ids[r].tolist(), val[r].tolist(), strict=True):
                if j >= 0:
                    scores[j] = scores.get(j, 0.0) + s / 2
        best = max(scores, key=scores.get)
        assert top.indices[r, 0] == best and top.scores[r, 0] == pytest.approx(scores[best], rel=1e-4)
    with pytest.raises(XMTCError, match="n must be in 1..2"):
        model.members(3)


def test_explain_uses_the_label_attention(fitted, tiny_data):
    _, test = tiny_data
    tokens, weights = fitted.explain(test.texts[1], fitted.label_index_.names[2])
    assert len(tokens) == len(weights) > 0 and weights.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(XMTCError, match="unknown label"):
        fitted.explain(test.texts[1], "no_such_label")


def test_beam_and_gamma_chosen_on_validation_kept_on_save(tiny_data, tmp_path):
    train, test = tiny_data
    cfg = LightAttention.tiny_config().replace(epochs=4, level_gamma=None, beam_choices=[1, 4])
    model = LightAttention(cfg).fit(train)
    tried = model.stats_["decoding_validation"]
    assert set(tried) == {f"beam={b} gamma={g}" for b in (1, 2, 4) for g in (1.0, 0.5, 0.25, 0.0)}
    assert tried[f"beam={model.beam_} gamma={model.gamma_}"] == max(tried.values())
    # the chosen pair is what predict uses: the same top-k as a plain beam search with it
    model.beam_, model.gamma_ = 4, 0.0
    ids, _ = model._model_topk(0, _batch(model, test, range(5)), 3)
    assert ids.tolist() == model.predict(test.subset(np.arange(5)), k=3).indices.tolist()
    loaded = registry.load(model.save(tmp_path / "m"))
    assert (loaded.beam_, loaded.gamma_) == (4, 0.0)
    np.testing.assert_array_equal(loaded.predict(test, k=3).indices, model.predict(test, k=3).indices)
    assert model.members(1).beam_ == 4
    # after training, on a loaded model (xmtc tune --decoding): the same grid, the best pair kept
    part = train.subset(np.arange(30))
    scores = loaded.tune_decoding(part, [1, 3])
    assert set(scores) == {f"beam={b} gamma={g}" for b in (1, 3) for g in (1.0, 0.5, 0.25, 0.0)}
    assert scores[f"beam={loaded.beam_} gamma={loaded.gamma_}"] == max(scores.values())
    with pytest.raises(XMTCError, match="beam widths must be positive integers"):
        loaded.tune_decoding(part, [0])


@pytest.mark.parametrize("change, message", [
    ({"top_clusters": 0}, "top_clusters must be positive, but is 0"),
    ({"beam_choices": [2, 0]}, "beam_choices must be a list of positive integers"),
    ({"level_gamma": -1.0}, "level_gamma must be >= 0 or null, but is -1.0"),
    ({"cluster_size": 1}, "cluster_size must be > 1, but is 1"),
    ({"bottleneck_activation": "softmax"}, "bottleneck_activation must be one of"),
    ({"n_models": 0}, "n_models must be positive, but is 0"),
])
def test_config_errors_name_the_value(change, message):
    with pytest.raises(ConfigError, match=message):
        LightAttentionConfig().replace(**change)


def test_cli_knows_the_model(xmtc_cli):
    res = xmtc_cli("print-config", "lightattention")
    assert res.returncode == 0, str(res)
    cfg = json.loads(res.stdout)
    assert cfg["top_clusters"] == 10 and cfg["n_models"] == 1


@pytest.mark.slow
def test_real_data_goemotions(shared_data):
    from xmtc.data import load

    root = shared_data / "goemotions"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    train, test = load(root, ("train", "test"), max_docs=6000)
    cfg = LightAttentionConfig(emb_dim=64, hidden=64, fc=[64], label_emb_dim=32, max_len=48, epochs=4, lr=3e-3,
                               batch_size=32, w2v_epochs=1, progress=False, cluster_size=4, top_clusters=3)
    model = LightAttention(cfg).fit(train)
    p1 = metrics.precision_at_k(test.Y, model.predict(test, k=1), 1)
    majority = np.asarray(test.Y.sum(0)).ravel().max() / len(test)  # always the most frequent test label
    # The model must beat the majority label ('neutral', about 0.33) clearly; smaller settings (3,000
    # documents, 2 epochs, 32-d) learned only 'neutral' and sat at the majority rate.
    assert p1 > majority + 0.05, (p1, majority)


def test_fast_preset_fills_only_unset_fields():
    cfg = LightAttentionConfig().with_overrides(["preset=fast", "hidden=256", "epochs=3"])
    assert cfg.hidden == 256 and cfg.epochs == 3  # typed by the user, although 256 is the default
    assert cfg.emb_dim == 100 and cfg.max_len == 256 and cfg.bf16 is None  # from the preset (bf16: auto)
    assert cfg.preset_fields()["emb_dim"] == "preset=fast"
    with pytest.raises(ConfigError, match="preset"):
        LightAttentionConfig(preset="huge").validate()
