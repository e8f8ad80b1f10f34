"""Which device a run uses: the one ``resolve_device`` of every medium."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "resolve_device"]

#: What a config's ``device`` may say.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; ``"cuda"`` without a CUDA device -> :class:`ConfigError`."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available (torch.cuda.is_available() "
                          "is False); use --device cpu or auto")
    return torch.device(name)
