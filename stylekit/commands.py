"""Which sub-commands the ``stylekit`` group has.

Each command module defines a click command or group next to the library code it drives and is imported
only here, so `import stylekit` stays light.
"""
from __future__ import annotations

import importlib

import click

# (module, attribute) of each sub-command; a module that is missing is skipped so partial installs still work.
COMMANDS = [
    ("stylekit.image_cli", "image"),
    ("stylekit.audio.cli", "audio"),
    ("stylekit.spectral.cli", "spectral"),
    ("stylekit.batch.cli", "batch"),
]


def register(group: click.Group) -> None:
    for mod, attr in COMMANDS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        group.add_command(getattr(module, attr))
