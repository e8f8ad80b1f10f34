"""SIGTERM handling shared by the long-running commands.

A ``kill`` (SIGTERM) should end a run the way Ctrl-C does, so that the command saves what it has and exits
with code 130; the commands install this handler around their work and restore the previous one after.
"""
from __future__ import annotations

import signal

__all__ = ["sigterm_as_interrupt"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def sigterm_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt; returns the previous handler (restore it with signal.signal)."""
    return signal.signal(signal.SIGTERM, _raise_interrupt)
