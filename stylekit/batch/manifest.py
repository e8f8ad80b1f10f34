"""What a batch is made of: the list of items (input, styles, output, config) and the results manifest.

Inputs are named on the command line as folders, glob patterns, single image files or manifests:

- a **folder**: the image files directly inside it (by suffix), sorted; output ``OUT_DIR/<name>.<format>``;
- a **glob** (``photos/**/*.jpg``): every matching file; the output mirrors the path below the pattern's
  literal folder (``OUT_DIR/sub/a.png``);
- a **manifest**, ``.csv`` (with a header) or ``.jsonl`` (one object a line), with the columns ``input``
  (required), ``style`` (one path, or several separated by ``;`` in CSV / a list in JSONL; default: the
  ``--style`` options), ``output`` (relative to ``OUT_DIR``; default ``<input stem>.<format>``) and any
  :class:`~stylekit.pipelines.ImageStyleConfig` field as an override (``style_weight`` or ``style-weight``;
  an empty CSV cell means no override). Relative paths in a manifest are relative to the manifest's folder.

A row whose overrides are invalid becomes an item with an ``error`` (reported in the results, never run);
a manifest that cannot be read at all, or an unknown column, is a :class:`~stylekit.errors.ConfigError`.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, InputError

__all__ = ["BatchItem", "collect_items", "IMAGE_SUFFIXES", "RESULT_FIELDS", "write_results", "read_results",
           "check_results_path"]

#: Files a folder input picks up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
#: Output formats of a batch (``--format``).
FORMATS = ("png", "jpg", "tif")
#: The columns of the results manifest, in order.
RESULT_FIELDS = ("index", "input", "styles", "output", "status", "error", "seconds", "attempts", "settings")

_INT_FIELDS = {"size", "iterations", "coarse_iterations", "scales", "min_size", "seed"}
_FLOAT_FIELDS = {"lr", "content_weight", "style_weight", "tv_weight", "style_scale"}
_LAYER_FIELDS = {"content_layers", "style_layers"}
_RESERVED = {"input", "style", "styles", "output"}


@dataclass(frozen=True)
class BatchItem:
    """One unit of work: stylize ``input`` with ``styles`` (blended) under ``config`` and write ``output``.

    ``error`` is set (and ``config`` is ``None``) when the item was already known to be bad when the batch
    was planned, e.g. a manifest row with an invalid override; such an item is reported, never run.
    ``source`` says where the item came from (``"photos/"``, ``"jobs.csv:4"``) for error messages.
    """

    index: int
    input: Path
    styles: tuple[Path, ...]
    output: Path
    config: object | None  # ImageStyleConfig; typed loosely so this module does not import torch
    source: str = ""
    error: str | None = None


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    literal = []
    for part in parts:
        if _is_glob(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def _inside(path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _not_the_input_folder(folder: Path, out_dir: Path) -> None:
    if os.path.abspath(folder) == os.path.abspath(out_dir):
        raise ConfigError(f"{out_dir}: the output folder is the input folder {folder}; "
                          "a rerun would take the outputs as inputs (choose another output folder)")


def _coerce(name: str, value, *, where: str, base: Path):
    """A manifest cell -> the type of ImageStyleConfig field ``name`` (CSV cells arrive as strings)."""
    from ..image_cli import _floats
    from ..pipelines import parse_layers

    if isinstance(value, str):
        text = value.strip()
        if name in _INT_FIELDS:
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{where}: {name} must be an integer, got {text!r}") from None
        if name in _FLOAT_FIELDS:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"{where}: {name} must be a number, got {text!r}") from None
        if name == "style_blend":
            return _floats(text, f"{where}: style_blend")
        if name in _LAYER_FIELDS:
            return parse_layers(text)
        if name == "init" and text not in ("content", "noise"):
            return str(base / text)
        return text
    if name == "style_blend" and isinstance(value, list):
        return tuple(value)
    if name in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _read_manifest(path: Path) -> list[tuple[int, dict]]:
    """``[(line number, row dict), ...]`` with normalised column names; raises ConfigError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read manifest ({e})") from None
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ConfigError(f"{path}: empty manifest (a CSV manifest needs a header with an 'input' column)")
        for row in reader:
            if None in row:
                raise ConfigError(f"{path}:{reader.line_num}: more cells than header columns")
            if not any((v or "").strip() for v in row.values()):
                continue
            rows.append((reader.line_num, {k: v for k, v in row.items() if v is not None and v.strip() != ""}))
        columns = list(reader.fieldnames)
    else:
        columns = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{n}: each line must be a JSON object")
            rows.append((n, {k: v for k, v in obj.items() if v is not None}))
            columns.extend(k for k in obj if k not in columns)
    from ..pipelines import ImageStyleConfig
    fields = {f.name for f in dataclasses.fields(ImageStyleConfig)}
    norm = {c: c.strip().lower().replace("-", "_") for c in columns}
    unknown = [c for c, n in norm.items() if n not in fields and n not in _RESERVED]
    if unknown:
        raise ConfigError(f"{path}: unknown column {unknown[0]!r}; columns are input, style, output and "
                          f"ImageStyleConfig fields ({', '.join(sorted(fields))})")
    if "input" not in norm.values():
        raise ConfigError(f"{path}: the manifest has no 'input' column")
    if not rows:
        raise ConfigError(f"{path}: the manifest has no rows")
    return [(n, {norm[k]: v for k, v in row.items()}) for n, row in rows]


def _style_list(value, *, base: Path) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(";")) if v]
    return tuple(base / str(v) for v in value)


def collect_items(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  styles: Sequence[str | os.PathLike] = (), config=None, fmt: str = "png") -> list[BatchItem]:
    """Expand folders, globs, image files and manifests into :class:`BatchItem` objects.

    Parameters
    ----------
    inputs : folders, glob patterns, image files and ``.csv`` / ``.jsonl`` manifests.
    out_dir : the output folder; outputs are ``out_dir / <relative name>.<fmt>``.
    styles : style images used for every input that does not name its own (blended, as in ``stylekit image``).
    config : the :class:`~stylekit.pipelines.ImageStyleConfig` of every item; manifest rows override fields.
    fmt : ``"png"``, ``"jpg"`` or ``"tif"``.

    Raises
    ------
    ConfigError
        for an input that matches nothing, an unreadable manifest, two items with the same output, or an
        output that would replace an input.
    """
    from ..pipelines import ImageStyleConfig

    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    cfg = config if config is not None else ImageStyleConfig()
    out_dir = Path(out_dir)
    default_styles = tuple(Path(s) for s in styles)
    items: list[BatchItem] = []

    def add(inp: Path, rel: Path, source: str, *, item_styles=None, item_cfg=None, error=None) -> None:
        st = default_styles if item_styles is None else item_styles
        if error is None and not st:
            error = f"{source}: no style image (pass --style or add a style column)"
        items.append(BatchItem(index=len(items), input=inp, styles=st, output=out_dir / rel,
                               config=None if error else (item_cfg or cfg), source=source, error=error))

    for spec in inputs:
        text = os.fspath(spec)
        p = Path(text)
        if _is_glob(text) and not p.exists():
            base = _glob_base(text)
            _not_the_input_folder(base, out_dir)
            # outputs of this batch are never inputs, even when OUT_DIR lies below the pattern's folder
            below = _inside(out_dir, base)
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True)
                             if os.path.isfile(m) and not (below and _inside(m, out_dir)))
            if not matches:
                raise ConfigError(f"{text}: no files match this pattern")
            for m in matches:
                add(m, m.relative_to(base).with_suffix(f".{fmt}"), text)
        elif p.is_dir():
            _not_the_input_folder(p, out_dir)
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ConfigError(f"{p}: no image files in this folder ({', '.join(IMAGE_SUFFIXES)})")
            for f in files:
                add(f, Path(f.name).with_suffix(f".{fmt}"), f"{p}/")
        elif p.suffix.lower() in (".csv", ".jsonl"):
            base = p.parent
            for line, row in _read_manifest(p):
                where = f"{p}:{line}"
                if "input" not in row or not str(row["input"]).strip():
                    raise ConfigError(f"{where}: empty input")
                inp = base / str(row.pop("input")).strip()
                st = row.pop("style", None)
                st = row.pop("styles", st)
                item_styles = _style_list(st, base=base) if st else None
                out = row.pop("output", None)
                rel = Path(str(out).strip()) if out else Path(inp.name).with_suffix(f".{fmt}")
                item_cfg, error = None, None
                try:
                    overrides = {k: _coerce(k, v, where=where, base=base) for k, v in row.items()}
                    item_cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
                except ConfigError as e:
                    msg = str(e)
                    error = msg if msg.startswith(where) else f"{where}: {msg}"
                add(inp, rel, where, item_styles=item_styles, item_cfg=item_cfg, error=error)
        elif p.is_file():
            add(p, Path(p.name).with_suffix(f".{fmt}"), str(p))
        else:
            raise ConfigError(f"{text}: no such file, folder or matching pattern")

    seen: dict[Path, BatchItem] = {}
    for it in items:
        key = Path(os.path.abspath(it.output))
        if key in seen:
            raise ConfigError(f"{it.source} and {seen[key].source} both write {it.output}; "
                              "give the rows distinct 'output' names in a manifest")
        seen[key] = it
        if key == Path(os.path.abspath(it.input)):
            raise ConfigError(f"{it.output}: the output would replace its input {it.input}; "
                              "choose another output folder")
    return items


# --- the results manifest -------------------------------------------------------------------------------

def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if name == "styles":
        return ";".join(value)
    if name == "settings":
        return json.dumps(value, sort_keys=True)
    return str(value)


def check_results_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate where the results manifest goes: ``.jsonl`` or ``.csv``; an existing file is replaced only
    when it is a stylekit results manifest (a rerun of the batch) or ``overwrite`` is set."""
    p = Path(path)
    if p.suffix.lower() not in (".jsonl", ".csv"):
        raise ConfigError(f"{p}: the results manifest must be a .jsonl or .csv file")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, expected a file name for the results manifest")
    if p.exists() and not overwrite:
        try:
            read_results(p)
        except (InputError, ConfigError):
            raise ConfigError(f"{p}: already exists and is not a stylekit results manifest "
                              "(use --overwrite or another --results path)") from None
    return p


def write_results(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write the results manifest atomically (JSON lines or CSV by suffix), one row per input."""
    from .._io import atomic_write

    p = Path(path)
    rows = list(rows)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if p.suffix.lower() == ".csv":
                w = csv.writer(f)
                w.writerow(RESULT_FIELDS)
                for r in rows:
                    w.writerow([_cell(k, r.get(k)) for k in RESULT_FIELDS])
            else:
                for r in rows:
                    f.write(json.dumps({k: r.get(k) for k in RESULT_FIELDS}, default=str) + "\n")

    return atomic_write(p, write, overwrite=True)


def read_results(path: str | os.PathLike) -> list[dict]:
    """Read a results manifest written by :func:`write_results` (CSV cells come back as strings, except
    ``styles`` (a list) and ``settings`` (a dict))."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read results manifest ({e})") from None
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if tuple(reader.fieldnames or ()) != RESULT_FIELDS:
            raise InputError(f"{p}: not a stylekit results manifest")
        rows = []
        for r in reader:
            r = dict(r)
            r["styles"] = [s for s in r["styles"].split(";") if s]
            r["settings"] = json.loads(r["settings"]) if r["settings"] else None
            rows.append(r)
        return rows
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError:
            raise InputError(f"{p}: not a stylekit results manifest") from None
        if not isinstance(r, dict) or not {"input", "output", "status"} <= set(r):
            raise InputError(f"{p}: not a stylekit results manifest")
        rows.append(r)
    return rows
