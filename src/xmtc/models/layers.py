"""Shared neural layers of the deep text models (each layer lives here once).

Conventions: ``ids`` are int64 token ids (batch, seq) with 0 = padding; ``mask`` is bool (batch, seq), True at
real tokens; encoders return zeros at padded positions. Shapes are written as comments next to each tensor.

* :class:`Embedding` - word vectors from a pretrained matrix, trainable or frozen, with dropout.
* :class:`LSTMEncoder` - BiLSTM over packed sequences -> (batch, seq, 2*hidden).
* :class:`MLAttention` - multi-label attention (AttentionXML Eq. 4), for all labels or a candidate subset.
* :class:`MLP` - feed-forward stack applied to the last dimension (alias :data:`FCStack`).
* :class:`MaxPoolEncoder` - masked max pooling over time (XML-RNN).
* :class:`CNNEncoder` - XML-CNN (Liu et al. 2017): several filter widths, dynamic max pooling, bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU}


class Embedding(nn.Module):
    """Token embedding initialised from a pretrained matrix.

    Args:
        weights: (vocab, dim) initial vectors (numpy or tensor); row 0 is the padding vector.
        trainable: fine-tune the vectors (False freezes them).
        dropout: dropout applied to the output vectors.
        padding_idx: id of the padding token (its vector gets no gradient).
    """

    def __init__(self, weights: np.ndarray | torch.Tensor, *, trainable: bool = True, dropout: float = 0.0,
                 padding_idx: int = 0):
        super().__init__()
        if isinstance(weights, torch.Tensor):
            w = weights.detach().float().clone()
        else:
            w = torch.tensor(np.asarray(weights, dtype=np.float32))  # a copy: networks never share vectors
        if w.ndim != 2:
            raise ValueError(f"embedding weights must be 2-D (vocab, dim), got shape {tuple(w.shape)}")
        self.embed = nn.Embedding.from_pretrained(w, freeze=not trainable, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)

    @property
    def dim(self) -> int:
        return self.embed.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (batch, seq) int64 -> (batch, seq, dim)."""
        return self.dropout(self.embed(ids))


class LSTMEncoder(nn.Module):
    """(Bi)LSTM over padded sequences; padding never enters the recurrence in either mode.

    The backward direction reads each document reversed within its own length, so every real position sees
    only real tokens and the output of a document does not depend on the padding of its batch.

    Args:
        input_dim: size of the input vectors.
        hidden: hidden units per direction.
        layers: stacked LSTM layers.
        dropout: dropout on the output (and between layers when ``layers > 1``).
        bidirectional: BiLSTM (output 2*hidden) or forward LSTM (output hidden).
        packed: run on packed sequences (``pack_padded_sequence``; cuDNN's path on GPU). False runs on the
            padded batch: the same result, and several times faster on CPU (oneDNN kernels), where the cost of
            the padding steps is small with length-bucketed batches.
    """

    def __init__(self, input_dim: int, hidden: int, *, layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = True, packed: bool = False):
        super().__init__()
        n_dir = 2 if bidirectional else 1
        sizes = [input_dim] + [hidden * n_dir] * (layers - 1)
        self.fwd = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in sizes)
        self.bwd = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in sizes) \
            if bidirectional else None
        self.dropout = nn.Dropout(dropout)
        self.packed = packed
        self.out_dim = hidden * n_dir

    def _run(self, lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One direction over x (batch, seq, d) whose padding sits after each document's real tokens."""
        if not self.packed:
            return lstm(x)[0]  # (batch, seq, hidden); real positions never see the trailing padding
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, seq, input_dim), mask (batch, seq) bool -> (batch, seq, out_dim), zeros at padding."""
        lengths = mask.sum(1).clamp(min=1)  # (batch,)
        h = x
        for i in range(len(self.fwd)):
            if i > 0:
                h = self.dropout(h)
            out = self._run(self.fwd[i], h, lengths)  # (batch, seq, hidden)
            if self.bwd is not None:
                back = self._run(self.bwd[i], reverse_padded(h, lengths), lengths)
                out = torch.cat([out, reverse_padded(back, lengths)], dim=-1)  # (batch, seq, 2*hidden)
            h = out
        h = h * mask.unsqueeze(-1).to(h.dtype)
        return self.dropout(h)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of x (batch, seq, d) within its first ``lengths[b]`` positions (padding stays).

    The map is its own inverse. A batch without padding (most length-bucketed batches of long documents) is
    reversed with ``torch.flip``, which is cheaper than the gather.
    """
    if bool((lengths == x.shape[1]).all()):
        return x.flip(1)
    pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, seq)
    n = lengths.to(x.device).unsqueeze(1)  # (batch, 1)
    idx = torch.where(pos < n, n - 1 - pos, pos)  # (batch, seq)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class MLAttention(nn.Module):
    """Multi-label attention (AttentionXML Eq. 4): one attention vector ``w_j`` per label,
    ``alpha_ij = softmax_i(h_i . w_j)`` over the real tokens, ``m_j = sum_i alpha_ij h_i``.

    With ``candidates`` (batch, c) only those labels' vectors are gathered and attended (one batched matmul,
    no loop over labels); padding tokens always get exactly zero weight.

    With ``sparse=True`` the candidate rows are gathered by ``F.embedding(..., sparse=True)``, so a backward
    pass through the candidate path gives ``weight`` a sparse gradient touching only the gathered rows
    (instead of a dense (labels, dim) one); :func:`xmtc.train.train_loop` finds such parameters through
    :meth:`sparse_grad_parameters` and steps them with ``torch.optim.SparseAdam``. The all-labels path
    (``candidates=None``) uses every row and stays dense; the trainer turns such a dense gradient of a sparse
    parameter into a row-sparse one, so both paths train correctly (use ``sparse`` only where candidates are
    given, as AttentionXML does for its deeper tree levels).

    Args:
        n_labels: number of labels (rows of the attention matrix).
        dim: size of the token vectors ``h_i``.
        sparse: sparse gradient of ``weight`` on the candidate path.
    """

    def __init__(self, n_labels: int, dim: int, sparse: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_labels, dim))  # (labels, dim)
        self.sparse = bool(sparse)
        nn.init.xavier_uniform_(self.weight)

    def sparse_grad_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradient is (or may be) sparse: ``[weight]`` when ``sparse``, else none."""
        return [self.weight] if self.sparse else []

    @property
    def n_labels(self) -> int:
        return self.weight.shape[0]

    def forward(self, h: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor | None = None,
                return_weights: bool = False):
        """Attend over tokens for every label or for each document's candidate labels.

        Args:
            h: (batch, seq, dim) token vectors.
            mask: (batch, seq) bool, True at real tokens.
            candidates: optional (batch, c) int64 label ids; None attends all labels.
            return_weights: also return the attention weights.

        Returns:
            m (batch, labels|c, dim), and alpha (batch, labels|c, seq) when ``return_weights``.
        """
        if candidates is None:
            scores = torch.matmul(self.weight.to(h.dtype), h.transpose(1, 2))  # (batch, labels, seq)
        else:
            if self.sparse:
                w = F.embedding(candidates, self.weight, sparse=True).to(h.dtype)  # (batch, c, dim)
            else:
                w = self.weight[candidates].to(h.dtype)  # (batch, c, dim)
            scores = torch.bmm(w, h.transpose(1, 2))  # (batch, c, seq)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        alpha = torch.softmax(scores.float(), dim=-1).to(h.dtype)  # (batch, labels|c, seq)
        m = torch.bmm(alpha, h)  # (batch, labels|c, dim)
        return (m, alpha) if return_weights else m


class LabelOutput(nn.Module):
    """A label-wise output term ``u_j . m_j + b_j`` (LWAN's label-wise output layer, Chalkidis et al., 2019):
    one weight vector and one bias per label, applied to that label's attended vector ``m_j``. Zero at
    initialisation, so a network that adds it to its shared head starts as the network without it.

    Args:
        n_labels: number of labels (rows).
        dim: size of ``m_j``.
    """

    def __init__(self, n_labels: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_labels, dim))
        self.bias = nn.Parameter(torch.zeros(n_labels))

    def forward(self, m: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """m (batch, labels|c, dim), candidates (batch, c) or None -> float32 (batch, labels|c)."""
        if candidates is None:
            w, b = self.weight, self.bias  # (labels, dim), (labels,)
        else:
            w, b = self.weight[candidates], self.bias[candidates]  # (batch, c, dim), (batch, c)
        return (m.float() * w.float()).sum(-1) + b.float()


class MLP(nn.Module):
    """Feed-forward stack over the last dimension: [Linear -> activation -> dropout]* -> optional Linear.

    Args:
        in_dim: input size.
        hidden: sizes of the hidden layers (may be empty).
        out_dim: size of a final linear layer without activation; None ends after the last hidden layer.
        dropout: dropout after each hidden activation.
        activation: 'relu', 'gelu', 'tanh' or 'elu'.
        fp32_out: run the final linear layer in float32 even under bf16 autocast (:func:`full_precision`):
            bf16 keeps 8 bits of mantissa, so logits near 8 differ by steps of 0.03 and ranked labels tie.
        xavier: Xavier-uniform weights in every linear layer (AttentionXML's original code); false: PyTorch's
            default initialisation.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = None, *,
                 dropout: float = 0.0, activation: str = "relu", fp32_out: bool = True, xavier: bool = False):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, but is {activation!r}")
        layers: list[nn.Module] = []
        d = in_dim
        for size in hidden:
            layers += [nn.Linear(d, size), _ACTIVATIONS[activation](), nn.Dropout(dropout)]
            d = size
        if out_dim is not None:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        if xavier:
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
        self.out_dim = d
        self.fp32_out = fp32_out and out_dim is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_dim) -> (..., out_dim); float32 output with ``fp32_out`` and a final linear layer."""
        if not self.fp32_out:
            return self.net(x)
        *hidden, last = self.net  # no new Sequential per call, as self.net[:-1] would build
        for layer in hidden:
            x = layer(x)
        return full_precision(last, x)


def full_precision(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in float32 with autocast off: the output (logit) layers, whose scores are ranked."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return layer(x.float())


def candidate_logits(layer: nn.Linear, x: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The output layer's logits of some labels only, in float32 with autocast off (as :func:`full_precision`).

    Args:
        layer: the output layer over all labels (weight (L, d), bias (L,)).
        x: (batch, d) document vectors.
        candidates: (batch, c) int64 label ids, all >= 0.

    Returns:
        (batch, c) float32, equal to ``layer(x)`` gathered at ``candidates``.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.einsum("bd,bcd->bc", x.float(), layer.weight[candidates]) + layer.bias[candidates]


FCStack = MLP


class MaxPoolEncoder(nn.Module):
    """Masked max pooling over time: the document vector of XML-RNN."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (batch, seq, dim), mask (batch, seq) -> (batch, dim); padding never wins the max."""
        h = h.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        out = h.max(dim=1).values  # (batch, dim)
        return torch.nan_to_num(out, neginf=0.0)


class CNNEncoder(nn.Module):
    """XML-CNN text encoder (Liu et al. 2017): convolutions of several widths over the word vectors,
    dynamic max pooling of each feature map into ``chunks`` pieces, then a bottleneck layer.

    Args:
        input_dim: word vector size.
        widths: filter widths (e.g. 2, 4, 8).
        n_filters: feature maps per width.
        chunks: p, pieces of the dynamic max pooling.
        bottleneck: size of the bottleneck (hidden) layer; output size of the encoder.
        dropout: dropout after the bottleneck.
    """

    def __init__(self, input_dim: int, *, widths: Sequence[int] = (2, 4, 8), n_filters: int = 128,
                 chunks: int = 8, bottleneck: int = 512, dropout: float = 0.5):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.chunks = chunks
        self.convs = nn.ModuleList(nn.Conv1d(input_dim, n_filters, w, padding=w // 2) for w in self.widths)
        self.bottleneck = nn.Linear(len(self.widths) * n_filters * chunks, bottleneck)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = bottleneck

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, seq, input_dim), mask (batch, seq) -> (batch, bottleneck).

        Each document is pooled over its own length (chunk ``floor(t * p / length)`` for token ``t``), so the
        output does not depend on how much padding its batch has.
        """
        return self.pool(self.feature_maps(x, mask), mask)

    def feature_maps(self, x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The ReLU convolution outputs, one (batch, n_filters, seq) map per width, over the zeroed padding."""
        seq = mask.shape[1]
        xt = (x * mask.unsqueeze(-1).to(x.dtype)).transpose(1, 2)  # (batch, input_dim, seq), padding zeroed
        return [F.relu(conv(xt))[:, :, :seq] for conv in self.convs]  # each >= 0

    def pool(self, maps: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Dynamic max pooling of :meth:`feature_maps` and the bottleneck: -> (batch, bottleneck)."""
        b, seq = mask.shape
        lengths = mask.sum(1, keepdim=True).clamp(min=1)  # (batch, 1)
        pos = torch.arange(seq, device=mask.device).unsqueeze(0)  # (1, seq)
        chunk = torch.where(mask, pos * self.chunks // lengths, self.chunks)  # (batch, seq); padding: extra
        pooled = []
        for c in maps:
            out = c.new_zeros(b, c.shape[1], self.chunks + 1)  # empty chunks of short documents stay 0
            out.scatter_reduce_(2, chunk.unsqueeze(1).expand_as(c), c, reduce="amax", include_self=True)
            pooled.append(out[:, :, : self.chunks].flatten(1))  # (batch, filters*chunks)
        z = torch.cat(pooled, dim=1)  # (batch, widths*filters*chunks)
        return self.dropout(F.relu(self.bottleneck(z)))  # (batch, bottleneck)
