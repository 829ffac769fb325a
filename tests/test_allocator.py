"""xmtc.train.device.tune_allocator: freed large blocks are reused instead of being unmapped (glibc)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from xmtc.train.device import tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A 64 MiB tensor written, freed and written again: count the page faults of the second round.
_PROBE = textwrap.dedent("""
    import resource, sys, torch
    from xmtc.train.device import tune_allocator
    changed = tune_allocator()
    torch.empty(16 * 2**20).fill_(1.0)  # allocated and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)
    print(int(changed), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _probe(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("XMTC_MALLOC", "LD_PRELOAD", "GLIBC_TUNABLES")
             and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the allocator is tuned on glibc only")
def test_a_freed_large_block_is_reused_without_page_faults():
    changed, faults = _probe()
    assert changed and faults < 1000  # 64 MiB is 16,384 pages of 4 KiB


@pytest.mark.skipif(not GLIBC, reason="the allocator is tuned on glibc only")
def test_xmtc_malloc_system_leaves_glibc_alone():
    changed, faults = _probe(XMTC_MALLOC="system")
    assert not changed and faults > 8000  # glibc unmapped the block, so every page faults again


@pytest.mark.parametrize("env", [{"XMTC_MALLOC": "system"}, {"MALLOC_MMAP_MAX_": "65536"},
                                 {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, {"GLIBC_TUNABLES": "glibc.malloc.x=1"}])
def test_a_user_choice_of_allocator_wins(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert tune_allocator.__wrapped__() is False
