"""Atomic, non-clobbering output files.

Every file stylekit writes goes through :func:`atomic_write`: the data is written to a temporary file in the
destination folder and then renamed over the target with :func:`os.replace`, so a crash or Ctrl-C never
leaves a half-written output, and an existing file is only replaced when the caller says so.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import ConfigError

__all__ = ["atomic_write", "check_output_path"]


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False,
                      inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate an output path before any work is done.

    Raises :class:`ConfigError` when the folder is missing or not writable, when the file exists and
    ``overwrite`` is false, or when it is one of ``inputs``.
    """
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{out}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{out}: output folder {parent} is not writable")
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder, expected a file name")
    for p in inputs:
        try:
            if out.resolve() == Path(p).resolve():
                raise ConfigError(f"{out}: output path is the same as an input")
        except OSError:
            pass
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``.

    The temporary file keeps the target's suffix so that format-sniffing writers (PIL, soundfile) pick the
    right format. If ``write`` raises, the temporary file is removed and ``path`` is untouched.
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".part{out.suffix}", dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, out)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return out
