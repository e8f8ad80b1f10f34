"""Checks shared by the config dataclasses of every medium: bounded integers and floats, thread counts and
seeds. Plain Python, so configs stay importable without torch."""
from __future__ import annotations

import math
import os

from .errors import ConfigError

__all__ = ["TORCH_SEEDS", "max_threads", "check_threads", "check_int", "check_float", "fold_seed"]

#: torch's generators take seeds in this range; an audio seed outside it is folded in (:func:`fold_seed`).
TORCH_SEEDS = (-2 ** 63, 2 ** 64)


def max_threads() -> int:
    """The most CPU threads a run may ask for: four per core (at least 64). More only slows a run down, and
    torch crashes on absurd counts (100000)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_threads(n, name: str = "threads") -> int:
    """``n`` if it is a thread count in ``1..max_threads()``, else a :class:`ConfigError` naming ``name``."""
    return check_int(name, n, 1, max_threads())


def check_int(name: str, value, lo: int, hi: int) -> int:
    """``value`` if it is an integer (not a bool) in ``[lo, hi]``, else a :class:`ConfigError` naming ``name``.

    Examples
    --------
    >>> check_int("--iterations", 5, 1, 10)
    5
    >>> check_int("--iterations", 0, 1, 10)
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: ...
    """
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def check_float(name: str, value, lo: float, hi: float, *, low_open: bool = False) -> float:
    """``value`` if it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``low_open``), else a
    :class:`ConfigError` naming ``name`` (NaN and infinities included).

    Examples
    --------
    >>> check_float("--lr", 0.5, 0.0, 1.0, low_open=True)
    0.5
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (lo < value if low_open else lo <= value) or value > hi:
        interval = f"{'(' if low_open else '['}{lo:g}, {hi:g}]"
        raise ConfigError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def fold_seed(seed: int, *, lo: int = 0, hi: int = 2 ** 32) -> int:
    """A seed the generators take: a seed in ``[lo, hi)`` as it is; any other integer mapped into
    ``[max(lo, 0), hi)`` by the sha256 of its decimal text. So every integer is accepted (none is refused or
    crashes a generator) and the same integer always gives the same run. The default range is numpy's
    (``RandomState``); torch's generators take ``[-2**63, 2**64)``.

    Examples
    --------
    >>> fold_seed(7), fold_seed(2 ** 40) == fold_seed(2 ** 40), 0 <= fold_seed(-1) < 2 ** 32
    (7, True, True)
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if lo <= seed < hi:
        return seed
    import hashlib
    base = max(lo, 0)
    return base + int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:16], "big") % (hi - base)
