"""Opt-in sparse gradients: MLAttention(sparse=True), SparseAdam in train_loop, AttentionXML sparse_grad."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_attentionxml import fit_killed_in_level2, keyword_data, tree_config
from torch import nn

import xmtc
from xmtc import metrics
from xmtc.errors import ConfigError, XMTCError
from xmtc.models.attentionxml.model import AttentionXML
from xmtc.models.layers import MLAttention
from xmtc.train import TrainConfig, train_loop
from xmtc.train.trainer import clip_grad_norm_mixed, sparse_grad_parameters


def _pair(n_labels: int = 12, dim: int = 8) -> tuple[MLAttention, MLAttention]:
    torch.manual_seed(0)
    dense = MLAttention(n_labels, dim)
    sparse = MLAttention(n_labels, dim, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


def _inputs(batch: int = 3, seq: int = 5, dim: int = 8):
    torch.manual_seed(1)
    h = torch.randn(batch, seq, dim)  # (batch, seq, dim)
    mask = torch.ones(batch, seq, dtype=torch.bool)
    mask[0, 3:] = False
    cand = torch.tensor([[0, 4, 4, 7], [1, 2, 3, 11], [7, 7, 0, 5]])  # (batch, c), duplicates on purpose
    return h, mask, cand


def test_sparse_layer_matches_dense_forward_and_gradient():
    dense, sparse = _pair()
    h, mask, cand = _inputs()
    m_d, a_d = dense(h, mask, cand, return_weights=True)
    m_s, a_s = sparse(h, mask, cand, return_weights=True)
    assert torch.allclose(m_d, m_s) and torch.allclose(a_d, a_s)
    (m_d ** 2).sum().backward()
    (m_s ** 2).sum().backward()
    assert not dense.weight.grad.is_sparse and sparse.weight.grad.is_sparse
    assert torch.allclose(sparse.weight.grad.to_dense(), dense.weight.grad, atol=1e-6)
    assert sparse.sparse_grad_parameters() == [sparse.weight] and dense.sparse_grad_parameters() == []
    # the all-labels path uses every row: it stays dense, with the same values
    dense.weight.grad = sparse.weight.grad = None
    dense(h, mask).sum().backward()
    sparse(h, mask).sum().backward()
    assert not sparse.weight.grad.is_sparse and torch.allclose(sparse.weight.grad, dense.weight.grad)


def test_mixed_clipping_equals_dense_clipping():
    torch.manual_seed(2)
    a = nn.Parameter(torch.randn(6, 3))
    b = nn.Parameter(torch.randn(4))
    idx = torch.tensor([[0, 2, 2, 5]])  # (1, 2 + duplicates): an uncoalesced sparse gradient
    (nn.functional.embedding(idx, a, sparse=True).sum() * 3 + (b ** 2).sum()).backward()
    dense_a, dense_b = a.grad.to_dense().clone(), b.grad.clone()
    norm = clip_grad_norm_mixed([a, b], 0.5)
    ref_a, ref_b = nn.Parameter(a.detach().clone()), nn.Parameter(b.detach().clone())
    ref_a.grad, ref_b.grad = dense_a, dense_b
    ref_norm = nn.utils.clip_grad_norm_([ref_a, ref_b], 0.5)
    assert torch.allclose(norm, ref_norm)
    assert a.grad.is_sparse and torch.allclose(a.grad.to_dense(), ref_a.grad) and torch.allclose(b.grad, ref_b.grad)


class _ToyNet(nn.Module):
    """Candidate-attention toy: the sparse attention matrix plus a dense output layer."""

    def __init__(self, sparse: bool):
        super().__init__()
        torch.manual_seed(0)
        self.att = MLAttention(12, 8, sparse=sparse)
        self.out = nn.Linear(8, 1)

    def forward(self, h, mask, cand=None):
        return self.out(self.att(h, mask, cand)).squeeze(-1)  # (batch, c|labels)


def _toy_pieces(use_candidates: bool):
    h, mask, cand = _inputs()
    target = (torch.arange(12) % 2).float()  # (labels,)

    def loss(module, _batch):
        c = cand if use_candidates else None
        logits = module(h, mask, c)
        y = target[c] if use_candidates else target.expand_as(logits)
        return nn.functional.binary_cross_entropy_with_logits(logits, y)

    return (lambda epoch: [0, 1, 2]), loss


@pytest.mark.parametrize("use_candidates", [True, False])
def test_train_loop_steps_sparse_params_with_sparse_adam(use_candidates):
    cfg = TrainConfig(epochs=3, lr=0.05, grad_clip=1.0, progress=False, device="cpu", patience=0)
    net = _ToyNet(sparse=True)
    assert sparse_grad_parameters(net) == [net.att.weight]
    batches, loss = _toy_pieces(use_candidates)
    before = net.att.weight.detach().clone()
    with torch.no_grad():
        first = float(loss(net, 0))
    train_loop(net, cfg=cfg, batches=batches, loss=loss)
    with torch.no_grad():
        assert float(loss(net, 0)) < first
    moved = (net.att.weight.detach() != before).any(1)  # (labels,)
    if use_candidates:  # lazy updates: rows that were never a candidate stay as they were
        assert moved.tolist() == [i in {0, 1, 2, 3, 4, 5, 7, 11} for i in range(12)]
    else:  # a dense gradient of a sparse-stepped parameter is made row-sparse, all rows move
        assert moved.all()


def test_weight_decay_with_sparse_params_is_a_config_error():
    cfg = TrainConfig(epochs=1, weight_decay=0.01, progress=False, device="cpu")
    batches, loss = _toy_pieces(True)
    with pytest.raises(ConfigError, match="weight_decay"):
        train_loop(_ToyNet(sparse=True), cfg=cfg, batches=batches, loss=loss)
    with pytest.raises(ConfigError, match="weight_decay"):
        tree_config(sparse_grad=True, weight_decay=0.01).validate()


def test_resume_with_other_sparse_setting_is_a_clear_error(tmp_path):
    cfg = TrainConfig(epochs=1, lr=0.05, progress=False, device="cpu", patience=0)
    batches, loss = _toy_pieces(True)
    train_loop(_ToyNet(sparse=False), cfg=cfg.replace(epochs=2), batches=batches, loss=loss, run_dir=tmp_path,
               tag="t")
    with pytest.raises(XMTCError, match="sparse"):
        train_loop(_ToyNet(sparse=True), cfg=cfg.replace(epochs=2), batches=batches, loss=loss,
                   run_dir=tmp_path, tag="t", resume=True)


# ------------------------------------------------------------------------- AttentionXML with sparse_grad=true
@pytest.fixture(scope="module")
def data16():
    train = keyword_data(200, 0)
    return train, keyword_data(60, 2, train.label_index)


def test_attentionxml_sparse_grad_learns_saves_and_loads(data16, tmp_path):
    train, test = data16
    model = AttentionXML(tree_config(sparse_grad=True)).fit(train)
    nets = model.networks_
    assert not nets["tree0.level1"].attention.sparse and nets["tree0.level2"].attention.sparse
    top = model.predict(test, k=3)
    assert metrics.precision_at_k(test.Y, top, 1) > 0.5  # chance is about 0.1
    model.save(tmp_path / "m")
    loaded = xmtc.load(tmp_path / "m")
    assert loaded.config.sparse_grad
    top2 = loaded.predict(test, k=3)
    assert np.array_equal(top.indices, top2.indices) and np.allclose(top.scores, top2.scores)


def test_attentionxml_sparse_grad_resume_matches_uninterrupted_run(data16, tmp_path, monkeypatch):
    train, test = data16
    cfg = tree_config(sparse_grad=True, level_epochs=[2, 3])
    expected = AttentionXML(cfg).fit(train).predict(test, k=3)
    fit_killed_in_level2(cfg, train, tmp_path, monkeypatch)
    ckpt = torch.load(tmp_path / "checkpoints" / "level-2.pt", weights_only=True)
    assert ckpt["sparse_optimizer"]["state"]  # SparseAdam moments are checkpointed
    resumed = AttentionXML(cfg).fit(train, run_dir=tmp_path, resume=True)
    top = resumed.predict(test, k=3)
    assert np.array_equal(top.indices, expected.indices) and np.allclose(top.scores, expected.scores)
