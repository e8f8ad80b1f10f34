"""What every run checkpoint of stylekit shares (``stylekit image``, ``audio`` and ``batch``).

A checkpoint is a ``torch.save``d plain dict with a ``"format"`` tag and ``"inputs"``, the sha256 of each input
file, beside the command's own fields. It is written atomically and read with ``torch.load(weights_only=True)``:
nothing in it is a pickled object, so a tampered file, a foreign pickle or another command's checkpoint is
refused with :class:`~stylekit.errors.InputError` and never run.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError

__all__ = ["checkpoint_path", "input_digests", "write_checkpoint", "read_checkpoint"]


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where the checkpoint of ``output`` goes: ``OUTPUT_STEM.ckpt.pt`` beside it (every command names it so)."""
    out = Path(output)
    return out.with_name(f"{out.stem}.ckpt.pt")


def input_digests(paths: Iterable[str | os.PathLike]) -> list[str]:
    """sha256 (hex) of each file."""
    from .features.weights import sha256_file
    return [sha256_file(p) for p in paths]


def write_checkpoint(path: str | os.PathLike, fmt: str, inputs: Sequence[str | os.PathLike], fields: dict, *,
                     overwrite: bool) -> Path:
    """Save ``{"format": fmt, "inputs": digests of inputs, **fields}`` atomically (temporary file, then rename)."""
    import torch

    from ._io import atomic_write
    data = {"format": fmt, "inputs": input_digests(inputs), **fields}
    return atomic_write(path, lambda tmp: torch.save(data, tmp), overwrite=overwrite)


def read_checkpoint(path: str | os.PathLike, fmt: str, what: str, inputs: Sequence[str | os.PathLike], *,
                    fields: dict[str, type], files: str, check_inputs: bool = True) -> dict:
    """Load a checkpoint of format ``fmt`` made from ``inputs``; ``fields`` maps each field it must have to
    its type. ``what`` names the command's checkpoints and ``files`` its inputs in the messages.

    Raises
    ------
    InputError
        Missing file; not loadable with ``weights_only=True`` (tampered, a pickled object, not a checkpoint);
        another format; a missing field; made from other input files.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError,
            KeyError, IndexError) as e:
        raise InputError(f"{p}: not a stylekit checkpoint, or tampered with ({type(e).__name__}); "
                         "it was not loaded") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise InputError(f"{p}: not a stylekit {what} checkpoint")
    if not all(isinstance(data.get(k), t) for k, t in {"inputs": list, **fields}.items()):
        raise InputError(f"{p}: damaged stylekit {what} checkpoint (missing fields)")
    if check_inputs and data["inputs"] != input_digests(inputs):
        raise InputError(f"{p}: this checkpoint was made from different {files}")
    return data
