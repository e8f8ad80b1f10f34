"""What a batch is made of: the list of items (input, styles, output, config) and the results manifest.

Inputs are named on the command line as folders, glob patterns, single files or manifests:

- a **folder**: the image and audio files directly inside it (by suffix), sorted; output
  ``OUT_DIR/<name>.<format>`` for an image, ``OUT_DIR/<name>.wav`` for a sound;
- a **glob** (``photos/**/*.jpg``): every matching file; the output mirrors the path below the pattern's
  literal folder (``OUT_DIR/sub/a.png``);
- a **manifest**, ``.csv`` (with a header) or ``.jsonl`` (one object a line), with the columns ``input``
  (required), ``style`` (one path, or several separated by ``;`` in CSV / a list in JSONL; default: the
  ``--style`` options), ``output`` (relative to ``OUT_DIR``; default ``<input stem>.<format>``), ``media``
  (``image`` or ``audio``; default: decided from the file) and any setting of the row's kind as an override:
  an :class:`~stylekit.pipelines.ImageStyleConfig` field for an image, an
  :class:`~stylekit.audio.pipeline.AudioStyleConfig` or spectrogram field (or ``style_blend``) for a sound
  (``style_weight`` or ``style-weight``; an empty CSV cell means no override). Relative paths in a manifest
  are relative to the manifest's folder.

Each item is an image or a sound (:attr:`BatchItem.kind`): decided from the input's suffix, or from its first
bytes when the suffix is neither (RIFF/WAVE, FLAC, Ogg and MP3 headers are sound), unless ``media`` fixes it.
An item whose styles are not of its own kind (an image style for a sound) is an error row, never run.

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

__all__ = ["BatchItem", "AudioItemConfig", "collect_items", "media_of", "IMAGE_SUFFIXES", "AUDIO_SUFFIXES",
           "MEDIA", "RESULT_FIELDS", "write_results", "read_results", "check_results_path"]

#: Image files a folder input picks up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
#: Sound files a folder input picks up (as ``stylekit audio``: soundfile, and librosa for MP3).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: What ``media`` may say: decide per file, or every item is an image / a sound.
MEDIA = ("auto", "image", "audio")
#: Output formats of a batch (``--format``).
FORMATS = ("png", "jpg", "tif")
#: The columns of the results manifest, in order.
RESULT_FIELDS = ("index", "input", "styles", "output", "status", "error", "seconds", "attempts", "settings")

_INT_FIELDS = {"size", "iterations", "coarse_iterations", "scales", "min_size", "seed"}
_FLOAT_FIELDS = {"lr", "content_weight", "style_weight", "tv_weight", "style_scale"}
_LAYER_FIELDS = {"content_layers", "style_layers"}
_RESERVED = {"input", "style", "styles", "output", "media"}


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
    config: object | None  # ImageStyleConfig or AudioItemConfig; typed loosely (no torch import here)
    source: str = ""
    error: str | None = None
    kind: str = "image"  # "image" or "audio"


@dataclass(frozen=True)
class AudioItemConfig:
    """The settings of a sound in a batch: what ``stylekit audio`` takes besides its files.

    Attributes
    ----------
    config : AudioStyleConfig
        Passed to :func:`stylekit.stylize_audio` unchanged (``threads`` included: the torch threads of a run).
    style_blend : tuple of float, optional
        Weights of several styles (``style_weights`` of :func:`~stylekit.stylize_audio`); default equal.
    float_output : bool
        Write 32-bit float WAV instead of 16-bit PCM (``stylekit audio --float``).
    """

    config: object  # AudioStyleConfig
    style_blend: tuple[float, ...] | None = None
    float_output: bool = False

    def to_dict(self) -> dict:
        """Every setting that decides the output, JSON-ready (``threads`` left out: it only sets the speed)."""
        d = dataclasses.asdict(self.config)
        d.pop("threads", None)
        d["spectrogram"] = {k: v for k, v in d["spectrogram"].items() if not k.startswith("_")}
        d["style_blend"] = list(self.style_blend) if self.style_blend is not None else None
        d["float_output"] = self.float_output
        return d


_RIFF, _WAVE = b"RIFF", b"WAVE"


def media_of(path: str | os.PathLike) -> str:
    """``"audio"`` or ``"image"`` for a file: by suffix, else by its first bytes (a missing or unreadable file,
    or one of neither kind, counts as an image, whose loader then says what is wrong with it)."""
    suffix = Path(path).suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return "image"
    if (head[:4] == _RIFF and head[8:12] == _WAVE) or head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3" \
            or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio"
    return "image"


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


def _audio_fields() -> dict[str, str]:
    """``{name: annotation}`` of the settings a manifest may override for a sound (AudioStyleConfig and its
    SpectrogramConfig fields, as :func:`stylekit.audio.pipeline.build_config` takes them, and style_blend)."""
    from ..audio.pipeline import AudioStyleConfig
    from ..audio.transform import SpectrogramConfig

    out = {f.name: str(f.type) for f in dataclasses.fields(SpectrogramConfig) if not f.name.startswith("_")}
    out.update({f.name: str(f.type) for f in dataclasses.fields(AudioStyleConfig)
                if f.name not in ("spectrogram", "threads")})
    out["style_blend"] = "tuple[float, ...] | None"
    return out


def _coerce_audio(name: str, value, annotation: str, *, where: str):
    """A manifest cell -> the type of audio setting ``name`` (``annotation`` is its dataclass type)."""
    from ..image_cli import _floats

    if name == "style_blend":
        return _floats(value, f"{where}: style_blend") if isinstance(value, str) else tuple(value)
    if annotation.startswith("tuple"):
        parts = value.split(",") if isinstance(value, str) else value
        try:
            return tuple(int(str(v).strip()) for v in parts if str(v).strip())
        except ValueError:
            raise ConfigError(f"{where}: {name} must be comma-separated integers, got {value!r}") from None
    if not isinstance(value, str):
        if annotation.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        if annotation.startswith("bool"):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if annotation.startswith("int"):
            return int(text)
        if annotation.startswith("float"):
            return float(text)
    except ValueError:
        kind = annotation.split()[0].split("[")[0]
        raise ConfigError(f"{where}: {name} must be {'a number' if kind == 'float' else 'an integer' if kind == 'int' else 'true or false'}, "
                          f"got {text!r}") from None
    return text


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
    audio = set(_audio_fields())
    norm = {c: c.strip().lower().replace("-", "_") for c in columns}
    unknown = [c for c, n in norm.items() if n not in fields | audio | _RESERVED]
    if unknown:
        raise ConfigError(f"{path}: unknown column {unknown[0]!r}; columns are input, style, output, media, "
                          f"ImageStyleConfig fields ({', '.join(sorted(fields))}) and audio settings "
                          f"({', '.join(sorted(audio - fields))})")
    if "input" not in norm.values():
        raise ConfigError(f"{path}: the manifest has no 'input' column")
    if not rows:
        raise ConfigError(f"{path}: the manifest has no rows")
    return [(n, {norm[k]: v for k, v in row.items()}) for n, row in rows]


def _row_config(kind: str, row: dict, cfg, default_audio, *, where: str, base: Path):
    """The config of one manifest row: the batch's config of the row's kind with the row's overrides."""
    from ..pipelines import ImageStyleConfig

    image_fields = {f.name for f in dataclasses.fields(ImageStyleConfig)}
    try:
        if kind == "image":
            wrong = next((k for k in row if k not in image_fields), None)
            if wrong is not None:
                raise ConfigError(f"{where}: {wrong} is an audio setting and this input is an image")
            overrides = {k: _coerce(k, v, where=where, base=base) for k, v in row.items()}
            return dataclasses.replace(cfg, **overrides) if overrides else cfg
        audio = _audio_fields()
        wrong = next((k for k in row if k not in audio), None)
        if wrong is not None:
            raise ConfigError(f"{where}: {wrong} is an image setting and this input is a sound")
        base_cfg = default_audio()
        if not row:
            return base_cfg
        overrides = {k: _coerce_audio(k, v, audio[k], where=where) for k, v in row.items()}
        blend = overrides.pop("style_blend", base_cfg.style_blend)
        from ..audio.pipeline import build_config
        return dataclasses.replace(base_cfg, config=build_config(base_cfg.config, **overrides),
                                   style_blend=blend)
    except (TypeError, ValueError) as e:  # a JSONL value of the wrong type
        raise ConfigError(f"{where}: invalid setting ({' '.join(str(e).split())})") from None


def _style_list(value, *, base: Path) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(";")) if v]
    return tuple(base / str(v) for v in value)


def collect_items(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  styles: Sequence[str | os.PathLike] = (), config=None, audio_config=None, fmt: str = "png",
                  media: str = "auto") -> list[BatchItem]:
    """Expand folders, globs, files and manifests into :class:`BatchItem` objects.

    Parameters
    ----------
    inputs : folders, glob patterns, image or sound files, and ``.csv`` / ``.jsonl`` manifests.
    out_dir : the output folder; outputs are ``out_dir / <relative name>.<fmt>`` (``.wav`` for sounds).
    styles : style files used for every input that does not name its own (blended, as in ``stylekit image``
        and ``stylekit audio``); they must be of the input's kind.
    config : the :class:`~stylekit.pipelines.ImageStyleConfig` of every image; manifest rows override fields.
    audio_config : the :class:`AudioItemConfig` (or a bare :class:`~stylekit.audio.pipeline.AudioStyleConfig`)
        of every sound; manifest rows override fields.
    fmt : image output format, ``"png"``, ``"jpg"`` or ``"tif"``.
    media : ``"auto"`` (decide per file, see :func:`media_of`), ``"image"`` or ``"audio"``.

    Raises
    ------
    ConfigError
        for an input that matches nothing, an unreadable manifest, two items with the same output (or the
        same checkpoint path, ``OUTPUT_STEM.ckpt.pt``), or an output that would replace an input.
    """
    from ..pipelines import ImageStyleConfig

    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if media not in MEDIA:
        raise ConfigError(f"media must be one of {', '.join(MEDIA)}, got {media!r}")
    cfg = config if config is not None else ImageStyleConfig()
    audio_cfg = audio_config
    if audio_cfg is not None and not isinstance(audio_cfg, AudioItemConfig):
        audio_cfg = AudioItemConfig(audio_cfg)
    out_dir = Path(out_dir)
    default_styles = tuple(Path(s) for s in styles)
    items: list[BatchItem] = []
    kinds: dict[Path, str] = {}

    def kind_of(path: Path) -> str:
        if path not in kinds:
            kinds[path] = media_of(path)
        return kinds[path]

    def default_audio() -> AudioItemConfig:
        nonlocal audio_cfg
        if audio_cfg is None:
            from ..audio.pipeline import AudioStyleConfig
            audio_cfg = AudioItemConfig(AudioStyleConfig())
        return audio_cfg

    def suffix(kind: str) -> str:
        return ".wav" if kind == "audio" else f".{fmt}"

    def add(inp: Path, rel: Path, source: str, *, kind: str, item_styles=None, item_cfg=None,
            error=None) -> None:
        st = default_styles if item_styles is None else item_styles
        if error is None and not st:
            error = f"{source}: no style (pass --style or add a style column)"
        if error is None:
            other = next((s for s in st if kind_of(s) != kind), None)
            if other is not None:
                what = "a sound" if kind == "audio" else "an image"
                error = (f"{source}: {inp.name} is {what} but its style {other} is "
                         f"{'an image' if kind == 'audio' else 'a sound'}; {what} needs {kind} styles")
        if item_cfg is None and error is None:
            item_cfg = default_audio() if kind == "audio" else cfg
        items.append(BatchItem(index=len(items), input=inp, styles=st, output=out_dir / rel,
                               config=None if error else item_cfg, source=source, error=error, kind=kind))

    def kind_for(path: Path) -> str:
        return media if media != "auto" else kind_of(path)

    wanted = {"auto": IMAGE_SUFFIXES + AUDIO_SUFFIXES, "image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}[media]
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
                k = kind_for(m)
                add(m, m.relative_to(base).with_suffix(suffix(k)), text, kind=k)
        elif p.is_dir():
            _not_the_input_folder(p, out_dir)
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in wanted)
            if not files:
                what = {"auto": "image or audio", "image": "image", "audio": "audio"}[media]
                raise ConfigError(f"{p}: no {what} files in this folder ({', '.join(wanted)})")
            for f in files:
                k = kind_for(f)
                add(f, Path(f.name).with_suffix(suffix(k)), f"{p}/", kind=k)
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
                row_media = str(row.pop("media", "")).strip().lower()
                error = None
                if row_media and row_media not in ("image", "audio"):
                    error, row_media = f"{where}: media must be image or audio, got {row_media!r}", ""
                k = row_media or kind_for(inp)
                rel = Path(str(out).strip()) if out else Path(inp.name).with_suffix(suffix(k))
                if error is None and k == "audio" and rel.suffix.lower() != ".wav":
                    error = f"{where}: the output of a sound must be a .wav file, got {rel}"
                item_cfg = None
                if error is None:
                    try:
                        item_cfg = _row_config(k, row, cfg, default_audio, where=where, base=base)
                    except ConfigError as e:
                        msg = str(e)
                        error = msg if msg.startswith(where) else f"{where}: {msg}"
                add(inp, rel, where, kind=k, item_styles=item_styles, item_cfg=item_cfg, error=error)
        elif p.is_file():
            k = kind_for(p)
            add(p, Path(p.name).with_suffix(suffix(k)), str(p), kind=k)
        else:
            raise ConfigError(f"{text}: no such file, folder or matching pattern")

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
