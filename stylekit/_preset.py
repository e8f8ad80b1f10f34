"""Presets: ``--config FILE.toml`` fills a command's options from a TOML file, and ``stylekit settings OUTPUT``
writes the settings embedded in an output as such a file, so that a run can be replayed.

A preset is a TOML table of ``option = value``, keyed by the option's long name (``style-weight``, or
``style_weight``). Values are TOML's own (``5.0``, ``true``, ``[0.7, 0.3]``) or the text the option takes on the
command line (``"relu4_2:1"``); a table named after a command (``[image]``, ``[audio]``, ...) applies to that
command only, so one file can hold presets for several. The values become click's ``default_map``: an option
given on the command line still wins, and the command parses a preset's value exactly as it parses typed text.

Plain Python (no torch), so ``--config`` and ``--help`` stay fast.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich_click import RichOption

from ._command import command, examples
from ._options import _KEY
from .errors import ConfigError, InputError

__all__ = ["config_option", "read_preset", "preset_defaults", "preset_from_metadata", "format_preset", "settings"]

#: The commands a preset's tables may be named after.
SECTIONS = ("image", "audio", "video", "batch")


def read_preset(path: str | os.PathLike) -> dict:
    """The TOML table in ``path``; :class:`InputError` (one line, naming the file) when it is not one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:                                   # tomllib is tomli, adopted by the standard library in 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such preset file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a preset file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not a TOML preset ({e})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a TOML preset (not UTF-8 text)") from None


def _key(name: str) -> str:
    return name.lstrip("-").replace("-", "_")


def _text(value: Any) -> str:
    """A TOML value as the text its option takes on the command line (floats exactly, by ``repr``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def preset_defaults(command: click.Command, data: Mapping, *, source: str) -> dict:
    """click's ``default_map`` for ``command`` from the preset ``data`` read from ``source``: the top-level
    options, then those of the table named after the command. Raises :class:`ConfigError` naming the first key
    that is no option of the command, or a value of the wrong kind."""
    params = {}
    for p in command.params:
        if isinstance(p, click.Option) and p.name != "config":
            params.update({_key(o): p for o in p.opts if o.startswith("--")})
            params[p.name] = p
    name = command.name
    merged = {k: v for k, v in data.items() if not (k in SECTIONS and isinstance(v, Mapping))}
    section = data.get(name)
    if isinstance(section, Mapping):
        merged.update(section)
    out: dict[str, Any] = {}
    for k, v in merged.items():
        p = params.get(_key(str(k)))
        if p is None:
            raise ConfigError(f"{source}: {k!r} is not an option of stylekit {name}")
        if p.is_flag:
            if not isinstance(v, bool):
                raise ConfigError(f"{source}: {k} is a switch; write {k} = true or false")
            out[p.name] = v
        elif p.multiple:
            out[p.name] = [_text(x) for x in (v if isinstance(v, list) else [v])]
        else:
            out[p.name] = _text(v)
    return out


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    defaults = preset_defaults(ctx.command, read_preset(value), source=value)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def config_option(f):
    """The ``--config FILE.toml`` option: a preset of this command's options (read before the others)."""
    return click.option("--config", type=click.Path(dir_okay=False), default=None, is_eager=True,
                        expose_value=False, callback=_load_config, cls=RichOption, panel="Input and output",
                        help="Read options from a TOML preset (option = value; `stylekit settings OUTPUT -o "
                             "FILE.toml` writes one from an output). Options typed here win.")(f)


# --- from an output's settings to a preset ------------------------------------------------------------

def _cli_values(cls, data: Mapping) -> list[tuple[dataclasses.Field, Any, Any]]:
    """``[(field, value, default)]`` of every field of ``cls`` in ``data`` (its ``to_dict()`` as JSON, nested
    configs flattened); the values as recorded, unvalidated: the files they name need not be here."""
    from ._job import jsonable
    out = []
    defaults = jsonable(cls().to_dict()) if hasattr(cls, "to_dict") else jsonable(dataclasses.asdict(cls()))
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None or f.name not in data:
            continue
        value = data[f.name]
        if meta["nested"]:
            out += _cli_values(type(getattr(cls(), f.name)), value if isinstance(value, Mapping) else {})
        else:
            out.append((f, value, defaults.get(f.name)))
    return out


def _option_name(f: dataclasses.Field) -> str:
    flag = f.metadata[_KEY]["flag"]
    names = flag if isinstance(flag, tuple) else (flag or f"--{f.name.replace('_', '-')}",)
    return next(n for n in names if n.startswith("--"))[2:]


def _toml_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _text(value)          # layer weights: the option's own "layer:weight,..." text
    return list(value) if isinstance(value, tuple) else value


def preset_from_metadata(meta: Mapping, medium: str) -> tuple[dict, list[str]]:
    """``(options, notes)``: the options (``{long name: TOML value}``) that replay the run whose settings
    ``meta`` an output of ``medium`` embeds, and a note for each setting the command line cannot give."""
    from .batch.media import MEDIA
    m = MEDIA[medium]
    if not isinstance(meta, Mapping) or not isinstance(meta.get("config"), Mapping):
        raise InputError("no stylekit settings in it")
    names = {f.name for f in dataclasses.fields(m.config)}
    unknown = sorted(set(meta["config"]) - names)
    if unknown:
        raise InputError(f"its settings are not those of a stylekit {medium} run (unknown {', '.join(unknown)})")
    options: dict[str, Any] = {}
    notes: list[str] = []
    for f, value, default in _cli_values(m.config, meta["config"]):
        cli = f.metadata[_KEY]["cli"]
        if cli and value is not None:
            options[_option_name(f)] = _toml_value(value)
        elif value != default:
            why = "is not a command-line option" if not cli else "cannot be written in a preset"
            notes.append(f"{f.name} = {value!r} {why}; a replay uses {default!r}")
    own: dict[str, Any] = {}
    for f in dataclasses.fields(m.options):
        if f.metadata.get(_KEY) is None:
            continue
        name = _option_name(f)
        if _key(name) in meta or f.name in meta:          # the output's own settings (bit depth, float WAV)
            own[name] = meta.get(_key(name), meta.get(f.name))
    if own:     # options of the medium's own command only: in its table, so that batch --config skips them
        options[medium] = own
    return options, notes


def format_preset(options: Mapping, *, header: list[str]) -> str:
    """The TOML text of a preset: ``header`` lines as comments, then one ``option = value`` per line."""
    import tomli_w
    return "".join(f"# {line}\n" for line in header) + tomli_w.dumps(dict(options))


def _medium_of_output(path: Path) -> str:
    from .batch.media import media_of
    return "video" if path.is_dir() else media_of(path)


@command("settings", examples=examples("stylekit settings out.png",
                                        "stylekit settings out.png -o preset.toml",
                                        "stylekit image photo.jpg style.jpg -o again.png --config preset.toml"))
@click.argument("output", type=click.Path(exists=True))
@click.option("-o", "--preset", type=click.Path(dir_okay=False), default=None, cls=RichOption,
              panel="Input and output", help="Write the preset to this .toml file instead of printing it.")
@click.option("--overwrite", is_flag=True, cls=RichOption, panel="Input and output",
              help="Replace an existing preset file.")
def settings(output: str, preset: str | None, overwrite: bool) -> None:
    """Print the settings embedded in OUTPUT (an image, sound or video stylekit wrote) as a TOML preset, which
    `--config` replays: the same options give the same settings digest."""
    from ._io import atomic_write, check_output_path
    from .batch.media import MEDIA

    path = Path(output)
    medium = _medium_of_output(path)
    try:
        meta = MEDIA[medium].job.read_metadata(path)
    except Exception:  # noqa: BLE001 - any file the reader cannot parse has no settings
        meta = {}
    if not meta:
        raise InputError(f"{path}: no stylekit settings in it (was it written by stylekit {medium}?)")
    try:
        options, notes = preset_from_metadata(meta, medium)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    styles = " ".join(meta.get("styles") or ["STYLE"])
    header = [f"stylekit {meta.get('stylekit', '?')} {medium} settings of {path.name} "
              f"(settings_sha256 {str(meta.get('settings_sha256', '?'))[:12]})",
              f"replay: stylekit {medium} {meta.get('content', 'CONTENT')} {styles} -o OUTPUT "
              f"--config {Path(preset).name if preset else 'PRESET.toml'}",
              *notes]
    text = format_preset(options, header=header)
    for line in notes:
        click.echo(f"note: {line}", err=True)
    if preset is None:
        click.echo(text, nl=False)
        return
    if Path(preset).suffix.lower() != ".toml":
        raise ConfigError(f"{preset}: the preset must be a .toml file")
    check_output_path(preset, overwrite=overwrite, inputs=[path])
    atomic_write(preset, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)
    click.echo(f"wrote {preset}", err=True)
