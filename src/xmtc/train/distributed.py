"""Data-parallel training and sharded prediction on ``torchrun`` / ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launched by ``torchrun`` (the variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT`` with a
world size above 1), every deep model trains data-parallel; without them nothing here does anything (world size
1, no process group) and training is exactly the one-process loop.

* :func:`init` joins the process group (``gloo`` on CPU; ``cpu:gloo,cuda:nccl`` on GPU, so that gradients go
  over NCCL and the small CPU messages below over gloo); device ``auto``/``cuda`` becomes ``cuda:LOCAL_RANK``.
* :func:`shard` gives each rank a disjoint, deterministic share of an epoch's batches: the list (itself a
  function of seed, epoch and salt) loses its last ``len % world`` batches, so that every rank takes the same
  number of steps, and rank ``r`` keeps ``batches[r::world]``.
* :func:`data_parallel` wraps a loss callable in ``DistributedDataParallel``: the whole ``loss(module, batch)``
  runs inside DDP's ``forward``, so gradients are averaged over the ranks whatever methods of the module a
  model's loss calls (``encode``, ``score``, ...), not only ``forward``.
* :func:`share` builds pre-training state (vocabulary, word vectors, label trees, shortlists) on rank 0 and
  broadcasts it as numpy arrays, CSR matrices and JSON values (an ``.npz`` image read with
  ``allow_pickle=False``, :mod:`xmtc.train.state_codec`: no pickle travels between the ranks);
  :func:`share_object` does the same for an object with its own save/load (a fitted shortlister).
* :func:`broadcast_float`, :func:`mean_over_ranks`, :func:`barrier`, :func:`broadcast_bytes`,
  :func:`gather_rows`: the few collectives the training loop and ``xmtc predict`` need;
  :func:`check_in_sync` verifies at the end of a training stage that every rank holds the same weights.
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from xmtc.errors import ConfigError, XMTCError
from xmtc.train.state_codec import pack_state, unpack_state

T = TypeVar("T")

#: Minutes a rank waits in a collective before it gives up (default 720: rank 0 may prepare for hours alone).
TIMEOUT_ENV = "XMTC_DIST_TIMEOUT_MIN"
#: Test hook: ``"RANK:EPOCH"`` makes that rank exit (status 17) right after the checkpoint of epoch EPOCH (in the
#: first training stage that reaches it), as a killed process would (tests/test_distributed.py resumes such a run).
TEST_EXIT_ENV = "XMTC_TEST_EXIT_AFTER_EPOCH"


# --------------------------------------------------------------------------------------------- who am I
def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """True under ``torchrun`` (or any launcher setting ``RANK``/``WORLD_SIZE``) with more than one process."""
    return "RANK" in os.environ and _env_int("WORLD_SIZE", 1) > 1


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Processes training together (1 without a launcher)."""
    if _initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def get_rank() -> int:
    """This process's rank (0 without a launcher)."""
    if _initialized():
        return dist.get_rank()
    return _env_int("RANK", 0) if launched() else 0


def local_rank() -> int:
    """This process's rank on its machine (selects its GPU)."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def is_distributed() -> bool:
    """More than one process trains together."""
    return get_world_size() > 1


def is_main() -> bool:
    """Rank 0: the one that evaluates, writes checkpoints, metrics and the model."""
    return get_rank() == 0


def device_name(name: str) -> str:
    """``auto``/``cuda`` -> ``cuda:LOCAL_RANK`` under a launcher when CUDA is available; otherwise ``name``."""
    if launched() and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank()}"
    return name


def init(device: torch.device | str = "cpu") -> bool:
    """Join the process group of a ``torchrun`` launch (once; later calls do nothing).

    Args:
        device: the training device: ``cuda`` devices get ``cpu:gloo,cuda:nccl`` (and become the current
            CUDA device), CPU gets ``gloo``.

    Returns:
        True when this process is part of a group of several (launched or initialised by the caller).
    """
    if _initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise XMTCError("this torch build has no torch.distributed; run without torchrun")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    # env:// rendezvous (torchrun's MASTER_ADDR/PORT, RANK, WORLD_SIZE). A long timeout: the other ranks wait in a
    # broadcast while rank 0 alone builds word vectors, trees or a shortlister on millions of documents
    minutes = _env_int(TIMEOUT_ENV, 720)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes))
    atexit.register(_destroy)
    return True


def _destroy() -> None:
    if _initialized():
        dist.destroy_process_group()


def _group_ready() -> None:
    if not _initialized():
        init("cpu")
    if not _initialized():
        raise XMTCError("no torch.distributed process group: launch with torchrun (or call "
                        "xmtc.train.distributed.init)")


# --------------------------------------------------------------------------------------------- batches
def shard(items: Sequence[T], rank: int | None = None, world: int | None = None, what: str = "batches") -> list[T]:
    """This rank's share of ``items``: the last ``len % world`` are dropped, rank ``r`` keeps ``items[r::world]``.

    Disjoint over the ranks, together all of ``items`` but the dropped tail, and deterministic in the order of
    ``items``, ``rank`` and ``world`` (defaults: this process's).

    Raises:
        ConfigError: fewer items than ranks (a rank would have nothing to do).
    """
    rank = get_rank() if rank is None else rank
    world = get_world_size() if world is None else world
    if world <= 1:
        return list(items)
    if 0 < len(items) < world:
        raise ConfigError(f"an epoch has {len(items)} {what}, fewer than the {world} processes training "
                          "together: lower batch_size or use fewer processes")
    keep = len(items) - len(items) % world
    return list(items[:keep][rank::world])


def shard_range(n: int, rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that this rank predicts: contiguous blocks, in rank order (sizes differ by 1)."""
    rank = get_rank() if rank is None else rank
    world = get_world_size() if world is None else world
    bounds = np.linspace(0, n, world + 1).round().astype(np.int64)
    return int(bounds[rank]), int(bounds[rank + 1])


def epoch_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """Seed of this rank's torch/numpy RNGs in ``epoch`` (dropout differs over the ranks, survives a resume)."""
    rank = get_rank() if rank is None else rank
    return int(np.random.default_rng([seed, epoch, rank, 0x5EED]).integers(2**31))


# --------------------------------------------------------------------------------------------- gradients
class _LossModule(nn.Module):
    """``forward(batch) = loss(module, batch)``: puts a model's whole loss inside DDP's forward."""

    def __init__(self, module: nn.Module, loss: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.module = module
        self.loss = loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss(self.module, batch)


def data_parallel(module: nn.Module, loss: Callable[[nn.Module, Any], torch.Tensor]
                  ) -> Callable[[nn.Module, Any], torch.Tensor]:
    """``loss`` computed through ``DistributedDataParallel``: its backward averages the gradients over the ranks.

    DDP hooks only ``forward``; the wrapper makes ``loss(module, batch)`` itself the forward, so a loss that
    calls ``module.encode`` / ``module.score`` is covered too. ``find_unused_parameters=True``: a frozen,
    shared encoder (AttentionXML ``share_encoder``) or a head a variant does not use get no gradient. DDP also
    broadcasts rank 0's weights when it wraps the module, so every rank starts a stage from the same weights.
    """
    from torch.nn.parallel import DistributedDataParallel

    if not any(p.requires_grad for p in module.parameters()):
        return loss
    # device_ids=None: the batches are already on the module's device (DDP would try to move them otherwise)
    ddp = DistributedDataParallel(_LossModule(module, loss), device_ids=None, find_unused_parameters=True)
    return lambda _module, batch: ddp(batch)


def refuse_sparse(n_sparse: int) -> None:
    """A clear error for sparse-gradient parameters under data-parallel training."""
    if n_sparse and is_distributed():
        raise ConfigError(f"{n_sparse} parameter(s) get sparse gradients (sparse_grad=true, stepped by SparseAdam), "
                          "which data-parallel training (torchrun) does not support: set sparse_grad=false, or "
                          "train in one process")


# --------------------------------------------------------------------------------------------- collectives
def _cpu_tensor(values, dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def barrier() -> None:
    """Every rank waits here for the others (a CPU all-reduce: gloo on every backend)."""
    if is_distributed():
        _group_ready()
        dist.all_reduce(torch.zeros(1))


def broadcast_float(value: float) -> float:
    """Rank 0's ``value`` on every rank."""
    if not is_distributed():
        return value
    _group_ready()
    t = _cpu_tensor([value], torch.float64)
    dist.broadcast(t, 0)
    return float(t.item())


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar tensor over the ranks (NaN anywhere gives NaN everywhere)."""
    if not is_distributed():
        return value
    t = value.detach().float().reshape(1).cpu().clone()
    dist.all_reduce(t)
    return t[0] / get_world_size()


def broadcast_bytes(data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (others pass None or anything)."""
    if not is_distributed():
        return data if data is not None else b""
    _group_ready()
    n = _cpu_tensor([len(data) if is_main() and data is not None else 0], torch.int64)
    dist.broadcast(n, 0)
    size = int(n.item())
    if size == 0:
        return b""
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8) if is_main() else torch.empty(size, dtype=torch.uint8)
    dist.broadcast(buf, 0)
    return buf.numpy().tobytes()


def gather_rows(array: np.ndarray) -> np.ndarray:
    """The rows of every rank's ``array``, concatenated in rank order, on every rank (equal trailing shapes)."""
    if not is_distributed():
        return array
    _group_ready()
    world = get_world_size()
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(sizes, _cpu_tensor([array.shape[0]], torch.int64))
    counts = [int(s.item()) for s in sizes]
    padded = np.zeros((max(counts), *array.shape[1:]), dtype=array.dtype)
    padded[: array.shape[0]] = array
    mine = torch.from_numpy(padded)
    parts = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    return np.concatenate([p.numpy()[:c] for p, c in zip(parts, counts, strict=True)])


def check_in_sync(module: nn.Module, what: str) -> None:
    """Raise when some rank's weights differ from rank 0's (SHA-256 of the state dict, compared on every rank)."""
    if not is_distributed():
        return
    _group_ready()
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    mine = torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)
    parts = [torch.empty_like(mine) for _ in range(get_world_size())]
    dist.all_gather(parts, mine)
    differ = [r for r, p in enumerate(parts) if not torch.equal(p, parts[0])]
    if differ:
        raise XMTCError(f"{what}: rank(s) {differ} hold different weights than rank 0 after training; the ranks "
                        "diverged (please report this with the command line)")


def fault_point(epoch: int) -> None:
    """The test hook of :data:`TEST_EXIT_ENV` (does nothing unless it is set)."""
    spec = os.environ.get(TEST_EXIT_ENV, "")
    if spec and spec == f"{get_rank()}:{epoch}":
        os._exit(17)


# --------------------------------------------------------------------------------------------- rank-0 state
_OK, _FAILED = b"\x00", b"\x01"


def share(build: Callable[[], Any], pack: Callable[[Any], dict[str, Any]] | None = None,
          unpack: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """``build()`` on rank 0 only; every rank gets rank 0's result.

    In one process this is just ``build()``. Under data-parallel training rank 0 builds, ``pack`` turns the
    result into a dict of numpy arrays, scipy sparse matrices, None and JSON values (default: ``build``
    returns that dict), the dict is broadcast, and every rank - rank 0 too - returns ``unpack(dict)``, so all
    ranks hold bit-identical state. An error on rank 0 is raised on every rank.
    """
    if not is_distributed():
        return build()
    _group_ready()
    payload = None
    if is_main():
        try:
            result = build()
            payload = _OK + pack_state(pack(result) if pack is not None else result)
        except BaseException as e:  # tell the other ranks, which would wait forever otherwise
            broadcast_bytes(_FAILED + f"{type(e).__name__}: {e}".encode("utf-8", "replace"))
            raise
    data = broadcast_bytes(payload)
    if data[:1] == _FAILED:
        raise XMTCError(f"rank 0 failed while preparing the training state: {data[1:].decode('utf-8', 'replace')}")
    values = unpack_state(data[1:])
    return unpack(values) if unpack is not None else values


def share_object(build: Callable[[], T], save: Callable[[T, Path], Any], load: Callable[[Path], T]) -> T:
    """:func:`share` for an object with its own persistence: rank 0 builds and ``save(obj, folder)``s it, the
    folder's files are broadcast, and every rank returns ``load(folder)`` of its copy (one process: ``build()``)."""
    if not is_distributed():
        return build()

    def files() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="xmtc-share-") as tmp:
            root = Path(tmp) / "object"
            save(build(), root)
            paths = sorted(p for p in root.rglob("*") if p.is_file())
            names = [str(p.relative_to(root)) for p in paths]
            return {"names": names, **{f"f{i}": np.frombuffer(p.read_bytes(), dtype=np.uint8)
                                       for i, p in enumerate(paths)}}

    got = share(files)
    with tempfile.TemporaryDirectory(prefix="xmtc-share-") as tmp:
        root = Path(tmp) / "object"
        for i, name in enumerate(got["names"]):
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(got[f"f{i}"].tobytes())
        return load(root)
