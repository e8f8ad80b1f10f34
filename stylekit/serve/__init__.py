"""The local web preview, ``stylekit serve``: runs the same Jobs as the commands and batch, in a browser.

Nothing heavy is imported here: the app needs the ``serve`` extra (Starlette, uvicorn), loaded when it starts.
"""
from __future__ import annotations

from .config import ServeConfig

__all__ = ["ServeConfig"]
