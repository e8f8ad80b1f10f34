"""What every engine of a batch shares: the result rows, the style targets of a group of items, and the run
of one item through its :class:`~stylekit._job.Job` (in a local worker, or in this process)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._job import jsonable
from ..errors import StylekitError, StylizeInterrupted
from .manifest import BatchItem, write_results

__all__ = ["one_line", "naming", "Results", "FINISHED", "target_key", "make_targets", "process", "finish", "seconds_of"]

#: The statuses of a finished item (the others: "pending", "interrupted").
FINISHED = ("done", "skipped", "error")
_FLUSH_SECONDS = 10.0


def one_line(e: BaseException) -> str:
    """An exception as one line: a user error's message, or the type and message of anything else."""
    text = " ".join(str(e).split())
    if isinstance(e, StylekitError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def naming(job, message: str) -> str:
    """``message`` about ``job``'s item, starting with its input file unless it names the input or a style
    already: every error row says which file it is about."""
    names = [str(job.content), *(str(s) for s in job.styles)]
    return message if any(n in message for n in names) else f"{job.content}: {message}"


class Results:
    """The rows of a batch, the user's callback, and the results manifest flushed every few seconds."""

    def __init__(self, items: Sequence[BatchItem], settings: dict[int, dict], path: Path | None,
                 on_result: Callable[[dict], None] | None) -> None:
        self.rows = [{"index": it.index, "input": str(it.input), "styles": [str(s) for s in it.styles],
                      "output": str(it.output), "status": "pending", "error": None, "seconds": None,
                      "attempts": 0, "settings": settings.get(it.index)} for it in items]
        self.path, self.on_result, self.last = path, on_result, time.monotonic()

    def set(self, index: int, **fields) -> None:
        self.rows[index].update(fields)
        if fields.get("status") in FINISHED:
            if self.on_result is not None:
                self.on_result(dict(self.rows[index]))
            if self.path is not None and time.monotonic() - self.last > _FLUSH_SECONDS:
                self.flush()

    def flush(self) -> None:
        if self.path is not None:
            write_results(self.rows, self.path)
            self.last = time.monotonic()


def target_key(job) -> tuple:
    """Jobs with equal keys share one style side: the same medium, style files and config."""
    import os
    return (job.medium, tuple(os.path.abspath(s) for s in job.styles),
            json.dumps(jsonable(job.config.to_dict()), sort_keys=True))


def make_targets(job, styles: Sequence | None = None, names: Sequence[str] | None = None) -> Any:
    """The style targets of ``job``'s group (:meth:`Job.style_targets`), from ``styles`` (local copies of the
    style files, on a Ray worker) or the job's own style files; errors name them by ``names`` (default: the
    job's style files)."""
    paths = [str(s) for s in (styles if styles is not None else job.styles)]
    names = [str(s) for s in (names if names is not None else job.styles)]
    try:
        return type(job).style_targets(paths, job.config, names)
    except StylekitError as e:
        text = str(e)
        for path, name in zip(paths, names):
            text = text.replace(path, name)
        raise type(e)(text) from None


def seconds_of(job, fallback: float) -> float:
    """The compute time recorded in ``job``'s output (what a rerun that skips it reports)."""
    try:
        return type(job).read_metadata(job.output).get("seconds", fallback)
    except Exception:  # noqa: BLE001 - the row then says what was measured here
        return fallback


def finish(job) -> None:
    """After ``job``'s output was written: a checkpoint under its name (of an interrupted run) is stale."""
    job.checkpoint.unlink(missing_ok=True)


def process(job, targets: Any) -> dict:
    """Run ``job`` against the group's ``targets`` (:meth:`Job.run`: the output, or on an interrupt the best
    result so far and a checkpoint). Returns the row fields; never raises for a problem with the input."""
    t0 = time.perf_counter()

    def took() -> float:
        return round(job.seconds_before + time.perf_counter() - t0, 3)

    try:
        job.run(targets=targets)
    except StylizeInterrupted as e:
        saved = e.result is not None
        return {"status": "interrupted" if saved else "pending", "error": None, "seconds": took() if saved else None}
    except KeyboardInterrupt:  # before the first step: nothing to save
        return {"status": "pending", "error": None, "seconds": None}
    except Exception as e:  # noqa: BLE001 - isolation: one bad input never stops the batch
        if isinstance(e.__context__, StylizeInterrupted):
            return {"status": "pending", "error": f"interrupted; the result so far was not saved ({one_line(e)})",
                    "seconds": took()}
        return {"status": "error", "error": naming(job, one_line(e)), "seconds": took()}
    finish(job)
    return {"status": "done", "error": None, "seconds": seconds_of(job, took())}
