"""Allocator tuning for the generator's many short-lived arrays.

Each record allocates and frees a dozen arrays of 0.1-1 MB. glibc serves such blocks with fresh
``mmap`` pages or trims the heap after freeing them, so every record pays page faults again (about a
third of the CPU time measured here). Raising the mmap and trim thresholds keeps the memory in the
process for reuse. It is process-wide, so the generator applies it only in processes it owns (its
worker pool, the ``meit synth`` command and the benchmark); library callers may call it themselves.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Raise glibc's mmap/trim thresholds; returns False (and changes nothing) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
