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

import os
from collections.abc import Sequence
from pathlib import Path

from .._checkpoint import read_checkpoint, write_checkpoint
from ..errors import ConfigError, InputError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "stylekit-audio-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, *, config, inputs: Sequence[str | os.PathLike],
                    style_blend: Sequence[float] | None, progress: dict, overwrite: bool = False) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    from .pipeline import config_to_dict

    return write_checkpoint(path, CHECKPOINT_FORMAT, inputs, {
        "config": config_to_dict(config),
        "style_blend": None if style_blend is None else [float(w) for w in style_blend],
        "progress": progress}, overwrite=overwrite)


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
    from .pipeline import config_from_dict

    p = Path(path)
    data = read_checkpoint(p, CHECKPOINT_FORMAT, "audio", inputs, fields={"progress": dict},
                           files="content or style files")
    try:
        config = config_from_dict(data.get("config"))
    except ConfigError as e:
        raise InputError(f"{p}: damaged stylekit audio checkpoint ({e})") from None
    blend = data.get("style_blend")
    if blend is not None and (not isinstance(blend, list) or len(blend) != len(inputs) - 1):
        raise InputError(f"{p}: damaged stylekit audio checkpoint (style blend)")
    return config, blend, data["progress"]
