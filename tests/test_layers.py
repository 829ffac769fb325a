"""Shapes and masking of the shared layers (xmtc.models.layers)."""

import numpy as np
import pytest
import torch
from torch import nn

from xmtc.models.layers import (
    MLP,
    CNNEncoder,
    Embedding,
    LSTMEncoder,
    MaxPoolEncoder,
    MLAttention,
    candidate_logits,
    full_precision,
    reverse_padded,
)
from xmtc.train.device import bf16_supported


def _batch(lengths=(5, 3, 1), vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(1, vocab, (n,), generator=g)
    return ids, ids != 0


def test_embedding_from_pretrained_trainable_and_frozen():
    w = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    ids, _ = _batch()
    emb = Embedding(w, trainable=True)
    out = emb(ids)
    assert out.shape == (3, 5, 6)
    assert torch.allclose(out[0, 0], torch.from_numpy(w[ids[0, 0]]))
    assert emb.embed.weight.requires_grad
    assert not Embedding(w, trainable=False).embed.weight.requires_grad
    with pytest.raises(ValueError):
        Embedding(np.zeros(5))


def test_lstm_encoder_shape_and_padding_invariance():
    torch.manual_seed(0)
    enc = LSTMEncoder(6, 4).eval()
    x = torch.randn(2, 7, 6)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4], dtype=torch.bool)
    h = enc(x, mask)
    assert h.shape == (2, 7, 8) and enc.out_dim == 8
    assert torch.all(h[1, 3:] == 0)
    # the short document alone (no padding) gives the same states: padding never enters the recurrence
    alone = enc(x[1:2, :3], mask[1:2, :3])
    assert torch.allclose(alone[0], h[1, :3], atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_packed_and_padded_modes_agree(layers):
    torch.manual_seed(0)
    enc = LSTMEncoder(6, 4, layers=layers, packed=False).eval()
    x = torch.randn(3, 7, 6)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6], dtype=torch.bool)
    fast = enc(x, mask)
    enc.packed = True
    assert torch.allclose(fast, enc(x, mask), atol=1e-6)
    # the backward direction starts at each document's own last token
    alone = enc(x[1:2, :3], mask[1:2, :3])
    assert torch.allclose(alone[0], fast[1, :3], atol=1e-6)


def test_reverse_padded_is_an_involution():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([4, 2])
    rev = reverse_padded(x, lengths)
    assert rev[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert torch.equal(reverse_padded(rev, lengths), x)


def test_mlattention_padding_gets_zero_weight_and_weights_sum_to_one():
    torch.manual_seed(0)
    att = MLAttention(n_labels=5, dim=8)
    h = torch.randn(3, 6, 8)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [1] + [0] * 5], dtype=torch.bool)
    m, alpha = att(h, mask, return_weights=True)
    assert m.shape == (3, 5, 8) and alpha.shape == (3, 5, 6)
    assert torch.all(alpha[1, :, 2:] == 0) and torch.all(alpha[2, :, 1:] == 0)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert torch.allclose(m[2], h[2, 0].expand(5, 8), atol=1e-6)  # one token: m_j = h_0
    # Eq. 4 by hand for document 0, label 3
    a = torch.softmax(h[0] @ att.weight[3], dim=0)
    assert torch.allclose(m[0, 3], a @ h[0], atol=1e-5)


def test_candidate_attention_equals_full_attention_gathered():
    torch.manual_seed(1)
    att = MLAttention(n_labels=12, dim=8)
    h = torch.randn(4, 9, 8)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[2, 5:] = False
    cand = torch.randint(0, 12, (4, 3))
    full_m, full_a = att(h, mask, return_weights=True)
    m, a = att(h, mask, candidates=cand, return_weights=True)
    assert m.shape == (4, 3, 8) and a.shape == (4, 3, 9)
    assert torch.allclose(m, torch.gather(full_m, 1, cand[..., None].expand(-1, -1, 8)), atol=1e-6)
    assert torch.allclose(a, torch.gather(full_a, 1, cand[..., None].expand(-1, -1, 9)), atol=1e-6)


def test_candidate_attention_gradients_reach_only_candidate_rows():
    att = MLAttention(n_labels=10, dim=4)
    h = torch.randn(2, 5, 4)
    m = att(h, torch.ones(2, 5, dtype=torch.bool), candidates=torch.tensor([[1, 3], [3, 7]]))
    m.sum().backward()
    touched = (att.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert touched == [1, 3, 7]


def test_mlp_shapes_and_activation_check():
    mlp = MLP(8, [16, 4], 1, dropout=0.5)
    assert mlp(torch.randn(3, 7, 8)).shape == (3, 7, 1)
    assert MLP(8, [16]).out_dim == 16
    with pytest.raises(ValueError):
        MLP(8, [4], activation="swish")


def test_maxpool_ignores_padding():
    h = -torch.ones(2, 4, 3)
    h[1, 2:] = 10.0  # padded positions with large values must not win
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    out = MaxPoolEncoder()(h, mask)
    assert out.shape == (2, 3) and torch.all(out == -1)


@pytest.mark.parametrize("seq", [1, 3, 40])
def test_cnn_encoder_shapes_any_length(seq):
    torch.manual_seed(0)
    enc = CNNEncoder(6, widths=(2, 4, 8), n_filters=5, chunks=4, bottleneck=7).eval()
    mask = torch.ones(2, seq, dtype=torch.bool)
    out = enc(torch.randn(2, seq, 6), mask)
    assert out.shape == (2, 7) and enc.out_dim == 7 and torch.all(out >= 0)


def test_cnn_encoder_ignores_padding_content():
    torch.manual_seed(0)
    enc = CNNEncoder(6, widths=(2, 3), n_filters=4, chunks=2, bottleneck=5).eval()
    x = torch.randn(1, 6, 6)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    x2 = x.clone()
    x2[0, 4:] = 100.0  # whatever vectors sit at padded positions must not change the output
    assert torch.allclose(enc(x, mask), enc(x2, mask))


def test_cnn_encoder_output_does_not_depend_on_batch_padding():
    torch.manual_seed(0)
    enc = CNNEncoder(6, widths=(2, 4), n_filters=4, chunks=3, bottleneck=5).eval()
    x = torch.randn(1, 5, 6)
    alone = enc(x, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 4, 6)], dim=1)  # the same document in a batch padded to 9 tokens
    mask = torch.tensor([[1] * 5 + [0] * 4], dtype=torch.bool)
    assert torch.allclose(enc(padded, mask), alone, atol=1e-6)


def test_reverse_padded_without_padding_is_a_flip_and_matches_the_general_path():
    from xmtc.models.layers import reverse_padded

    x = torch.randn(3, 5, 2)
    full = torch.full((3,), 5)
    assert torch.equal(reverse_padded(x, full), x.flip(1))
    part = torch.tensor([5, 3, 5])
    out = reverse_padded(x, part)
    assert torch.equal(out[0], x[0].flip(0)) and torch.equal(out[1, :3], x[1, :3].flip(0))
    assert torch.equal(out[1, 3:], x[1, 3:])  # padding stays where it is
    assert torch.equal(reverse_padded(out, part), x)  # its own inverse


def test_mlp_output_layer_runs_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    mlp = MLP(16, [32], 1).eval()
    x = torch.randn(4, 7, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = mlp(x)
        hidden = mlp.net[:-1](x)  # the hidden stack still runs in bf16
    assert hidden.dtype == torch.bfloat16 and out.dtype == torch.float32
    last = mlp.net[-1]
    with torch.no_grad():  # the logits are the float32 layer applied to the bf16 hidden output, not rounded to bf16
        torch.testing.assert_close(out, last(hidden.float()), rtol=0, atol=0)
    assert not torch.equal(out, out.bfloat16().float())
    no_out = MLP(16, [32], None)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert no_out(x).dtype == torch.bfloat16  # without a final linear layer nothing changes


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")),
                    reason="oneDNN has no bf16 LSTM on a CPU without avx512_bf16 / AMX (the library runs fp32 there)")
def test_lightattention_label_logits_are_float32_under_bf16_autocast():
    from xmtc.models.lightattention import LightAttention
    from xmtc.models.lightattention.network import LightAttentionNet

    cfg = LightAttention.tiny_config()
    net = LightAttentionNet(np.random.default_rng(0).normal(size=(20, cfg.emb_dim)).astype(np.float32), 12, 3, cfg)
    ids, mask = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        g, d = net.eval()(ids, mask, torch.tensor([[0, 3, 5]] * 3))
    assert g.dtype == torch.float32 and d.dtype == torch.float32 and d.shape == (3, 3)


def test_candidate_logits_gathers_the_float32_output_layer_under_bf16_autocast():
    torch.manual_seed(0)
    layer = nn.Linear(16, 9)
    x = torch.randn(3, 16).bfloat16()
    cand = torch.tensor([[8, 0, 3], [1, 1, 2], [7, 6, 5]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        part = candidate_logits(layer, x, cand)
        full = full_precision(layer, x)
    assert part.dtype == torch.float32 and full.dtype == torch.float32
    torch.testing.assert_close(part, torch.gather(full, 1, cand))


def test_xmlcnn_logits_are_float32_under_bf16_autocast():
    from xmtc.models.baselines.xmlcnn import XMLCNNConfig, XMLCNNNet

    torch.manual_seed(0)
    net = XMLCNNNet(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32), 7,
                    XMLCNNConfig(widths=[2], n_filters=4, chunks=2, bottleneck=6)).eval()
    ids, mask = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(ids, mask).dtype == torch.float32
