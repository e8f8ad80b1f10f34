"""Lazy public names for a package's ``__init__`` (PEP 562), so importing the package does no work."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(package: str, names: Mapping[str, str], extra: tuple[str, ...] = ()) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: each of ``names`` (name -> module, absolute or relative to the
    package) is imported from its module on first use; ``extra`` are names the package defines itself."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*extra, *names])

    return __getattr__, __dir__
