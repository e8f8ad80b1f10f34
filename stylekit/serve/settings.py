"""The page's controls, made from the config fields, and the form values turned back into configs.

A control is a field of :class:`~stylekit.image.config.ImageStyleConfig` or
:class:`~stylekit.audio.config.AudioStyleConfig`, declared once with :func:`stylekit._options.option`: its help
text, default and click type are read from the field, and a value is parsed by that click type and the
field's ``parse`` function, exactly as the command line parses it. Plain Python (no torch).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import click

from .._options import _KEY, _shown, build
from ..errors import ConfigError

__all__ = ["CONTROLS", "MEDIA", "controls", "parse_settings", "with_masks"]

#: The fields each medium's page shows, in order. A field whose value is a path (an init image, a weights file)
#: is left out: no path typed into the page reaches the filesystem. Masks are uploads (:func:`with_masks`).
CONTROLS: dict[str, tuple[str, ...]] = {
    "image": ("size", "iterations", "coarse_iterations", "scales", "style_weight", "content_weight", "tv_weight",
              "style_blend", "style_scale", "preserve_color", "style_loss", "mask_resize", "init", "optimizer", "seed"),
    "audio": ("steps", "style_weight", "content_weight", "band_weight", "envelope_weight", "rhythm_weight",
              "style_blend", "init", "optimizer", "seed"),
}
MEDIA = tuple(CONTROLS)
#: Choices the page narrows: ``init`` on the command line also takes an image path.
_CHOICES = {("image", "init"): ("content", "noise")}


def _config_class(medium: str):
    if medium == "image":
        from ..image.config import ImageStyleConfig
        return ImageStyleConfig
    from ..audio.config import AudioStyleConfig
    return AudioStyleConfig


def _fields(medium: str) -> dict[str, tuple[dataclasses.Field, Any]]:
    from .._options import cli_fields
    return {f.name: (f, v) for f, v in cli_fields(_config_class(medium))}


def _click_type(medium: str, name: str, meta: dict) -> click.ParamType:
    choices = _CHOICES.get((medium, name))
    if choices is not None:
        return click.Choice(choices)
    return click.types.convert_type(meta["type"]) if meta["type"] is not None else click.STRING


def controls(medium: str) -> list[dict]:
    """The controls of ``medium``'s form: ``name``, ``label``, ``help``, ``default`` (as ``--help`` shows it),
    ``kind`` (``int``, ``float``, ``choice`` or ``text``) and ``choices``.

    Examples
    --------
    >>> names = [c["name"] for c in controls("image")]
    >>> "style_weight" in names and "size" in names
    True
    """
    out = []
    fields = _fields(medium)
    for name in CONTROLS[medium]:
        f, value = fields[name]
        meta = f.metadata[_KEY]
        ptype = _click_type(medium, name, meta)
        kind = ("choice" if isinstance(ptype, click.Choice) else "int" if ptype is click.INT
                else "float" if ptype is click.FLOAT else "text")
        out.append({"name": name, "label": name.replace("_", " "), "help": meta["help"],
                    "default": _shown(meta, value), "kind": kind,
                    "choices": list(ptype.choices) if isinstance(ptype, click.Choice) else None,
                    "value": value if kind != "text" and value is not None else None})
    return out


def parse_settings(medium: str, values: Any) -> Any:
    """The config of ``medium`` with the form's ``values`` (``{field: text or number}``; empty or missing: the
    default), parsed as the command line parses them. Raises :class:`ConfigError` naming the field.

    Examples
    --------
    >>> config = parse_settings("image", {"style_weight": "10", "size": "256"})
    >>> config.style_weight, config.size
    (10.0, 256)
    """
    if medium not in CONTROLS:
        raise ConfigError(f"medium must be one of {', '.join(MEDIA)}, got {medium!r}")
    if not isinstance(values, Mapping):
        raise ConfigError("settings must be an object of field: value")
    fields = _fields(medium)
    parsed: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in CONTROLS[medium]:
            raise ConfigError(f"unknown {medium} setting {str(name)[:40]!r}")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ConfigError(f"{name}: expected text or a number")
        meta = fields[name][0].metadata[_KEY]
        text = str(raw).strip()[:200]
        try:
            value = _click_type(medium, name, meta).convert(text, None, None)
        except click.BadParameter as e:
            raise ConfigError(f"{name.replace('_', ' ')}: {e.message}") from None
        parsed[name] = meta["parse"](value) if meta["parse"] is not None and isinstance(value, str) else value
    return build(_config_class(medium), parsed)


def with_masks(config: Any, *, content_mask: str | None, style_masks: list[str] | None) -> Any:
    """An image config with the masks of :mod:`stylekit.image.masks` set to the given (server-side) files;
    validated as the command line's ``--content-mask`` / ``--style-mask`` are.

    Examples
    --------
    >>> from stylekit.image.config import ImageStyleConfig
    >>> with_masks(ImageStyleConfig(), content_mask="face.png", style_masks=None).content_mask
    'face.png'
    """
    changes: dict[str, Any] = {}
    if content_mask is not None:
        changes["content_mask"] = content_mask
    if style_masks:
        changes["style_masks"] = tuple(style_masks)
    return dataclasses.replace(config, **changes) if changes else config
