"""xmtc.allocator.tune_allocator: freed large blocks are reused instead of being unmapped (glibc)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from xmtc.allocator import allocator_env, tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A 64 MiB tensor written and freed a few times (as a training step does), then once more: count the page faults
# of that last round. The first rounds may fault (a small block can land in the freed space: the heap grows once).
_PROBE = textwrap.dedent("""
    import resource, sys, torch
    from xmtc.allocator import tune_allocator
    changed = tune_allocator()
    for _ in range(3):
        torch.empty(16 * 2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)
    print(int(changed), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _probe(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if k not in allocator_env() and k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the allocator is tuned on glibc only")
def test_a_freed_large_block_is_reused_without_page_faults():
    changed, faults = _probe()
    kept, faults_system = _probe(XMTC_MALLOC="system")
    assert changed and not kept
    # glibc's default unmaps the freed block, so its pages fault again (16,384 of 4 KiB; fewer with huge pages)
    assert faults_system > 0 and faults * 4 < faults_system


@pytest.mark.parametrize("env", [{"XMTC_MALLOC": "system"}, {"MALLOC_MMAP_MAX_": "65536"}, {"MALLOC_ARENA_MAX": "2"},
                                 {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}])
def test_a_user_choice_of_allocator_wins(monkeypatch, env):
    for k in allocator_env():
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert tune_allocator.__wrapped__() is False


def test_the_allocator_variables_are_the_set_ones():
    env = {"XMTC_MALLOC": "system", "MALLOC_TOP_PAD_": "0", "GLIBC_TUNABLES": "", "HOME": "/root", "LD_PRELOAD": "x"}
    assert allocator_env(env) == {"LD_PRELOAD": "x", "MALLOC_TOP_PAD_": "0", "XMTC_MALLOC": "system"}
