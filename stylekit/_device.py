"""Which device a run uses: the one ``resolve_device`` of every medium.

``auto`` picks CUDA, then Apple's MPS, then the CPU; ``cuda:N`` picks one of several GPUs. MPS is routed but
untested (no such machine is available to the project); runs there stay in float32.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "DEVICE_METAVAR", "check_device", "resolve_device"]

#: The device names a config's ``device`` may say (plus ``cuda:N``).
DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_METAVAR = "auto|cpu|cuda[:N]|mps"
_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")


def check_device(name) -> str:
    """``name`` if it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), else a ConfigError.
    Whether that device exists is for :func:`resolve_device` to say, when a run starts."""
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return name


def _mps_available() -> bool:
    import torch
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` of ``name``; a device that is asked for and missing is a :class:`ConfigError`.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cuda", "mps", "cpu")
    True
    """
    import torch

    check_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for, but no CUDA device is available "
                              "(torch.cuda.is_available() is False); use --device cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else None
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name} was asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s): cuda:0 ... "
                              f"cuda:{torch.cuda.device_count() - 1}")
    if name == "mps" and not _mps_available():
        raise ConfigError("--device mps was asked for, but MPS is not available on this machine")
    return torch.device(name)
