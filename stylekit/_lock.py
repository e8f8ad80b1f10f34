"""Lock files: one run at a time per output, and one batch at a time per output folder.

Two runs writing one output would both do the work, and the one that ends last would silently replace the
other's file, ``--overwrite`` or not; two batches writing one folder would do all the work twice, and the
results manifest of the one that ends last would win. So a run holds ``.OUTPUT_NAME.stylekit-lock`` beside its
output, and a batch holds ``OUT_DIR/.stylekit-batch.lock``, each holding the pid.

A lock is taken with an exclusive create (``O_CREAT | O_EXCL``), so of two processes starting together exactly
one gets it; the other is refused with one line naming the file and the holder's pid. A lock left by a process
that no longer runs (killed with ``kill -9``, a crashed machine) is stale and taken over; the lock is removed
when the run ends, however it ends. (``fcntl.flock`` would free the lock with the process by itself, but it is
advisory only on some network filesystems and absent on Windows; a pid file works everywhere the output does.)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

__all__ = ["LOCK_NAME", "batch_lock", "output_lock", "output_lock_path"]

LOCK_NAME = ".stylekit-batch.lock"


def _holder(lock: Path) -> int | None:
    """The pid in a lock file, or None when it holds none (being written, or damaged)."""
    try:
        text = lock.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's live process
        return True
    return True


def _create(lock: Path) -> bool:
    """Create the lock holding this pid; False when it exists."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError:
        lock.unlink(missing_ok=True)    # a full disk: no lock left behind
        raise
    return True


def _take_over(lock: Path, stale: int) -> None:
    """Remove a stale lock of the dead process ``stale``: renamed aside first, so that of two batches taking it
    over at once only one removes it; a lock that turns out to be another's meanwhile is put back."""
    aside = lock.with_name(f"{lock.name}.{os.getpid()}.stale")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if _holder(aside) not in (stale, None):
        with contextlib.suppress(OSError):
            os.link(aside, lock)        # someone's fresh lock: back in place (unless a third took the name)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def _held(lock: Path, busy: str) -> Iterator[Path]:
    """Hold ``lock`` for the block; ConfigError ``busy.format(pid=...)`` when a running process holds it."""
    import time

    for _ in range(50):
        try:
            if _create(lock):
                break
        except OSError as e:
            raise ConfigError(f"{lock.parent}: cannot create the lock file {lock.name} ({e.strerror})") from None
        pid = _holder(lock)
        if pid is not None and _alive(pid) and pid != os.getpid():
            raise ConfigError(busy.format(pid=pid))
        if pid is None and _age(lock) < 5.0:
            time.sleep(0.1)             # a process that just created it is writing its pid
            continue
        _take_over(lock, pid)           # its process no longer runs (or it is this process's own)
    else:
        raise ConfigError(f"{lock}: cannot take the lock (another run is starting)")
    try:
        yield lock
    finally:
        if _holder(lock) == os.getpid():
            lock.unlink(missing_ok=True)


def batch_lock(out_dir: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Hold the lock of the output folder ``out_dir`` (which exists) for the block.

    Raises ConfigError when a running batch holds it.
    """
    return _held(Path(out_dir) / LOCK_NAME,
                 f"{out_dir}: another batch (process {{pid}}) is writing this output folder; wait for it to end, "
                 "or use another folder")


def output_lock_path(output: str | os.PathLike) -> Path:
    """The lock file of a run writing ``output``: ``.NAME.stylekit-lock`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.stylekit-lock")


def output_lock(output: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Hold the lock of the run writing ``output`` (whose folder exists) for the block.

    Raises ConfigError when another running process is writing the same output.
    """
    return _held(output_lock_path(output),
                 f"{output}: another stylekit run (process {{pid}}) is writing this output; wait for it to end, "
                 "or choose another output")


def _age(lock: Path) -> float:
    import time
    try:
        return time.time() - lock.stat().st_mtime
    except OSError:
        return 0.0
