"""What every run checkpoint of stylekit shares (``stylekit image``, ``audio`` and ``batch``), and the one loader
of ``.pt`` files (checkpoints, spectral models, latents).

A checkpoint is a ``torch.save``d plain dict with a ``"format"`` tag, ``"inputs"`` (the sha256 of each input
file) and ``"digest"`` beside the command's own fields. It is written atomically and read by
:func:`load_torch_file`, which bounds the file before anything is unpacked and loads it with
``torch.load(weights_only=True)``: nothing in it is a pickled object, so a foreign pickle or another command's
checkpoint is refused with :class:`~stylekit.errors.InputError` and never run.

What the digest is for
----------------------
``"digest"`` is the sha256 of a canonical serialization of every other stored field (:func:`tree_digest`). It
detects **corruption**: a flipped byte, a truncated copy, a field edited by hand without recomputing it. It is
**not** a tamper check: anyone can recompute it, so a file from someone you do not trust is no safer for
having a matching digest. What protects against a hostile file is the loader itself: the size bound, the
``weights_only`` unpickler, and the validation of every loaded field as the command-line option it mirrors.
"""
from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["checkpoint_path", "input_digests", "write_checkpoint", "read_checkpoint", "load_torch_file",
           "tree_digest", "check_tensors", "UnloadableFile", "ZIP_MARGIN"]

#: Bytes that the entries of a ``torch.save`` archive may add up to beyond the file's own size (the archive's
#: headers make the file larger than its entries, so a real file never needs this; it only absorbs rounding).
ZIP_MARGIN = 4096


class UnloadableFile(InputError):
    """A ``.pt`` file that :func:`load_torch_file` refused; the message says why (without the file name)."""


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where the checkpoint of ``output`` goes: ``OUTPUT_STEM.ckpt.pt`` beside it (every command names it so)."""
    out = Path(output)
    return out.with_name(f"{out.stem}.ckpt.pt")


def input_digests(paths: Iterable[str | os.PathLike]) -> list[str]:
    """sha256 (hex) of each file."""
    from .features.weights import sha256_file
    return [sha256_file(p) for p in paths]


def _check_archive(f, size: int) -> None:
    """Refuse, before unpacking, a file that is not a ``torch.save`` zip archive or whose entries would inflate
    past the file's own size: torch.save stores its entries uncompressed, so a compressed entry, or entries
    that add up to more than the file, can only be a file made to exhaust memory."""
    try:
        with zipfile.ZipFile(f) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise UnloadableFile(f"not a torch.save archive ({type(e).__name__})") from None
    if not entries:
        raise UnloadableFile("not a torch.save archive (empty)")
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED or e.file_size != e.compress_size:
            raise UnloadableFile(f"entry {e.filename!r} is compressed; torch.save never compresses, so the file "
                                 "was not made by it and is not unpacked")
    total = sum(e.file_size for e in entries)
    if total > size + ZIP_MARGIN:
        raise UnloadableFile(f"its entries claim {total} bytes, more than the file's {size} bytes; not unpacked")


def load_torch_file(path: str | os.PathLike) -> Any:
    """Load a ``.pt`` file safely: a regular file, a ``torch.save`` zip archive whose entries are stored and
    add up to no more than the file (checked with :mod:`zipfile` before anything is unpacked), read with
    ``torch.load(weights_only=True)`` on the CPU, once, from one open file.

    Raises
    ------
    UnloadableFile
        with a reason (the caller adds the file name and what it expected): missing, not a regular file, not a
        torch.save archive (a raw pickle, a legacy file, junk), compressed or oversized entries, or refused by
        the ``weights_only`` unpickler.
    """
    import pickle
    import warnings

    import torch

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UnloadableFile("no such file") from None
    except OSError as e:
        raise UnloadableFile(e.strerror or type(e).__name__) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnloadableFile("not a regular file")
    with open(p, "rb") as f:
        _check_archive(f, st.st_size)
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # torch's own warnings would print before our error line
                return torch.load(f, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError,
                KeyError, IndexError, MemoryError, RecursionError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise UnloadableFile(f"refused by the safe loader ({first})") from None


def tree_digest(obj: Any) -> str:
    """sha256 over a canonical serialization of a nested dict/list of tensors, numbers, strings and None: dict
    keys sorted, every tensor as dtype, shape and its bytes (contiguous, on the CPU)."""
    h = hashlib.sha256()

    def walk(o) -> None:
        import torch
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T:{t.dtype}:{tuple(t.shape)}:".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            h.update(f"D{len(o)}:".encode())
            for k in sorted(o, key=repr):
                h.update(f"{k!r}=".encode())
                walk(o[k])
        elif isinstance(o, (list, tuple)):
            h.update(f"L{len(o)}:".encode())
            for v in o:
                walk(v)
        else:
            h.update(f"V:{o!r};".encode())
    walk(obj)
    return h.hexdigest()


def check_tensors(obj: Any, *, max_elements: int = 1 << 31) -> str | None:
    """What is wrong with the tensors of a loaded file, or None: every floating tensor finite, no tensor larger
    than its own storage (a view made to expand when it is copied), none over ``max_elements``."""
    import torch

    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, torch.Tensor):
            n = o.numel()
            if n > max_elements:
                return f"a tensor of {n} elements (limit {max_elements})"
            dims = list(zip(o.shape, o.stride()))
            end = o.storage_offset() + 1 + sum((s - 1) * abs(d) for s, d in dims)
            stored = o.untyped_storage().nbytes() // max(1, o.element_size())
            if n > 1 and (any(d == 0 and s > 1 for s, d in dims) or end > stored):
                return "a tensor view larger than its stored data"
            if o.is_floating_point() and n and not bool(torch.isfinite(o).all()):
                return "NaN or infinite values"
    return None


def write_checkpoint(path: str | os.PathLike, fmt: str, inputs: Sequence[str | os.PathLike], fields: dict, *,
                     overwrite: bool) -> Path:
    """Save ``{"format": fmt, "inputs": digests of inputs, **fields, "digest": ...}`` atomically (temporary file,
    then rename); the digest covers every other field (see the module notes)."""
    import torch

    from ._io import atomic_write
    data = {"format": fmt, "inputs": input_digests(inputs), **fields}
    data["digest"] = tree_digest(data)
    return atomic_write(path, lambda tmp: torch.save(data, tmp), overwrite=overwrite)


def read_checkpoint(path: str | os.PathLike, fmt: str, what: str, inputs: Sequence[str | os.PathLike], *,
                    fields: dict[str, type], files: str, check_inputs: bool = True) -> dict:
    """Load a checkpoint of format ``fmt`` made from ``inputs``; ``fields`` maps each field it must have to
    its type. ``what`` names the command's checkpoints and ``files`` its inputs in the messages.

    Raises
    ------
    InputError
        Missing file; refused by :func:`load_torch_file` (not a torch.save archive, oversized, a pickled
        object); another format; a missing field; a digest that does not match (corrupt); NaN or oversized
        tensors; made from other input files.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        data = load_torch_file(p)
    except UnloadableFile as e:
        raise InputError(f"{p}: not a stylekit checkpoint, or tampered with ({e}); it was not loaded") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise InputError(f"{p}: not a stylekit {what} checkpoint")
    if "digest" not in data and all(isinstance(data.get(k), t) for k, t in {"inputs": list, **fields}.items()):
        raise InputError(f"{p}: a stylekit {what} checkpoint from an older stylekit (without a digest); it cannot "
                         "be resumed by this version: run again without --resume")
    if not all(isinstance(data.get(k), t) for k, t in {"inputs": list, "digest": str, **fields}.items()):
        raise InputError(f"{p}: damaged stylekit {what} checkpoint (missing fields)")
    try:
        ok = tree_digest({k: v for k, v in data.items() if k != "digest"}) == data["digest"]
    except (TypeError, ValueError, RuntimeError, RecursionError):
        ok = False
    if not ok:
        raise InputError(f"{p}: damaged stylekit {what} checkpoint (its digest does not match: corrupt or "
                         "edited)")
    bad = check_tensors(data)
    if bad is not None:
        raise InputError(f"{p}: damaged stylekit {what} checkpoint ({bad})")
    if check_inputs and data["inputs"] != input_digests(inputs):
        raise InputError(f"{p}: this checkpoint was made from different {files}")
    return data
