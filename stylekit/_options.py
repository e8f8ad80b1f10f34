"""Command-line options generated from the config dataclasses, so that each option is declared once.

A config field that the command line exposes is declared with :func:`option`, which keeps its help text, its
click type and how its text is parsed in the field's metadata. :func:`click_options` turns every such field
of one or more config classes into a click option, and :func:`build` turns the values the user gave back into
a config. Every option defaults to ``None`` on the command line ("not given"), so the config's own default
applies: the command line and the Python API cannot disagree, and a command that takes several configs
(``stylekit batch``) applies a shared option (``--seed``) to each config that has the field.

Each option is listed in ``--help`` under the heading of its field's ``group`` (:data:`GROUPS`, in that order),
rendered by rich-click. Nothing here imports torch: the config modules are plain Python, so ``stylekit --help``
stays fast.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from .errors import ConfigError

__all__ = ["option", "click_options", "build", "cli_fields", "path_fields", "map_paths", "help_text", "GROUPS",
           "parse_floats", "parse_layers", "format_layers", "parse_tile"]

_KEY = "stylekit"

#: The headings of ``--help``, in the order they are listed (a command shows those it has). Every option of
#: ``stylekit image``, ``audio``, ``video``, ``batch`` and ``settings`` is under one of them.
GROUPS = ("Input and output", "Strength", "Colour", "Quality and speed", "Spectrogram", "Video", "Device", "Resume",
          "Batch")


def option(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
           type: Any = None, parse: Callable[[str], Any] | None = None, show: Callable[[Any], str] | None = None,
           flag: str | tuple[str, ...] | None = None, is_flag: bool = False, group: str = "Quality and speed",
           nested: bool = False, cli: bool = True, metavar: str | None = None,
           path: bool | tuple[str, ...] = False, multiple: bool = False) -> Any:
    """A dataclass field that is also a command-line option.

    Parameters
    ----------
    help : the option's help text (the default is appended by :func:`click_options`).
    type : the click type (``int``, ``float``, a :class:`click.Choice`); default: text.
    parse : text -> field value, for fields that are not plain numbers or words (layer lists, tuples).
    show : field value -> the text shown as its default in ``--help`` (default ``str``).
    flag : the option's name (default ``--field-name``); ``is_flag`` makes it a switch that sets True.
    group : the heading of ``--help`` it is listed under (one of :data:`GROUPS` for the commands' options).
    nested : the field is itself a config whose fields are options (audio's ``spectrogram``).
    cli : False for fields the command line does not expose.
    path : the value names input files (a path, or a tuple of paths); a tuple of words lists the values that
        are not paths (``init``'s ``"content"``). An output records such a value as a file name only, unless
        asked for full paths, and the settings digest compares it as an absolute path (:mod:`stylekit._job`).
    multiple : the option is given once per value (``--style-mask A --style-mask B``) and the field holds their
        tuple; a value is taken whole (a path may hold a comma), and ``parse`` applies only to one text value
        (a manifest's column, a preset's string).
    """
    meta = {_KEY: {"help": help, "type": type, "parse": parse, "show": show, "flag": flag, "is_flag": is_flag,
                   "group": group, "nested": nested, "cli": cli, "metavar": metavar, "path": path,
                   "multiple": multiple}}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def cli_fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    """``[(field, default value), ...]`` of every command-line field of ``cls`` (nested configs flattened)."""
    out = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None or not meta["cli"]:
            continue
        value = getattr(defaults, f.name)
        if meta["nested"]:
            out += cli_fields(type(value))
        else:
            out.append((f, value))
    return out


def path_fields(cls) -> dict[str, tuple[str, ...]]:
    """``{field name: words that are not paths}`` of the top-level fields of ``cls`` whose values name input
    files (declared with ``option(path=...)``)."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is not None and meta.get("path"):
            out[f.name] = meta["path"] if isinstance(meta["path"], tuple) else ()
    return out


def map_paths(cls, data: dict, fn: Callable[[str], str]) -> dict:
    """``data`` (a ``to_dict()`` of a ``cls``) with ``fn`` applied to every path its path fields name (a value
    that is one of the field's words, such as ``init="content"``, is kept)."""
    out = dict(data)
    for name, words in path_fields(cls).items():
        v = out.get(name)
        if isinstance(v, str) and v not in words:
            out[name] = fn(v)
        elif isinstance(v, (list, tuple)):
            out[name] = [fn(p) if isinstance(p, str) and p not in words else p for p in v]
    return out


def _shown(meta: dict, value: Any) -> str:
    if meta["show"] is not None:
        return meta["show"](value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def click_options(*classes, only: Iterable[str] | None = None, exclude: Iterable[str] = (),
                  prefix: Mapping[type, str] | None = None) -> Callable:
    """A decorator adding one click option per command-line field of ``classes``.

    A field that several classes have becomes one option (its help says both defaults where they differ).
    ``only`` / ``exclude`` choose fields by name; ``prefix`` maps a class to text put before its fields' help
    (``{AudioStyleConfig: "Audio: "}``).
    """
    only = set(only) if only is not None else None
    exclude = set(exclude)
    seen: dict[str, list] = {}
    for cls in classes:
        for f, value in cli_fields(cls):
            if (only is None or f.name in only) and f.name not in exclude:
                seen.setdefault(f.name, []).append((cls, f, value))

    def decorate(func):
        for name, entries in reversed(list(seen.items())):
            func = _one_option(name, entries, prefix or {})(func)
        return func

    return decorate


def help_text(text: str, *, prefix: str = "", default: str | None = None) -> str:
    """The help of a generated option: ``prefix`` (a medium's label, ``"Audio: "``), the field's ``text`` exactly as
    declared (never re-cased), then ``[default: ...]`` unless ``default`` is None (a flag).

    The default is said here, once: the options are made with ``default=None`` ("not given") and click's own
    ``show_default`` off, so nothing else adds a second one. A declared text that states its own default, or a
    default shown as ``None`` (a field whose ``None`` means something needs ``show=``), is a declaration error.
    """
    if "[default" in text or "(default:" in text:
        raise ValueError(f"help {text!r} states a default; the generated option adds it")
    if default is None:
        return f"{prefix}{text}"
    if default in ("None", ""):
        raise ValueError(f"help {text!r}: the default shows as {default!r}; declare show= for it")
    return f"{prefix}{text} [default: {default}]"


def _one_option(name: str, entries: list, prefix: Mapping) -> Callable:
    from rich_click import RichOption    # rich-click lists options under their group's heading in --help

    cls, f, value = entries[0]
    meta = f.metadata[_KEY]
    shown = {_shown(e[1].metadata[_KEY], e[2]) for e in entries}
    if len(shown) == 1:
        default = shown.pop()
    else:
        default = ", ".join(f"{prefix.get(c, c.__name__).strip(': ').lower()} {_shown(g.metadata[_KEY], v)}"
                            for c, g, v in entries)
    decls = meta["flag"] if isinstance(meta["flag"], tuple) else (meta["flag"] or f"--{name.replace('_', '-')}",)
    kw: dict[str, Any] = {"default": None, "cls": RichOption, "panel": meta["group"], "show_default": False,
                          "help": help_text(meta["help"], prefix="" if len(entries) > 1 else prefix.get(cls, ""),
                                            default=None if meta["is_flag"] else default)}
    if meta["is_flag"]:
        kw.update(is_flag=True, flag_value=True)
    elif meta.get("multiple"):
        kw.update(multiple=True, metavar=meta["metavar"] or "VALUE")
        kw["default"] = ()
    else:
        kw["type"] = meta["type"]
        if meta["metavar"]:
            kw["metavar"] = meta["metavar"]
    return click.option(*decls, name, **kw)


def build(cls, values: Mapping[str, Any], base: Any = None, *, where: str = "") -> Any:
    """The config ``base`` (default ``cls()``) with the command-line ``values`` that were given (not None).

    Text values of fields with a ``parse`` function are parsed; names that are not fields of ``cls`` (or of its
    nested configs) are ignored, so one dict of options can build several configs.
    """
    config = base if base is not None else cls()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None or not meta["cli"]:
            continue
        if meta["nested"]:
            inner = getattr(config, f.name)
            new = build(type(inner), values, inner, where=where)
            if new is not inner:
                changes[f.name] = new
            continue
        v = values.get(f.name)
        if meta.get("multiple") and isinstance(v, (list, tuple)):
            v = tuple(v) or None         # given once per value; () when not given
        if v is None:
            continue
        if meta["parse"] is not None and isinstance(v, str):
            v = meta["parse"](v)
        changes[f.name] = v
    return dataclasses.replace(config, **changes) if changes else config


# --- parsers shared by the config modules ------------------------------------------------------------

def parse_floats(text: str, what: str = "value") -> tuple[float, ...]:
    """``"0.7,0.3"`` -> ``(0.7, 0.3)``."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def parse_ints(text: str, what: str = "value") -> tuple[int, ...]:
    """``"3,7,15"`` -> ``(3, 7, 15)``."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def parse_layers(text: str) -> dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` -> ``{"relu1_1": 1.0, "relu2_1": 0.5}`` (weight 1 when omitted)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, w = part.partition(":")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"bad layer weight in {part!r}; write layer or layer:weight") from None
    if not out:
        raise ConfigError(f"no layers in {text!r}")
    return out


def format_layers(layers: Mapping[str, float]) -> str:
    """The inverse of :func:`parse_layers`."""
    return ",".join(f"{k}:{w:g}" for k, w in layers.items())


def parse_tile(text: str) -> int | str:
    """``"auto"``, ``"off"`` or a number of pixels."""
    if text in ("auto", "off"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--tile must be auto, off or a number of pixels, got {text!r}") from None
