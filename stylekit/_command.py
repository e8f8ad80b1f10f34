"""How a command runs one Job in the terminal: a progress bar, SIGTERM as Ctrl-C, and the closing line.

The run protocol itself (outputs, checkpoint, resume, settings) is the Job's (:mod:`stylekit._job`); this is
only what a terminal adds to it, shared by ``stylekit image``, ``stylekit audio`` and the coming commands.
"""
from __future__ import annotations

import signal
import sys
import time

import click

from ._job import Job
from .errors import StylizeInterrupted

__all__ = ["run_job", "sigterm_as_interrupt", "enable_fast_kernels", "command", "examples"]


def examples(*lines: str) -> str:
    """The epilog of a command's ``--help``: an "Examples" heading and one command per line, kept as written."""
    return "\n\n".join(["Examples:", *(f"  {line}" for line in lines)])    # rich-click: a paragraph a line


def command(name: str, *, examples: str, group: bool = False, **kw):
    """``click.command`` (or ``click.group``) with stylekit's ``--help``: rich-click's layout, the option headings
    of :data:`stylekit._options.GROUPS` in their order, and ``examples`` at the end."""
    from rich_click import RichCommand, RichGroup, RichOptionPanel

    from ._options import GROUPS
    make = click.group if group else click.command
    return make(name, cls=RichGroup if group else RichCommand, epilog=examples,
                panels=[RichOptionPanel(g) for g in GROUPS], context_settings={"help_option_names": ["-h", "--help"]},
                **kw)


def enable_fast_kernels() -> None:
    """Turn on the CPU convolution backend (:mod:`stylekit.features.cpu_backend`): the command line's default.
    Library users opt in, since its kept filter transforms cost memory they did not ask for."""
    from .features import cpu_backend
    cpu_backend.enable(True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def sigterm_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt, so a ``kill`` ends a run the way Ctrl-C does; returns the previous
    handler (restore it with :func:`signal.signal`)."""
    return signal.signal(signal.SIGTERM, _raise_interrupt)


class _Bar:
    """A tqdm bar made at the first step, so that errors found while setting up stay one clean line."""

    def __init__(self, job: Job, unit: str, quiet: bool) -> None:
        self.job, self.unit, self.quiet, self.bar = job, unit, quiet, None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        if self.bar is None:
            for line in self.job.notes():   # at the first step: a run that fails to start stays one error line
                click.echo(line, err=True)
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.job.total_steps(), unit=self.unit, dynamic_ncols=True, file=sys.stderr)
        self.bar.set_description(self.job.describe_step(p))
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in p.terms.items()}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_job(job: Job, *, quiet: bool = False, unit: str = "it") -> object:
    """Run ``job`` with a progress bar; on Ctrl-C or SIGTERM, say what was saved and exit with code 130.

    Returns the job's result. ``job.check()`` must have been called.
    """
    enable_fast_kernels()
    bar = _Bar(job, unit, quiet)
    previous = sigterm_as_interrupt()
    t0 = time.perf_counter()
    try:
        result = job.run(progress=bar)
    except StylizeInterrupted as e:
        bar.close()
        saved = (f"saved the best result so far to {job.output}" if e.result is not None
                 else "no result to save yet")
        click.echo(f"interrupted: {saved}; continue with --resume {job.checkpoint}", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    if not quiet:
        click.echo(f"wrote {job.output} ({job.describe_result(result)}, {time.perf_counter() - t0:.0f} s)", err=True)
    return result
