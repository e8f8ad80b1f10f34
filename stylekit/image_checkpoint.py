"""Checkpoints of interrupted image runs (``stylekit image`` and ``stylekit batch``): plain data, loaded with
``weights_only=True``.

A checkpoint is a ``torch.save``d dict::

    {"format": "stylekit-image-checkpoint/1",
     "config": ImageStyleConfig.to_dict(),             # every setting of the run
     "inputs": [sha256 of the content file, of each style file],
     "state": OptimizationInterrupted.state}           # iterate, best, optimiser state, scale and step

Nothing in it is a pickled object, so :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``
and refuses anything else (a tampered file, a foreign pickle, another command's checkpoint) with
:class:`~stylekit.errors.InputError`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from .errors import InputError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "checkpoint_path"]

CHECKPOINT_FORMAT = "stylekit-image-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, cfg, content, styles: Sequence, state: dict, *,
                    overwrite: bool) -> Path:
    """Write the checkpoint of a run of ``cfg`` (an ImageStyleConfig) on the files ``content`` and ``styles``
    atomically (temporary file, then rename)."""
    return write_checkpoint(path, CHECKPOINT_FORMAT, [content, *styles],
                            {"config": cfg.to_dict(), "state": state}, overwrite=overwrite)


def load_checkpoint(path: str | os.PathLike, content, styles: Sequence) -> tuple[dict, dict]:
    """Read a checkpoint made from the files ``content`` and ``styles``.

    Returns
    -------
    (the stored ``ImageStyleConfig.to_dict()``, the optimiser state for ``stylize_image(resume=...)``)

    Raises
    ------
    InputError
        Missing file; not loadable with ``weights_only=True`` (tampered, a pickled object, not a checkpoint);
        another format; made from different content or style files; an optimiser state without its
        iterate, best iterate, scale and step.
    """
    import torch

    data = read_checkpoint(path, CHECKPOINT_FORMAT, "image", [content, *styles],
                           fields={"config": dict, "state": dict}, files="content or style images")
    state = data["state"]
    if not (torch.is_tensor(state.get("x")) and torch.is_tensor(state.get("best"))
            and isinstance(state.get("scale"), int) and isinstance(state.get("step"), int)):
        raise InputError(f"{path}: damaged stylekit image checkpoint (optimiser state)")
    return data["config"], state
