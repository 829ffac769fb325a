"""Where and how training runs: the device (``auto``, ``cpu``, ``cuda``; this process's GPU under torchrun), the
seeds of every RNG, bf16 autocast where the hardware has native bf16 kernels, and whether the fused optimizer
step applies (the allocator's settings are in :mod:`xmtc.allocator`).
"""

from __future__ import annotations

import contextlib
import functools
import random
from pathlib import Path

import numpy as np
import torch

from xmtc.errors import XMTCError
from xmtc.train import distributed


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; a clear error for an unavailable cuda. Under torchrun 'auto' and
    'cuda' mean this process's GPU, ``cuda:LOCAL_RANK``."""
    name = distributed.device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise XMTCError(f"device {name!r} requested but CUDA is not available; use device=auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def fusable(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam/AdamW kernel can step ``params``: one pass per tensor and no temporaries. The
    per-tensor form allocates two tensors the size of each parameter at every step (``sqrt`` of the second
    moment, then the division): for a word-embedding table, a large share of a CPU step."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


@functools.lru_cache(maxsize=8)
def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` has native bf16 kernels: a CUDA device with bf16, or a CPU with avx512_bf16 / AMX."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(device: torch.device, enabled: bool | None):
    """bf16 autocast context on ``device`` (a no-op context when disabled); ``None`` = where supported.

    ``True`` on a CPU without native bf16 kernels runs in fp32 with one warning: oneDNN has no bf16 LSTM there
    (it fails with "could not create a primitive descriptor"), and a model trained with ``bf16=true`` on one
    machine must still train and predict on another.
    """
    if enabled is None:
        enabled = bf16_supported(device)
    elif enabled and device.type == "cpu" and not bf16_supported(device):
        _warn_no_bf16()
        enabled = False
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@functools.lru_cache(maxsize=1)
def _warn_no_bf16() -> None:
    import warnings

    warnings.warn("bf16=true, but this CPU has no native bf16 kernels (avx512_bf16 or AMX): running in fp32 "
                  "(set bf16=null to choose automatically)", RuntimeWarning, stacklevel=3)
