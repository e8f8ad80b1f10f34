"""Keep the memory of freed activations in the process between iterations (glibc), for the command line.

Each optimisation step allocates and frees the same few hundred MB of activations and gradients. glibc serves
blocks above its mmap threshold (128 KB, adapting up to 32 MB) with fresh mappings and hands them back when they
are freed, and trims the heap top above 128 KB, so every step faults the same memory in again and the kernel
zeroes it. With the settings below the iterations stop faulting that memory in again (docs/benchmarks.md has
the measurements). PyTorch's CPU tuning guide
recommends jemalloc or tcmalloc for the same reason; glibc's own ``mallopt`` needs no extra install.

Only the ``stylekit`` command calls this (it owns its process); a program that imports stylekit keeps its own
allocator settings, and can get the same effect with the environment variables ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` (values below).
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "kept_bytes"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3   # glibc's malloc.h
_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20),    # blocks up to 32 MB come from the heap, not fresh mappings
             (_M_TRIM_THRESHOLD, 1 << 30),     # give the heap top back only above 1 GB free
             (_M_TOP_PAD, 256 << 20))          # grow the heap in 256 MB steps
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_CONF", "LD_PRELOAD")
_applied = False


def keep_freed_memory() -> bool:
    """Apply the settings above with glibc's ``mallopt``; True when they took effect.

    Does nothing (False) off Linux, with a C library without ``mallopt``, or when the user has chosen an
    allocator or allocator settings (``MALLOC_*`` variables, a preloaded jemalloc/tcmalloc): theirs wins.
    """
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    global _applied
    _applied = all([mallopt(param, value) == 1 for param, value in _SETTINGS])
    return _applied


def kept_bytes() -> int:
    """The most freed memory the settings let the heap keep (trim threshold + top pad), 0 if not applied.

    Memory estimates add it: without it, large runs peak above the estimate.
    """
    settings = dict(_SETTINGS)
    return settings[_M_TRIM_THRESHOLD] + settings[_M_TOP_PAD] if _applied else 0
