"""The shared text pipeline of every neural model: ``DeepConfig`` and ``DeepTextModel``.

``DeepTextModel.fit`` does the generic work - threads, device, seeding, the validation split (the given
``valid`` split, else a seeded split of ``train``; never the test split), the vocabulary and word vectors
built from the training texts, encoding - and then calls the subclass hook :meth:`DeepTextModel._train`.
Prediction encodes the texts, runs length-sorted batches through :meth:`DeepTextModel._topk_batch` and
restores the input order. Persistence writes ``vocab.json``, ``weights.safetensors`` (every network in
:attr:`networks_`, keys prefixed by the network name) and ``deep_state.json``; loading rebuilds the networks
with :meth:`_make_networks` and checks every weight's shape. Encoded splits and their padded batches:
:mod:`xmtc.models.deep_batches`.

A minimal subclass (one network scoring all labels, trained with BCE, Eq. 6 of AttentionXML)::

    @register("mymodel")
    class MyModel(DeepTextModel):
        Config = MyConfig                      # a DeepConfig subclass
        def build_network(self, n_labels, embeddings):
            return MyNet(embeddings, n_labels) # forward(ids (b,t), mask (b,t)) -> logits (b, n_labels)

Models with their own training (label trees, samplers) override :meth:`_train`, :meth:`_make_networks` and
:meth:`_topk_batch`, and keep extra state with :meth:`_extra_state` / :meth:`_save_extra` /
:meth:`_load_extra`; :meth:`_check_fit` refuses settings that do not fit the data before any costly work.

Data-parallel training (``torchrun``, :mod:`xmtc.train.distributed`): every rank reads the data and makes the
same validation split; the vocabulary and word vectors are built on rank 0 and broadcast; :meth:`train_batches`
gives each rank its share of the epoch's batches; a subclass builds other pre-training state (label trees,
shortlists) through :meth:`_shared` so that it too comes from rank 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmtc.allocator import tune_allocator
from xmtc.config import check, doc_field
from xmtc.data.split import Dataset, validation_split
from xmtc.errors import ModelLoadError, XMTCError
from xmtc.models.base import TopK, XMTCModel
from xmtc.models.deep_batches import Batches, Encoded, TextBatch
from xmtc.models.deep_decoding import TreeDecoding
from xmtc.train import TrainConfig, autocast, distributed, epoch_rng, resolve_device, seed_everything, train_loop

WEIGHTS_FILE = "weights.safetensors"
VOCAB_FILE = "vocab.json"
STATE_FILE = "deep_state.json"


@dataclass
class DeepConfig(TrainConfig):
    """Text pipeline settings shared by the neural models (on top of :class:`~xmtc.train.TrainConfig`)."""

    max_len: int = doc_field(500, "tokens kept per document (longer documents are truncated)")
    vocab_size: int = doc_field(100000, "maximum vocabulary size (most frequent training tokens)")
    min_count: int = doc_field(1, "minimum training-token frequency to enter the vocabulary")
    emb_dim: int = doc_field(300, "word vector size (ignored when 'embeddings' names a file: taken from it)")
    embeddings: str = doc_field("", "word vector file (word2vec text/binary or GloVe); '' trains word2vec "
                                    "(CBOW) on the training texts")
    w2v_epochs: int = doc_field(5, "word2vec epochs when training word vectors on the training texts")
    freeze_embeddings: bool = doc_field(False, "keep word vectors fixed during training")
    emb_dropout: float = doc_field(0.2, "dropout on the word vectors")
    bucket: bool = doc_field(True, "length-bucketed training batches (documents of similar length together)")

    def validate(self) -> None:
        super().validate()
        check(self.max_len > 0, f"max_len must be positive, but is {self.max_len}")
        check(self.vocab_size > 2, f"vocab_size must be > 2, but is {self.vocab_size}")
        check(self.min_count >= 1, f"min_count must be >= 1, but is {self.min_count}")
        check(self.emb_dim > 0, f"emb_dim must be positive, but is {self.emb_dim}")
        check(self.w2v_epochs >= 1 or bool(self.embeddings),
              f"w2v_epochs must be >= 1 (word vectors are trained on the training texts unless 'embeddings' "
              f"names a file), but is {self.w2v_epochs}")
        check(0 <= self.emb_dropout < 1, f"emb_dropout must be in [0, 1), but is {self.emb_dropout}")


class DeepTextModel(TreeDecoding, XMTCModel):
    """Base class of the neural text models (see the module docstring for the hooks).

    Fitted state: ``vocab_`` (xmtc.text.Vocab), ``networks_`` (name -> nn.Module), ``emb_dim_``, ``device_``.
    """

    Config = DeepConfig

    def __init__(self, config: DeepConfig | None = None):
        super().__init__(config)
        self.vocab_ = None
        self.networks_: dict[str, nn.Module] = {}
        self.emb_dim_: int = self.config.emb_dim
        self.device_: torch.device | None = None
        self.train_results_: dict[str, Any] = {}

    # ----------------------------------------------------------------- hooks for subclasses
    def build_network(self, n_labels: int, embeddings: np.ndarray) -> nn.Module:
        """One network ``forward(ids (b,t), mask (b,t)) -> logits (b, n_labels)`` (simple models)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_network or _make_networks")

    def _make_networks(self, embeddings: np.ndarray) -> dict[str, nn.Module]:
        """All networks of the model, freshly initialised (also used on load, before the weights are read)."""
        return {"network": self.build_network(self.n_labels_, embeddings)}

    def _train(self, train: Encoded, valid: Encoded, embeddings: np.ndarray, *, run_dir: Path | None,
               resume: bool) -> None:
        """Create and train ``self.networks_``. Default: one network, BCE over all labels, early stopping on
        ``cfg.select_metric`` over the validation split."""
        self.networks_ = {name: net.to(self.device_) for name, net in self._make_networks(embeddings).items()}
        net = self.networks_["network"]
        self.train_results_["network"] = train_loop(
            net, cfg=self.config, batches=lambda epoch: self.train_batches(train, epoch),
            loss=lambda module, batch: bce_loss(module(batch.ids, batch.mask), batch.targets()),
            evaluate=lambda module: self.validation_score(
                valid, lambda b, k: topk_of_logits(module(b.ids, b.mask), k)),
            run_dir=run_dir, tag="network", resume=resume)

    def _topk_batch(self, batch: TextBatch, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (label ids (b,k) int64, scores (b,k) float) of one batch (eval mode, no grad)."""
        return topk_of_logits(self.networks_["network"](batch.ids, batch.mask), k)

    def _extra_state(self) -> dict[str, Any]:
        """JSON-serialisable state saved in ``deep_state.json``, given back to :meth:`_set_extra_state`."""
        return {}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` returned (called on load before :meth:`_make_networks`)."""

    def _save_extra(self, path: Path) -> list[str]:
        """Write extra files (arrays, trees); return their names (checksummed by the base class)."""
        return []

    def _load_extra(self, path: Path) -> None:
        """Read the files of :meth:`_save_extra` (called on load before :meth:`_make_networks`)."""

    # ----------------------------------------------------------------- training
    @property
    def n_labels_(self) -> int:
        return len(self.label_index_)

    def fit(self, train: Dataset, valid: Dataset | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False) -> DeepTextModel:
        """Build the vocabulary and word vectors from ``train``, then train the networks (see :meth:`_train`).

        Args:
            train: training split with raw texts.
            valid: validation split (a seeded subset of ``cfg.valid_max_docs`` documents when larger);
                None splits ``cfg.valid_fraction`` (at most ``cfg.valid_max_docs``) off ``train`` (seeded).
            run_dir: checkpoints and ``metrics.jsonl`` go here; needed for ``resume``.
            resume: continue the training stages from their checkpoints in ``run_dir``.

        Returns:
            self
        """
        self.texts_of(train)
        if len(train) < 2 and valid is None:
            raise XMTCError(f"training needs at least 2 documents, got {len(train)}")
        tune_allocator()  # reuse freed large blocks: no page faults for the tensors every step allocates again
        self._setup_runtime()
        if valid is None:
            train, valid = validation_split(train, self.config.valid_fraction, self.config.seed,
                                            self.config.valid_max_docs)
        elif len(valid) > self.config.valid_max_docs:  # a seeded subset keeps per-epoch evaluation cheap
            rows = np.random.default_rng(self.config.seed).permutation(len(valid))
            valid = valid.subset(np.sort(rows[: self.config.valid_max_docs]), split="valid")
        self.label_index_ = train.label_index
        self._check_fit()
        tokens = self._tokenize(self.texts_of(train))
        embeddings = self._shared(lambda: self._build_vocab(tokens),
                                  lambda vectors: {"tokens": self.vocab_.tokens, "counts": self.vocab_.counts,
                                                   "vectors": vectors}, self._set_shared_vocab)
        train_enc = self._encode_tokens(tokens, train.Y)
        train_enc.texts = self.texts_of(train)
        valid_enc = self.encode(self.texts_of(valid), valid.Y)
        seed_everything(self.config.seed)
        run_dir = Path(run_dir) if run_dir is not None else None
        self._train(train_enc, valid_enc, embeddings, run_dir=run_dir, resume=resume)
        for net in self.networks_.values():
            net.eval()
        return self

    def _check_fit(self) -> None:
        """Subclass hook, called once the label index is known and before the vocabulary and word vectors are
        built: raise :class:`~xmtc.errors.XMTCError` for settings that do not fit the data."""

    def _setup_runtime(self) -> None:
        if self.config.threads > 0:
            torch.set_num_threads(self.config.threads)
        self.device_ = resolve_device(self.config.device)
        distributed.init(self.device_)  # under torchrun: join the process group (gloo on CPU, NCCL on GPU)

    @staticmethod
    def _shared(build: Callable[[], Any], pack: Callable[[Any], dict[str, Any]] | None = None,
                unpack: Callable[[dict[str, Any]], Any] | None = None) -> Any:
        """Pre-training state built once: ``build()`` in one process; data-parallel, rank 0 builds and every
        rank takes rank 0's (packed as numpy arrays, CSR matrices and JSON values; see
        :func:`xmtc.train.distributed.share`)."""
        return distributed.share(build, pack, unpack)

    def _set_shared_vocab(self, shared: dict[str, Any]) -> np.ndarray:
        from xmtc.text import Vocab

        self.vocab_ = Vocab(shared["tokens"], shared["counts"])
        self.emb_dim_ = int(shared["vectors"].shape[1])
        return shared["vectors"]

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        from xmtc.text import tokenize_all

        return tokenize_all(texts)

    def _build_vocab(self, tokens: list[list[str]]) -> np.ndarray:
        """Vocabulary of the training tokens and its word vectors (vocab, dim) float32."""
        from xmtc.text import Vocab, load_embeddings, train_word2vec

        cfg = self.config
        self.vocab_ = Vocab.build(tokens, min_count=cfg.min_count, max_size=cfg.vocab_size)
        if cfg.embeddings:  # a named set (xmtc.text.pretrained) or a word2vec/GloVe text file
            asked = cfg.emb_dim if "emb_dim" in cfg.explicit_fields() else None  # the vectors' dim wins otherwise
            vectors, _ = load_embeddings(cfg.embeddings, self.vocab_, dim=asked, seed=cfg.seed)
        else:
            vectors = train_word2vec(tokens, self.vocab_, dim=cfg.emb_dim, epochs=cfg.w2v_epochs,
                                     seed=cfg.seed)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.emb_dim_ = int(vectors.shape[1])
        return vectors

    # ----------------------------------------------------------------- encoding and batching
    def _encode_tokens(self, tokens: list[list[str]], Y: sp.csr_matrix | None = None) -> Encoded:
        ids = [np.asarray(self.vocab_.encode(t, self.config.max_len), dtype=np.int64) for t in tokens]
        return self._finish_encoding(ids, Y)

    def encode(self, texts: Sequence[str], Y: sp.csr_matrix | None = None) -> Encoded:
        """Texts -> :class:`Encoded` (an empty document becomes one unknown token: attention is defined)."""
        return self._encode_tokens(self._tokenize(texts), Y)

    def _finish_encoding(self, ids: list[np.ndarray], Y: sp.csr_matrix | None) -> Encoded:
        from xmtc.text import UNK

        ids = [a[a != 0] if len(a) else a for a in ids]  # drop any padding the encoder added
        ids = [a if len(a) else np.asarray([UNK], dtype=np.int64) for a in ids]
        lengths = np.asarray([len(a) for a in ids], dtype=np.int64)
        return Encoded(ids=ids, lengths=lengths, Y=sp.csr_matrix(Y) if Y is not None else None)

    def train_batches(self, data: Encoded, epoch: int, batch_size: int | None = None,
                      salt: int = 0) -> Batches:
        """Shuffled (length-bucketed when ``cfg.bucket``) batches, deterministic in (seed, epoch, salt).

        Data-parallel: this rank's share, ``batches[rank::world]`` after dropping the last ``len % world``
        batches (:func:`xmtc.train.distributed.shard`), so every rank takes the same number of steps."""
        bs = batch_size or self.config.batch_size
        rng = epoch_rng(self.config.seed, epoch, salt)
        if self.config.bucket:
            from xmtc.text import bucket_batches

            groups = [np.asarray(g, dtype=np.int64) for g in bucket_batches(data.lengths, bs, rng)]
        else:
            perm = rng.permutation(len(data))
            groups = [perm[i: i + bs] for i in range(0, len(data), bs)]
        if distributed.is_distributed():
            groups = distributed.shard(groups)
        return Batches(data, groups, self.device_)

    def eval_batches(self, data: Encoded, batch_size: int | None = None) -> Batches:
        """Batches of documents sorted by length (little padding); ``rows`` give the original positions."""
        bs = batch_size or self.config.eval_batch_size
        order = np.argsort(data.lengths, kind="stable")
        return Batches(data, [order[i: i + bs] for i in range(0, len(data), bs)], self.device_)

    # ----------------------------------------------------------------- prediction and validation
    def predict_encoded(self, data: Encoded, k: int,
                        topk_fn: Callable[[TextBatch, int], tuple[torch.Tensor, torch.Tensor]] | None = None,
                        n_labels: int | None = None) -> TopK:
        """Top-k over an encoded split with ``topk_fn`` (default :meth:`_topk_batch`), in input order."""
        topk_fn = topk_fn or self._topk_batch
        n = len(data)
        indices = np.full((n, k), -1, dtype=np.int32)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        with torch.no_grad(), autocast(self.device_, self.config.bf16):
            for batch in self.eval_batches(data):
                idx, val = topk_fn(batch, k)
                kk = idx.shape[1]
                indices[batch.rows, :kk] = idx.cpu().numpy()
                scores[batch.rows, :kk] = val.float().cpu().numpy()
        return TopK(indices, scores, n_labels=n_labels if n_labels is not None else self.n_labels_)

    def validation_score(self, valid: Encoded,
                         topk_fn: Callable[[TextBatch, int], tuple[torch.Tensor, torch.Tensor]] | None = None,
                         Y: sp.csr_matrix | None = None) -> float:
        """``cfg.select_metric`` (P@k or nDCG@k) of ``topk_fn`` on ``valid`` against ``Y`` (or valid.Y)."""
        from xmtc import metrics

        Y = valid.Y if Y is None else sp.csr_matrix(Y)
        name, k = self.config.select_metric.split("@")
        top = self.predict_encoded(valid, int(k), topk_fn, n_labels=Y.shape[1])
        fn = metrics.precision_at_k if name == "P" else metrics.ndcg_at_k
        return float(fn(Y, top, int(k)))

    def _predict(self, data: Dataset | Sequence[str], k: int) -> TopK:
        if self.device_ is None:
            self._setup_runtime()
        for net in self.networks_.values():
            net.eval()
        return self.predict_encoded(self.encode(self.texts_of(data)), k)

    # ----------------------------------------------------------------- persistence
    def _save_state(self, path: Path) -> list[str]:
        from safetensors.torch import save_file

        tensors, seen = {}, set()
        for name, net in self.networks_.items():
            for key, value in net.state_dict().items():
                value = value.detach().cpu().contiguous()
                if value.data_ptr() in seen:  # a module shared by two networks: safetensors wants own storage
                    value = value.clone()
                seen.add(value.data_ptr())
                tensors[f"{name}.{key}"] = value
        save_file(tensors, str(path / WEIGHTS_FILE))
        self.vocab_.to_json(path / VOCAB_FILE)
        state = {"emb_dim": self.emb_dim_, "networks": list(self.networks_), "extra": self._extra_state()}
        (path / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        return [VOCAB_FILE, STATE_FILE, WEIGHTS_FILE, *self._save_extra(path)]

    def _load_state(self, path: Path) -> None:
        from safetensors.torch import load_file

        from xmtc.text import Vocab

        self._setup_runtime()
        try:
            self.vocab_ = Vocab.from_json(path / VOCAB_FILE)
            state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, XMTCError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{path}: cannot read {VOCAB_FILE}/{STATE_FILE} ({e})") from None
        self.emb_dim_ = int(state["emb_dim"])
        self._set_extra_state(state.get("extra", {}))
        self._load_extra(path)
        placeholder = np.zeros((len(self.vocab_), self.emb_dim_), dtype=np.float32)
        networks = self._make_networks(placeholder)
        if list(networks) != list(state["networks"]):
            raise ModelLoadError(f"{path}: networks {state['networks']} do not match the config "
                                 f"(expects {list(networks)})")
        tensors = load_file(str(path / WEIGHTS_FILE))
        for name, net in networks.items():
            own = net.state_dict()
            prefix = f"{name}."
            saved = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            missing = sorted(set(own) - set(saved))
            extra = sorted(set(saved) - set(own))
            if missing or extra:
                raise ModelLoadError(f"{path / WEIGHTS_FILE}: network {name!r} weights do not match the "
                                     f"config (missing {missing[:3]}, unexpected {extra[:3]})")
            for key, value in saved.items():
                if tuple(value.shape) != tuple(own[key].shape):
                    raise ModelLoadError(f"{path / WEIGHTS_FILE}: {name}.{key} has shape "
                                         f"{tuple(value.shape)}, the config gives {tuple(own[key].shape)}")
            net.load_state_dict(saved)
            net.to(self.device_).eval()
        self.networks_ = networks


# --------------------------------------------------------------------- helpers shared by subclasses
def check_encoder_fields(cfg: Any) -> None:
    """The checks of the BiLSTM + FC fields that AttentionXML and LightAttention share (``hidden``, ``fc``,
    ``dropout``, ``fc_dropout``)."""
    check(cfg.hidden > 0, f"hidden must be positive, but is {cfg.hidden}")
    check(all(s > 0 for s in cfg.fc), f"fc sizes must be positive, but are {cfg.fc}")
    check(0 <= cfg.dropout < 1, f"dropout must be in [0, 1), but is {cfg.dropout}")
    check(cfg.fc_dropout is None or 0 <= cfg.fc_dropout < 1,
          f"fc_dropout must be null or in [0, 1), but is {cfg.fc_dropout}")


def fc_options(cfg: Any) -> dict[str, Any]:
    """``MLP`` keyword arguments of the fully connected stacks of AttentionXML and LightAttention: dropout
    ``fc_dropout`` (null: ``dropout``) and ``xavier_fc``."""
    return {"dropout": cfg.dropout if cfg.fc_dropout is None else cfg.fc_dropout, "xavier": cfg.xavier_fc}


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over documents and labels (AttentionXML Eq. 6), computed in float32."""
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.float())


def topk_of_logits(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(label ids (b, k'), sigmoid scores (b, k')) with k' = min(k, L), sorted by decreasing score."""
    val, idx = torch.topk(logits.float(), min(k, logits.shape[1]), dim=1)
    return idx, torch.sigmoid(val)

