"""What a batch is made of: the list of items (input, styles, output, config) and the results manifest.

Inputs are named on the command line as folders, glob patterns, single files or manifests:

- a **folder**: the files of every medium directly inside it (by suffix, see :data:`~stylekit.batch.MEDIA`),
  sorted; output ``OUT_DIR/<name>.<format>`` for an image, ``OUT_DIR/<name>.wav`` for a sound;
- a **glob** (``photos/**/*.jpg``): every matching file; the output mirrors the path below the pattern's
  literal folder (``OUT_DIR/sub/a.png``);
- a **manifest**, ``.csv`` (with a header) or ``.jsonl`` (one object a line), with the columns ``input``
  (required), ``style`` (one path, or several separated by ``;`` in CSV / a list in JSONL; default: the
  ``--style`` options), ``output`` (relative to ``OUT_DIR``, and inside it: ``../x.png``, an absolute path or a link out of it
  make the row an error; default ``<input stem>.<format>``), ``media``
  (``image`` or ``audio``; default: decided from the file) and any setting of the row's medium as an
  override: a field of its config (:class:`~stylekit.image.config.ImageStyleConfig`,
  :class:`~stylekit.audio.config.AudioStyleConfig` and its spectrogram), written ``style_weight`` or
  ``style-weight``, its text read as the command line reads that option (an empty CSV cell means no
  override). Relative paths in a manifest, a text setting that names a file included, are relative to the
  manifest's folder.

Each item has a medium (:attr:`BatchItem.medium`): decided from the input's suffix, or from its first bytes
when the suffix says nothing (:func:`~stylekit.batch.media.media_of`), unless ``media`` fixes it. An item
whose styles are not of its own medium (an image style for a sound) is an error row, never run.

A row whose overrides are invalid becomes an item with an ``error`` (reported in the results, never run);
a manifest that cannot be read at all, or an unknown column, is a :class:`~stylekit.errors.ConfigError`.
"""
from __future__ import annotations

import csv
import dataclasses
import fnmatch
import functools
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, InputError
from .media import MEDIA, media_of, medium_of_config

__all__ = ["BatchItem", "collect_items", "media_of", "MEDIA", "FORMATS", "RESULT_FIELDS", "write_results",
           "read_results", "check_results_path"]

#: Image output formats of a batch (``--format``).
FORMATS = ("png", "jpg", "tif")
#: The columns of the results manifest, in order.
RESULT_FIELDS = ("index", "input", "styles", "output", "status", "error", "seconds", "attempts", "settings")

_RESERVED = {"input", "style", "styles", "output", "media"}


@dataclass(frozen=True)
class BatchItem:
    """One unit of work: stylize ``input`` with ``styles`` (blended) under ``config`` and write ``output``.

    ``medium`` names the item's entry of :data:`~stylekit.batch.MEDIA`; ``config`` is that medium's config and
    ``options`` its output options (None: the Job's defaults). ``error`` is set (and ``config`` is ``None``)
    when the item was already known to be bad when the batch was planned, e.g. a manifest row with an invalid
    override; such an item is reported, never run. ``source`` says where the item came from (``"photos/"``,
    ``"jobs.csv:4"``) for error messages.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image import ImageStyleConfig, save_image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("a.png", "b.png", "painting.png"):
    ...     _ = save_image(torch.rand(1, 3, 24, 32), folder / name)
    >>> items = collect_items([folder / "a.png", folder / "b.png"], folder / "out", styles=[folder / "painting.png"],
    ...                       config=ImageStyleConfig(size=32, scales=1, iterations=1))
    >>> item = items[0]
    >>> item.input.name, item.output.name, item.medium
    ('a.png', 'a.png', 'image')
    """

    index: int
    input: Path
    styles: tuple[Path, ...]
    output: Path
    config: Any | None
    source: str = ""
    error: str | None = None
    medium: str = "image"
    options: Any | None = None

    def job(self, **kw):
        """The :class:`~stylekit._job.Job` that makes this item's output (``kw``: ``overwrite``, ``source``)."""
        return MEDIA[self.medium].job(self.input, self.styles, self.output, self.config, options=self.options,
                                      **kw)


# --- manifest settings, read as the command line reads them ---------------------------------------------

@functools.lru_cache(maxsize=None)
def _settings(cls) -> dict[str, tuple[dataclasses.Field, Any]]:
    """``{name: (field, default)}`` of every setting of the config class ``cls``, nested configs flattened."""
    out: dict = {}
    defaults = cls()
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update({k: v for k, v in _settings(type(value)).items() if k not in out})
        else:
            out[f.name] = (f, value)
    return out


def _click_type(meta: dict, default: Any):
    """The click type that reads a setting's text (None: the text as it is)."""
    if meta.get("is_flag") or isinstance(default, bool):
        return click.BOOL
    if meta.get("type") is not None:
        return click.types.convert_type(meta["type"])
    if meta:
        return None
    if isinstance(default, int):
        return click.INT
    return click.FLOAT if isinstance(default, float) else None


def _expected(kind) -> str:
    if isinstance(kind, click.Choice):
        return f"one of {', '.join(map(str, kind.choices))}"
    return {"integer": "an integer", "float": "a number", "boolean": "true or false"}.get(kind.name, kind.name)


def _coerce(name: str, value: Any, *, where: str, base: Path, cls) -> Any:
    """A manifest value -> the value of setting ``name`` of ``cls``: text (a CSV cell, or a JSON list joined
    with commas) is read by the field's ``parse`` or click type, as its command-line option is."""
    field, default = _settings(cls)[name]
    meta = field.metadata.get("stylekit") or {}
    if isinstance(value, list):
        value = ",".join(map(str, value))
    if not isinstance(value, str):
        numeric = meta.get("type") is float or isinstance(default, float)
        return float(value) if numeric and isinstance(value, int) and not isinstance(value, bool) else value
    text = value.strip()
    if meta.get("parse") is not None:
        return meta["parse"](text)
    if isinstance(default, tuple) and default:  # a tuple setting the command line does not expose
        try:
            return tuple(type(default[0])(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"{where}: {name} must be comma-separated numbers, got {text!r}") from None
    kind = _click_type(meta, default)
    if kind is None:
        rel = base / text
        return str(rel) if not os.path.isabs(text) and rel.exists() else text
    try:
        return kind.convert(text, None, None)
    except click.BadParameter:
        raise ConfigError(f"{where}: {name} must be {_expected(kind)}, got {text!r}") from None


def _replace(config: Any, values: dict) -> Any:
    """``config`` with ``values`` set, in nested configs too."""
    changes = {}
    for f in dataclasses.fields(config):
        current = getattr(config, f.name)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            new = _replace(current, values)
            if new is not current:
                changes[f.name] = new
        elif f.name in values:
            changes[f.name] = values[f.name]
    return dataclasses.replace(config, **changes) if changes else config


def _row_config(medium: str, row: dict, config: Any, *, where: str, base: Path) -> Any:
    """The config of one manifest row: the batch's config of the row's medium with the row's overrides."""
    cls = type(config)
    for name in row:
        if name not in _settings(cls):
            other = next(m.name for m in MEDIA.values() if name in _settings(m.config))
            raise ConfigError(f"{where}: {name} is {'an' if other[0] in 'aeiou' else 'a'} {other} setting and "
                              f"this input is {MEDIA[medium].noun}")
    values = {k: _coerce(k, v, where=where, base=base, cls=cls) for k, v in row.items()}
    try:
        return _replace(config, values)
    except (TypeError, ValueError) as e:  # ConfigError is a ValueError; a JSONL value of the wrong type
        msg = " ".join(str(e).split())
        raise ConfigError(msg if isinstance(e, ConfigError) else f"{where}: invalid setting ({msg})") from None


# --- reading a manifest ---------------------------------------------------------------------------------

def _csv_rows(path: Path, text: str) -> tuple[list[tuple[int, dict]], list[str]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise ConfigError(f"{path}: empty manifest (a CSV manifest needs a header with an 'input' column)")
    rows = []
    for row in reader:
        if None in row:
            raise ConfigError(f"{path}:{reader.line_num}: more cells than header columns")
        if not any((v or "").strip() for v in row.values()):
            continue
        rows.append((reader.line_num, {k: v for k, v in row.items() if v is not None and v.strip() != ""}))
    return rows, list(reader.fieldnames)


def _jsonl_rows(path: Path, text: str) -> tuple[list[tuple[int, dict]], list[str]]:
    rows, columns = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{path}:{n}: not valid JSON ({getattr(e, 'msg', e)})") from None
        except RecursionError:
            raise ConfigError(f"{path}:{n}: not a manifest row (JSON nested too deeply)") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{n}: each line must be a JSON object")
        rows.append((n, {k: v for k, v in obj.items() if v is not None}))
        columns.extend(k for k in obj if k not in columns)
    return rows, columns


def _read_manifest(path: Path) -> list[tuple[int, dict]]:
    """``[(line number, row dict), ...]`` with normalised column names; raises ConfigError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read manifest ({e})") from None
    rows, columns = (_csv_rows if path.suffix.lower() == ".csv" else _jsonl_rows)(path, text)
    norm = {c: c.strip().lower().replace("-", "_") for c in columns}
    known = {m.name: _settings(m.config) for m in MEDIA.values()}
    unknown = [c for c, n in norm.items() if n not in _RESERVED and not any(n in s for s in known.values())]
    if unknown:
        each = "; ".join(f"{name}: {', '.join(sorted(s))}" for name, s in known.items())
        raise ConfigError(f"{path}: unknown column {unknown[0]!r}; columns are input, style, output, media and "
                          f"the settings of the row's medium ({each})")
    if "input" not in norm.values():
        raise ConfigError(f"{path}: the manifest has no 'input' column")
    if not rows:
        raise ConfigError(f"{path}: the manifest has no rows")
    return [(n, {norm[k]: v for k, v in row.items()}) for n, row in rows]


def _style_list(value, *, base: Path) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(";")) if v]
    return tuple(base / str(v) for v in value)


def _inside(path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _inside_real(path, folder: Path) -> bool:
    """Whether ``path`` stays inside ``folder`` once ``..`` and links are resolved (``../../x.png``, an
    absolute path or a link inside ``folder`` that leads out of it do not)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)) and \
        Path(os.path.realpath(path)) != Path(os.path.realpath(folder))


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_base(pattern: str) -> Path:
    literal = []
    for part in Path(pattern).parts:
        if _is_glob(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def _real_dir(path: Path) -> tuple[int, int] | None:
    """The identity of the folder ``path`` leads to (through links), or None when it is not a folder."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _names(folder: Path, pattern: str) -> list[str]:
    """The entries of ``folder`` that ``pattern`` matches (hidden ones only when it starts with a dot)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [n for n in names if fnmatch.fnmatchcase(n, pattern) and (pattern.startswith(".") or n[0] != ".")]


def _walk(folder: Path, parts: tuple[str, ...], seen: set) -> Iterable[Path]:
    """Paths below ``folder`` that match the pattern ``parts``; every folder a wildcard enters is entered
    once, by its real identity, so links to folders are followed but a link loop ends at once."""
    if not parts:
        yield folder
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        yield from _walk(folder, rest, seen)                 # no folder at all
        for name in _names(folder, "*"):
            if not rest:
                yield folder / name                          # a trailing ** matches the files too
            real = _real_dir(folder / name)
            if real is not None and real not in seen:
                seen.add(real)
                yield from _walk(folder / name, parts, seen)
    elif _is_glob(head):
        for name in _names(folder, head):
            if not rest:
                yield folder / name
                continue
            real = _real_dir(folder / name)
            if real is not None and real not in seen:
                seen.add(real)
                yield from _walk(folder / name, rest, seen)
    else:
        yield from _walk(folder / head, rest, seen)


def expand_glob(pattern: str) -> list[Path]:
    """The files ``pattern`` matches (glob syntax, ``**`` for any number of folders), following links to
    folders but each real folder once (:func:`_walk`), sorted. ``glob.glob(recursive=True)`` would follow a
    link loop until the paths grow too long, matching the same files many times over."""
    base = _glob_base(pattern)
    parts = Path(pattern).parts[len(base.parts):]
    seen = {r for r in [_real_dir(base)] if r is not None}
    return sorted({p for p in _walk(base, parts, seen) if p.is_file()})


def _not_the_input_folder(folder: Path, out_dir: Path) -> None:
    if os.path.abspath(folder) == os.path.abspath(out_dir):
        raise ConfigError(f"{out_dir}: the output folder is the input folder {folder}; "
                          "a rerun would take the outputs as inputs (choose another output folder)")


def _by_medium(values, what: str) -> dict[str, Any]:
    """``{medium: value}`` of one config (or output options) or a sequence of them, one per medium."""
    if values is None:
        return {}
    values = values if isinstance(values, (list, tuple)) else [values]
    out: dict[str, Any] = {}
    for v in values:
        m = medium_of_config(v)
        if m in out:
            raise ConfigError(f"two {what} of {MEDIA[m].noun}")
        out[m] = v
    return out


# --- collecting the items -------------------------------------------------------------------------------

class _Collector:
    """Turns the inputs of a batch into :class:`BatchItem` objects (see :func:`collect_items`)."""

    def __init__(self, out_dir: Path, styles: tuple[Path, ...], configs: dict, options: dict, fmt: str,
                 media: str) -> None:
        self.out_dir, self.styles, self.configs, self.options = out_dir, styles, configs, options
        self.fmt, self.media = fmt, media
        self.items: list[BatchItem] = []
        self._media: dict[Path, str] = {}

    def medium_of(self, path: Path) -> str:
        """The medium of a file (sniffed once per file)."""
        if path not in self._media:
            self._media[path] = media_of(path)
        return self._media[path]

    def medium_for(self, path: Path) -> str:
        return self.media if self.media != "auto" else self.medium_of(path)

    def config(self, medium: str) -> Any:
        if medium not in self.configs:
            self.configs[medium] = MEDIA[medium].config()
        return self.configs[medium]

    def add(self, inp: Path, rel: Path, source: str, *, medium: str, styles=None, config=None,
            error=None) -> None:
        st = self.styles if styles is None else styles
        if error is None and not st:
            error = f"{source}: no style (pass --style or add a style column)"
        if error is None:
            wanted = MEDIA[medium].style_medium or medium     # a video takes image styles
            other = next((s for s in st if self.medium_of(s) != wanted), None)
            if other is not None:
                noun, other_noun = MEDIA[medium].noun, MEDIA[self.medium_of(other)].noun
                error = (f"{source}: {inp.name} is {noun} but its style {other} is {other_noun}; "
                         f"{noun} needs {wanted} styles")
        item = BatchItem(index=len(self.items), input=inp, styles=st, output=self.out_dir / rel,
                         config=config if config is not None else self.config(medium), source=source,
                         medium=medium, options=self.options.get(medium))
        if error is None:
            try:
                item.job().check_output()  # an output this medium cannot write (its format)
            except ConfigError as e:
                error = str(e) if str(e).startswith(source) else f"{source}: {e}"
        if error is not None:
            item = dataclasses.replace(item, config=None, error=error)
        self.items.append(item)

    def rel(self, path: Path, medium: str) -> Path:
        return path.with_suffix(MEDIA[medium].suffix(self.fmt))

    def add_glob(self, text: str) -> None:
        base = _glob_base(text)
        _not_the_input_folder(base, self.out_dir)
        # outputs of this batch are never inputs, even when OUT_DIR lies below the pattern's folder
        below = _inside(self.out_dir, base)
        matches = [m for m in expand_glob(text) if not (below and _inside(m, self.out_dir))]
        if not matches:
            raise ConfigError(f"{text}: no files match this pattern")
        for m in matches:
            k = self.medium_for(m)
            self.add(m, self.rel(m.relative_to(base), k), text, medium=k)

    def add_folder(self, folder: Path) -> None:
        _not_the_input_folder(folder, self.out_dir)
        chosen = list(MEDIA) if self.media == "auto" else [self.media]
        wanted = tuple(s for m in chosen for s in MEDIA[m].suffixes)
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in wanted)
        if not files:
            raise ConfigError(f"{folder}: no {' or '.join(chosen)} files in this folder ({', '.join(wanted)})")
        for f in files:
            k = self.medium_for(f)
            self.add(f, self.rel(Path(f.name), k), f"{folder}/", medium=k)

    def add_manifest(self, path: Path) -> None:
        for line, row in _read_manifest(path):
            self.add_row(row, where=f"{path}:{line}", base=path.parent)

    def add_row(self, row: dict, *, where: str, base: Path) -> None:
        if "input" not in row or not str(row["input"]).strip():
            raise ConfigError(f"{where}: empty input")
        inp = base / str(row.pop("input")).strip()
        st = row.pop("styles", row.pop("style", None))
        out = row.pop("output", None)
        medium = str(row.pop("media", "")).strip().lower()
        error = config = None
        if medium and medium not in MEDIA:
            error, medium = f"{where}: media must be {' or '.join(MEDIA)}, got {medium!r}", ""
        medium = medium or self.medium_for(inp)
        rel = Path(str(out).strip()) if out else self.rel(Path(inp.name), medium)
        if error is None and not _inside_real(self.out_dir / rel, self.out_dir):
            error = (f"{where}: output {str(out).strip()!r} is outside the output folder {self.out_dir}; a "
                     "manifest's outputs are names inside it")
        if error is None:
            try:
                config = _row_config(medium, row, self.config(medium), where=where, base=base)
            except ConfigError as e:
                error = str(e) if str(e).startswith(where) else f"{where}: {e}"
        self.add(inp, rel, where, medium=medium, styles=_style_list(st, base=base) if st else None,
                 config=config, error=error)

    def add_input(self, spec: str | os.PathLike) -> None:
        text = os.fspath(spec)
        p = Path(text)
        if _is_glob(text) and not p.exists():
            self.add_glob(text)
        elif p.is_dir():
            self.add_folder(p)
        elif p.suffix.lower() in (".csv", ".jsonl"):
            self.add_manifest(p)
        elif p.is_file():
            k = self.medium_for(p)
            self.add(p, self.rel(Path(p.name), k), str(p), medium=k)
        else:
            raise ConfigError(f"{text}: no such file, folder or matching pattern")


def _check_distinct(items: list[BatchItem]) -> None:
    """Two items never write the same output or checkpoint, and no output replaces its input."""
    from .._checkpoint import checkpoint_path

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
    checkpoints: dict[Path, BatchItem] = {}
    for it in (it for it in items if it.error is None):
        # an interrupted item saves its checkpoint beside its output: a.png and a.wav would share a.ckpt.pt
        key = Path(os.path.abspath(checkpoint_path(it.output)))
        if key in checkpoints:
            raise ConfigError(f"{it.source} and {checkpoints[key].source} would share the checkpoint {key.name} "
                              f"of an interrupted run ({checkpoints[key].output.name}, {it.output.name}); give "
                              "them outputs whose names differ before the suffix")
        checkpoints[key] = it


def _file_ids(paths: Iterable[Path]) -> dict:
    """``{identity: path}`` of files, by resolved path and, for those that exist, by device and inode (a hard
    link or a symbolic link is the same file under another name)."""
    ids: dict = {}
    for p in paths:
        ids.setdefault(("path", os.path.realpath(p)), p)
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.setdefault(("inode", st.st_dev, st.st_ino), p)
    return ids


def _spare_the_inputs(items: list[BatchItem]) -> list[BatchItem]:
    """Every item that would write (its output, or its checkpoint on an interrupt) over a file that another item
    reads (its input or a style) becomes an error row naming both, before any work: ``--overwrite`` never
    lets one row destroy another's input."""
    from .._checkpoint import checkpoint_path

    read = _file_ids(p for it in items for p in (it.input, *it.styles))
    out = []
    for it in items:
        if it.error is None:
            for target in (it.output, checkpoint_path(it.output)):
                hit = next((read[k] for k in _file_ids([target]) if k in read), None)
                if hit is not None:
                    it = dataclasses.replace(it, config=None, error=(
                        f"{it.source}: output {target} would replace {hit}, an input or style of this batch; "
                        "give the row another output"))
                    break
        out.append(it)
    return out


def collect_items(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  styles: Sequence[str | os.PathLike] = (), config=None, options=None, fmt: str = "png",
                  media: str = "auto") -> list[BatchItem]:
    """Expand folders, globs, files and manifests into :class:`BatchItem` objects.

    Parameters
    ----------
    inputs : folders, glob patterns, files of any medium, and ``.csv`` / ``.jsonl`` manifests.
    out_dir : the output folder; outputs are ``out_dir / <relative name>.<fmt>`` (``.wav`` for sounds).
    styles : style files used for every input that does not name its own (blended, as in ``stylekit image``
        and ``stylekit audio``); they must be of the input's medium.
    config : the config of every input of its medium (an :class:`~stylekit.image.config.ImageStyleConfig`,
        an :class:`~stylekit.audio.config.AudioStyleConfig`), or a sequence of them, one per medium; a
        medium without one takes its config's defaults. Manifest rows override fields.
    options : the output options of a medium (:class:`~stylekit.image.job.ImageOutput`,
        :class:`~stylekit.audio.job.AudioOutput`), or a sequence of them; default: the Job's.
    fmt : image output format, ``"png"``, ``"jpg"`` or ``"tif"``.
    media : ``"auto"`` (decide per file, see :func:`media_of`) or a medium's name: every input is of it.

    Raises
    ------
    ConfigError
        for an input that matches nothing, an unreadable manifest, two items with the same output (or the
        same checkpoint path, ``OUTPUT_STEM.ckpt.pt``), or an output that would replace its own input. An
        item whose output would replace another item's input or style, or (in a manifest) that lies outside
        ``out_dir``, is an error row.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image import ImageStyleConfig, save_image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("a.png", "b.png", "painting.png"):
    ...     _ = save_image(torch.rand(1, 3, 24, 32), folder / name)
    >>> items = collect_items([folder / "a.png", folder / "b.png"], folder / "out", styles=[folder / "painting.png"],
    ...                       config=ImageStyleConfig(size=32, scales=1, iterations=1))
    >>> [(item.input.name, [s.name for s in item.styles]) for item in items]
    [('a.png', ['painting.png']), ('b.png', ['painting.png'])]
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if media != "auto" and media not in MEDIA:
        raise ConfigError(f"media must be one of auto, {', '.join(MEDIA)}, got {media!r}")
    collector = _Collector(Path(out_dir), tuple(Path(s) for s in styles), _by_medium(config, "configs"),
                           _by_medium(options, "output options"), fmt, media)
    for spec in inputs:
        collector.add_input(spec)
    _check_distinct(collector.items)
    return _spare_the_inputs(collector.items)


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
    when it is a stylekit results manifest (a rerun of the batch) or ``overwrite`` is set.

    Examples
    --------
    >>> check_results_path("out/results.jsonl").name
    'results.jsonl'
    >>> check_results_path("out/results.txt")
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: out/results.txt: the results manifest must be a .jsonl or .csv file
    """
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
    """Write the results manifest atomically (JSON lines or CSV by suffix), one row per input.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_results([{"input": "a.png", "status": "done"}], Path(tempfile.mkdtemp()) / "results.jsonl")
    >>> read_results(path)[0]["status"]
    'done'
    """
    from .._io import atomic_write

    p = Path(path)
    rows = list(rows)

    def write(tmp: Path) -> None:
        # errors="surrogateescape": a file name that is not UTF-8 is written as its own bytes (JSON escapes it)
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
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
    ``styles`` (a list) and ``settings`` (a dict)).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_results([{"input": "a.png", "status": "done"}], Path(tempfile.mkdtemp()) / "results.csv")
    >>> [row["input"] for row in read_results(path)]
    ['a.png']
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
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
        except (ValueError, RecursionError):
            raise InputError(f"{p}: not a stylekit results manifest") from None
        if not isinstance(r, dict) or not {"input", "output", "status"} <= set(r):
            raise InputError(f"{p}: not a stylekit results manifest")
        rows.append(r)
    return rows
