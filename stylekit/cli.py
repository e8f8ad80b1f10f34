"""The ``stylekit`` command line: a thin click group.

Commands parse options, build a config, call the library, and report. Every user-caused failure is a
:class:`~stylekit.errors.StylekitError` (or a click usage error) and ends in one line on stderr and exit
code 2; Ctrl-C ends with exit code 130 after the command has saved what it had.
"""
from __future__ import annotations

import sys

import click

from .errors import StylekitError

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stylekit")
def cli() -> None:
    """Neural style transfer for images and sound, and spectral autoencoders for musical notes."""


def _register() -> None:
    # Each sub-command lives beside the code it drives; importing them here keeps `stylekit --help` complete.
    from .commands import register
    register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one readable line and exit 2 on any user error, never a traceback."""
    try:
        rv = cli.main(args=argv, prog_name="stylekit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        msg = e.format_message().replace("\n", " ")
        if isinstance(e, click.UsageError) and e.ctx is not None:
            msg = f"{e.ctx.command_path}: {msg}"
        click.echo(f"error: {msg}", err=True)
        sys.exit(2)
    except StylekitError as e:
        click.echo(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)
