"""``stylekit serve``: the local web preview (:mod:`stylekit.serve`)."""
from __future__ import annotations

import click

from .._command import command, examples
from .._options import build, click_options
from .config import ServeConfig

__all__ = ["serve"]


@command("serve", examples=examples("stylekit serve", "stylekit serve --open --port 8000"))
@click_options(ServeConfig)
def serve(**values) -> None:
    """Start the web preview: paint a picture or a sound and watch it form, in your browser.

    Listens on 127.0.0.1:8765 (this machine only) until Ctrl-C; uploads and results live in a private
    temporary folder that is removed when the server ends. Download the results you want to keep.
    """
    from ..errors import ConfigError
    from .server import missing_extra
    from .server import serve as run_server

    config = build(ServeConfig, values)
    missing = missing_extra()
    if missing:
        raise ConfigError(missing)
    run_server(config, echo=lambda line: click.echo(line, err=True))
