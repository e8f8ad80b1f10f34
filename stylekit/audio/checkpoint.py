"""Checkpoints of interrupted ``stylekit audio`` runs: plain data, loaded with ``weights_only=True``.

A checkpoint is a ``torch.save``d dict::

    {"format": "stylekit-audio-checkpoint/1",
     "config": config_to_dict(AudioStyleConfig),      # every setting that changes the result
     "inputs": [sha256 of the content file, of each style file],
     "style_blend": [float, ...] or None,
     "progress": StylizeInterrupted.progress}          # finished chunks + the optimiser state

Nothing in it is a pickled object, so :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``
and refuses anything else (a tampered file, a foreign pickle, another command's checkpoint) with
:class:`~stylekit.errors.InputError`.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, InputError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "file_digest"]

CHECKPOINT_FORMAT = "stylekit-audio-checkpoint/1"


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, *, config, inputs: Sequence[str | os.PathLike],
                    style_blend: Sequence[float] | None, progress: dict, overwrite: bool = False) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    import torch

    from .._io import atomic_write
    from .pipeline import config_to_dict

    data = {"format": CHECKPOINT_FORMAT, "config": config_to_dict(config),
            "inputs": [file_digest(p) for p in inputs],
            "style_blend": None if style_blend is None else [float(w) for w in style_blend],
            "progress": progress}
    return atomic_write(path, lambda tmp: torch.save(data, tmp), overwrite=overwrite)


def load_checkpoint(path: str | os.PathLike, *, inputs: Sequence[str | os.PathLike]):
    """Read and check a checkpoint made from the same ``inputs`` (content, then styles).

    Returns
    -------
    (AudioStyleConfig, style_blend or None, progress dict)

    Raises
    ------
    InputError
        Missing file; not loadable with ``weights_only=True`` (tampered, a pickled object, not a checkpoint);
        another format; made from different input files; an invalid config inside.
    """
    import pickle

    import torch

    from .pipeline import config_from_dict

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError,
            KeyError, IndexError) as e:
        raise InputError(f"{p}: not a stylekit audio checkpoint, or tampered with ({type(e).__name__}); "
                         "it was not loaded") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{p}: not a stylekit audio checkpoint")
    if not isinstance(data.get("inputs"), list) or not isinstance(data.get("progress"), dict):
        raise InputError(f"{p}: damaged stylekit audio checkpoint (missing fields)")
    if data["inputs"] != [file_digest(q) for q in inputs]:
        raise InputError(f"{p}: this checkpoint was made from different content or style files")
    try:
        config = config_from_dict(data.get("config"))
    except ConfigError as e:
        raise InputError(f"{p}: damaged stylekit audio checkpoint ({e})") from None
    blend = data.get("style_blend")
    if blend is not None and (not isinstance(blend, list) or len(blend) != len(inputs) - 1):
        raise InputError(f"{p}: damaged stylekit audio checkpoint (style blend)")
    return config, blend, data["progress"]
