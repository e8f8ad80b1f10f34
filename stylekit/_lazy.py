"""Lazy public names for a package's ``__init__`` (PEP 562), so importing the package does no work."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, names: Mapping[str, str], extra: tuple[str, ...] = ()
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each of ``names`` (name -> module, absolute or relative to the
    package) is imported from its module on first use; ``extra`` are names the package defines itself.

    Type checkers and IDEs do not run ``__getattr__``: a package using this also imports each name under
    ``if TYPE_CHECKING:``, which gives them the real signatures (tests/test_types.py checks the two lists agree).

    >>> getattr_, dir_ = lazy_names("stylekit", {"optimize": "stylekit.optim"})
    >>> getattr_("optimize").__name__, dir_()
    ('optimize', ['optimize'])
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*extra, *names])

    return __getattr__, __dir__
