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

from .errors import InputError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "checkpoint_path"]

CHECKPOINT_FORMAT = "stylekit-image-checkpoint/1"


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where the checkpoint of ``output`` goes: ``OUTPUT_STEM.ckpt.pt`` beside it (``stylekit image``,
    ``stylekit audio`` and ``stylekit batch`` all name it so)."""
    out = Path(output)
    return out.with_name(f"{out.stem}.ckpt.pt")


def _digests(content, styles: Sequence) -> list[str]:
    from .features.weights import sha256_file
    return [sha256_file(p) for p in (content, *styles)]


def save_checkpoint(path: str | os.PathLike, cfg, content, styles: Sequence, state: dict, *,
                    overwrite: bool) -> Path:
    """Write the checkpoint of a run of ``cfg`` (an ImageStyleConfig) on the files ``content`` and ``styles``
    atomically (temporary file, then rename)."""
    import torch

    from ._io import atomic_write
    data = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "inputs": _digests(content, styles),
            "state": state}
    return atomic_write(path, lambda tmp: torch.save(data, tmp), overwrite=overwrite)


def load_checkpoint(path: str | os.PathLike, content, styles: Sequence) -> tuple[dict, dict]:
    """Read a checkpoint made from the files ``content`` and ``styles``.

    Returns
    -------
    (the stored ``ImageStyleConfig.to_dict()``, the optimiser state for ``stylize_image(resume=...)``)

    Raises
    ------
    InputError
        Missing file; not loadable with ``weights_only=True`` (tampered, a pickled object, not a checkpoint);
        another format; made from different content or style files.
    """
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError,
            KeyError, IndexError) as e:
        raise InputError(f"{path}: not a stylekit checkpoint, or tampered with "
                         f"({type(e).__name__}); it was not loaded") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a stylekit image checkpoint")
    if not {"inputs", "config", "state"} <= set(data):
        raise InputError(f"{path}: damaged stylekit image checkpoint (missing fields)")
    if data["inputs"] != _digests(content, styles):
        raise InputError(f"{path}: this checkpoint was made from different content or style images")
    return data["config"], data["state"]
