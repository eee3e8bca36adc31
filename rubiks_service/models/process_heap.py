"""Keep the memory a forward pass frees in the process's heap, for repeated inference on CPU.

A forward pass frees its activations when it returns. glibc gives memory freed at the top of its
heap back to the kernel (above its trim threshold), and serves large blocks with fresh mmaps (above
its mmap threshold), so the next call faults the same megabytes in again, zeroed by the kernel:
~15k minor page faults per batch-1 rubiksnet-tiny forward (8 x 224²) and ~250k at batch 8 on the
2-core EPYC, a fifth to two fifths of its time at 2 threads (docs/results.md). Serving every block
from the heap (no mmap: blocks past glibc's 32 MiB mmap limit, a batch-8 activation, would be mapped
afresh each call) and raising the trim threshold to 1 GiB keeps that memory for the next call; the
process's resident size stays at its peak instead of shrinking between calls, which is what a
serving process wants. (glibc falls back to mmap where the heap cannot grow.)

A process-wide setting, made once by `retain_freed_memory()` (the inference form calls it);
`RUBIKS_KEEP_HEAP=0` in the environment opts out; a no-op where glibc's `mallopt` is absent.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
RETAINED = "glibc heap only (mmap off), trim threshold 1 GiB"

_setting: str | None = None


def retain_freed_memory() -> str:
    """Keep freed memory in the heap (once per process); the setting in effect, as `heap_setting()`."""
    global _setting
    if _setting is None:
        _setting = _apply()
    return _setting


def heap_setting() -> str:
    """What latency records state: RETAINED, or why the allocator's defaults are in effect."""
    return _setting or "default"


def _apply() -> str:
    if os.environ.get("RUBIKS_KEEP_HEAP", "1") == "0":
        return "default (RUBIKS_KEEP_HEAP=0)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        applied = libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) and libc.mallopt(_M_MMAP_MAX, 0)
    except (OSError, AttributeError, TypeError):  # not glibc
        applied = False
    return RETAINED if applied else "default (no glibc mallopt)"
