"""The ``stylekit`` command line: a thin click group that sets up the runtime and registers the commands.

Commands parse options, build a config, run the medium's Job, and report. Every user-caused failure is a
:class:`~stylekit.errors.StylekitError` (or a click usage error) and ends in one line on stderr and exit
code 2, as does an :class:`OSError` that names a file (permission denied, no such folder, disk full); Ctrl-C
ends with exit code 130 after the command has saved what it had.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

import click
from rich_click import RichGroup

from ._allocator import keep_freed_memory
from ._command import examples, sigterm_as_interrupt
from .errors import StylekitError

__all__ = ["main", "cli", "COMMANDS"]

# (module, attribute) of each sub-command; a module that is missing is skipped so partial installs still work.
COMMANDS = [
    ("stylekit.image.cli", "image"),
    ("stylekit.audio.cli", "audio"),
    ("stylekit.video.cli", "video"),
    ("stylekit.spectral.cli", "spectral"),
    ("stylekit.batch.cli", "batch"),
    ("stylekit.serve.cli", "serve"),
    ("stylekit._preset", "settings"),
]


def setup_runtime() -> None:
    """What the command line sets up for its own process, before torch is imported.

    OpenMP threads that spin after each parallel region take the cores NNPACK's own thread pool needs for the
    Winograd convolutions (:mod:`stylekit.features.cpu_backend`); passive waiting makes a CPU iteration
    faster and costs the other kernels nothing measurable (docs/benchmarks.md). A value the user set wins.
    Freed activation memory is kept in the process (:mod:`stylekit._allocator`).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()


class _StylekitGroup(RichGroup):
    """A click group whose ``main`` turns every user error into one line on stderr and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # SIGTERM ends a run as Ctrl-C does, from the first instant (a run installs its own handler later).
        main_thread = threading.current_thread() is threading.main_thread()
        previous = sigterm_as_interrupt() if self is cli and main_thread else None
        try:
            # The sub-commands import torch (seconds); inside this try, a Ctrl-C during that import ends like
            # any other interrupt instead of with a traceback.
            if self is cli:
                setup_runtime()
                _register()
            rv = super().main(args=args, prog_name=prog_name or "stylekit", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as e:
            msg = " ".join(e.format_message().split())
            if isinstance(e, click.UsageError) and e.ctx is not None:
                msg = f"{e.ctx.command_path}: {msg}"
            click.echo(f"error: {msg}", err=True)
            sys.exit(2)
        except StylekitError as e:
            click.echo(f"error: {' '.join(str(e).split()) or type(e).__name__}", err=True)
            sys.exit(2)
        except OSError as e:
            # A file the system refused (permissions, a folder that cannot be made, a full disk) is the user's
            # environment, not a bug: one line naming the file. An OSError without a file keeps its traceback.
            if e.filename is None:
                raise
            why = e.strerror or type(e).__name__
            click.echo(f"error: {e.filename}: {why}", err=True)
            sys.exit(2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_StylekitGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=examples("stylekit image photo.jpg painting.jpg -o out.png",
                             "stylekit audio voice.wav organ.wav -o voice_organ.wav",
                             "stylekit batch photos/ --style painting.jpg -o styled/",
                             "stylekit settings out.png -o preset.toml",
                             "stylekit COMMAND --help"))
@click.version_option(package_name="stylekit")
def cli() -> None:
    """Neural style transfer for images, sound and video, and spectral autoencoders for musical notes.

    Every command lists its options under headings and ends its --help with examples.
    """


def _register() -> None:
    """Add the sub-commands (once). Each lives in its medium's package; ``cli.main`` calls this first, so
    ``stylekit --help`` is complete while ``import stylekit.cli`` stays light (the command modules import no
    torch until a command runs)."""
    if cli.commands:
        return

    # Some library imports (torch's among them) catch every exception while probing optional modules, and a
    # Ctrl-C landing there is swallowed: the run then goes on. SIGINT and SIGTERM are held until the imports
    # are done; one that came in meanwhile is delivered right after, inside the CLI's error handling.
    held = {signal.SIGINT, signal.SIGTERM}
    mask = getattr(signal, "pthread_sigmask", None)       # not on Windows
    old = mask(signal.SIG_BLOCK, held) if mask else None
    try:
        for mod, attr in COMMANDS:
            try:
                module = importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name == mod:
                    continue
                raise
            cli.add_command(getattr(module, attr))
    finally:
        if mask:
            mask(signal.SIG_SETMASK, old)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``stylekit``).

    Examples
    --------
    >>> try:
    ...     main(["--version"])
    ... except SystemExit as e:                      # click ends the process with the command's exit code
    ...     print("exit", e.code)
    stylekit, version 0.1.0
    exit 0
    """
    cli.main(args=argv)
