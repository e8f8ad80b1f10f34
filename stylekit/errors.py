"""The exceptions a user can cause.

Every failure that a user can provoke (a bad file, a bad option, missing weights) is raised as a
:class:`StylekitError` whose message is one readable line. The CLI prints that line and exits with code 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["StylekitError", "InputError", "ConfigError", "WeightsError"]


class StylekitError(Exception):
    """Base class of every user-facing stylekit error; ``str(err)`` is one line meant for the user."""


class InputError(StylekitError):
    """An input file cannot be read or is unusable (names the file and the problem)."""


class ConfigError(StylekitError, ValueError):
    """An option or configuration value is invalid."""


class WeightsError(StylekitError):
    """Network weights are missing, corrupt or do not match what was asked for."""
