"""Atomic, never-clobbering output files: the one place that decides what a run may write and replace.

Every file stylekit writes goes through :func:`atomic_write`: the data is written to a temporary file in the
destination folder, then moved to the target in one step, so a crash or Ctrl-C never leaves a half-written
output. The rules, for every command:

* a run replaces a file only when the user asked for it (``overwrite``), and only a regular file: a folder,
  a device node, a FIFO or a socket is never replaced;
* without ``overwrite`` the file is put in place with a hard link, which the filesystem refuses when the name
  exists, so of two runs racing to the same output exactly one wins and the other fails with a clear message
  (where a filesystem has no hard links, an exclusive create reserves the name first);
* an output is never one of the run's inputs (:func:`check_output_path`, before any work);
* temporary files carry the writing process's id, so those left by a killed process are removed by the next
  write of the same output.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import ConfigError

__all__ = ["atomic_write", "check_output_path"]

#: What the temporary file adds to the output's name: ``.NAME.PID.RANDOM.partSUFFIX``.
_TEMP_EXTRA = 24


def _refuse_non_regular(out: Path) -> None:
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError(f"{out}: symbolic link loop") from None
        raise
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{out}: is a folder, expected a file name")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{out}: exists and is not a regular file (a device, FIFO or socket); "
                          "stylekit never replaces one")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False,
                      inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate an output path before any work is done.

    Raises :class:`ConfigError` when the folder is missing or not writable, when the path exists and is not a
    regular file, when the file exists and ``overwrite`` is false, or when it is one of ``inputs`` (also
    through another name: a link).
    """
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{out}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{out}: output folder {parent} is not writable")
    _refuse_non_regular(out)
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(os.fsencode(out.name)) + _TEMP_EXTRA > name_max:
        raise ConfigError(f"{out}: file name too long for this filesystem (with the temporary file's "
                          f"{_TEMP_EXTRA} more characters, the limit is {name_max} bytes)")
    for p in inputs:
        if _same_file(out, Path(p)):
            raise ConfigError(f"{out}: output path is the same as an input")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(out: Path) -> None:
    """Remove temporaries of ``out`` left by processes that no longer run (killed during a write)."""
    pattern = re.compile(rf"^\.{re.escape(out.stem)}\.(\d+)\.[^.]+\.part{re.escape(out.suffix)}$")
    try:
        names = os.listdir(out.parent or ".")
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.unlink((out.parent or Path(".")) / name)
            except OSError:
                pass


def _place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``out``: replace it only with ``overwrite``; else never clobber."""
    if overwrite:
        _refuse_non_regular(out)
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)                     # fails if ``out`` exists, whoever created it meanwhile
    except FileExistsError:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # no hard links here (some network and FAT filesystems): reserve the name with an exclusive create
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise ConfigError(f"{out}: already exists (use --overwrite to replace it)") from None
        os.close(fd)
        os.replace(tmp, out)
        return
    tmp.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step (see the module notes).

    The temporary file keeps the target's suffix so that format-sniffing writers (PIL, soundfile) pick the
    right format. If anything fails (the writer, a full disk, the target appearing meanwhile), the temporary
    file is removed and ``path`` is untouched; an :class:`OSError` names ``path``, not the temporary file.
    """
    out = Path(path)
    _refuse_non_regular(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    _remove_stale_temporaries(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.{os.getpid()}.", suffix=f".part{out.suffix}",
                               dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        _place(tmp_path, out, overwrite)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(out)) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return out
