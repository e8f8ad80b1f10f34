"""The exceptions a user can cause.

Every failure that a user can provoke (a bad file, a bad option, missing weights) is raised as a
:class:`StylekitError` whose message is one readable line. The CLI prints that line and exits with code 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["StylekitError", "InputError", "ConfigError", "WeightsError", "StylizeInterrupted"]


class StylekitError(Exception):
    """Base class of every user-facing stylekit error; ``str(err)`` is one line meant for the user."""


class InputError(StylekitError):
    """An input file cannot be read or is unusable (names the file and the problem)."""


class ConfigError(StylekitError, ValueError):
    """An option or configuration value is invalid."""


class WeightsError(StylekitError):
    """Network weights are missing, corrupt or do not match what was asked for."""


class StylizeInterrupted(KeyboardInterrupt):
    """Raised by :func:`stylekit.stylize_image` and :func:`stylekit.stylize_audio` on Ctrl-C (and SIGTERM in the
    command line): the run stopped early.

    Attributes
    ----------
    result : ImageResult or AudioResult or None
        The best result so far, already finished as an output (``interrupted`` is True); None when the interrupt
        came before the first step.
    state : dict
        Plain data (tensors, numbers, lists) from which the same call continues, given as its ``resume``
        argument, to the result of an uninterrupted run. Loadable with ``torch.load(weights_only=True)``.
    """

    def __init__(self, result, state: dict) -> None:
        super().__init__("interrupted")
        self.result = result
        self.state = state
