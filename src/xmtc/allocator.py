"""The C allocator under training: keep freed large blocks in the process (glibc), unless the user chose otherwise.

No torch here: the benchmark runner records :func:`allocator_env` in a result's command without loading torch.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Mapping


def allocator_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The non-empty variables of ``env`` (default: this process's) that choose or tune the C allocator:
    ``XMTC_MALLOC``, ``LD_PRELOAD``, ``GLIBC_TUNABLES`` and glibc's ``MALLOC_*``."""
    env = os.environ if env is None else env
    return {k: v for k, v in sorted(env.items())
            if v and (k in ("XMTC_MALLOC", "LD_PRELOAD", "GLIBC_TUNABLES") or k.startswith("MALLOC_"))}


@functools.lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """Keep freed memory in the process instead of handing it back to the kernel (glibc; once per process).

    glibc serves every block above 32 MiB with its own ``mmap`` and unmaps it on ``free``, so a training step
    that allocates the same large tensors every time (an optimizer's temporaries, an embedding's dense gradient,
    a batch's activations) pays a page fault per 4 KiB page, every step: 15-30 % of a deep model's CPU time went
    to the kernel (``sys``) before this. With ``mmap`` off and a high trim threshold, freed blocks are reused from
    the main heap. The costs: the heap keeps its high-water mark for the life of the process, and blocks kept
    alive between per-step tensors (best weights, SWA averages) can fragment it, so the peak resident memory can
    be higher than before (and is not comparable with result files from before 2026-12-07). It acts on the
    allocations of the main thread (where training runs); a worker thread's large blocks are still mapped and
    unmapped by glibc. Deep models call it when they fit.

    Leaves the allocator alone when ``XMTC_MALLOC=system``, when the user tuned glibc (any ``MALLOC_*`` variable,
    or ``glibc.malloc.*`` in ``GLIBC_TUNABLES``), when another allocator is preloaded (jemalloc, tcmalloc,
    mimalloc), and off glibc. Returns whether it changed anything.
    """
    chosen = allocator_env()
    if (chosen.get("XMTC_MALLOC", "").strip().lower() == "system" or any(k.startswith("MALLOC_") for k in chosen)
            or "glibc.malloc." in chosen.get("GLIBC_TUNABLES", "") or "malloc" in chosen.get("LD_PRELOAD", "")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_trim_threshold, 1 << 30)) and bool(mallopt(m_mmap_max, 0))
