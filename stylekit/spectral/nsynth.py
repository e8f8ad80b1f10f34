"""Reading NSynth-format data sets: ``nsynth-{train,valid,test}/examples.json`` + ``audio/<note_str>.wav``.

The layout and fields are those of the NSynth data set (Engel et al., 2017): ``examples.json`` maps each
``note_str`` to a record with ``note``, ``note_str``, ``instrument``, ``instrument_str``, ``pitch``,
``velocity``, ``sample_rate``, ``qualities``, ``qualities_str``, ``instrument_family``,
``instrument_family_str``, ``instrument_source`` and ``instrument_source_str``; the audio is 4 s of mono
16 kHz 16-bit PCM. Users who have NSynth point :func:`read_split` at it; :mod:`stylekit.spectral.synth` writes
the same layout.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .config import FAMILIES, SOURCES, SPLITS

__all__ = ["FAMILIES", "SOURCES", "SPLITS", "NSynthNote", "split_dir", "resolve_split", "read_split",
           "write_example_set",
           "filter_notes", "select_notes", "load_audio", "NOTE_SECONDS"]

NOTE_SECONDS = 4.0

_REQUIRED = {"note": int, "note_str": str, "instrument": int, "instrument_str": str, "pitch": int,
             "velocity": int, "sample_rate": int, "instrument_family": int, "instrument_family_str": str,
             "instrument_source": int, "instrument_source_str": str}


@dataclass(frozen=True)
class NSynthNote:
    """One note record of ``examples.json`` plus the path of its WAV file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> note = read_split(root, "test")[0]
    >>> note.note_str, note.pitch, note.instrument_family_str, note.path.name
    ('keyboard_synthetic_000-057-100', 57, 'keyboard', 'keyboard_synthetic_000-057-100.wav')
    """

    note: int
    note_str: str
    instrument: int
    instrument_str: str
    pitch: int
    velocity: int
    sample_rate: int
    instrument_family: int
    instrument_family_str: str
    instrument_source: int
    instrument_source_str: str
    qualities: tuple[int, ...]
    qualities_str: tuple[str, ...]
    path: Path

    def to_json(self) -> dict:
        """The record as NSynth stores it (no path)."""
        d = {k: getattr(self, k) for k in _REQUIRED}
        d["qualities"] = list(self.qualities)
        d["qualities_str"] = list(self.qualities_str)
        return d


def write_example_set(root: str | os.PathLike, *, pitches: Sequence[int] = (57, 69), seconds: float = 4.0,
                      sample_rate: int = 16000) -> Path:
    """Write a tiny NSynth-format data set under ``root`` and return ``root``: in each split, one sine note per
    MIDI pitch of ``pitches`` (velocity 100, a synthetic keyboard), with an ``examples.json`` holding every
    NSynth field. For examples, tests and trying the commands without NSynth.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = write_example_set(Path(tempfile.mkdtemp()))
    >>> sorted(p.name for p in root.iterdir()), len(read_split(root, "valid"))
    (['nsynth-test', 'nsynth-train', 'nsynth-valid'], 2)
    """
    import json

    from .resynth import write_wav
    root = Path(root)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    for split in SPLITS:
        (root / f"nsynth-{split}" / "audio").mkdir(parents=True)
        notes = {f"keyboard_synthetic_000-{p:03d}-100": p for p in pitches}
        for name, p in notes.items():
            write_wav(root / f"nsynth-{split}" / "audio" / f"{name}.wav",
                      0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t), sample_rate)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps({name: dict(
            note=p, note_str=name, instrument=0, instrument_str=name[:-8], pitch=p, velocity=100,
            sample_rate=sample_rate, qualities=[0] * 10, qualities_str=[], instrument_family=4,
            instrument_family_str="keyboard", instrument_source=2, instrument_source_str="synthetic")
            for name, p in notes.items()}))
    return root


def split_dir(root: str | os.PathLike, split: str) -> Path:
    """``root/nsynth-<split>``; ``split`` must be one of :data:`SPLITS`.

    Examples
    --------
    >>> split_dir("data", "valid").as_posix()
    'data/nsynth-valid'
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(root) / f"nsynth-{split}"


def resolve_split(data: str | os.PathLike, split: str | None = None) -> Path:
    """The folder of one split: ``data`` itself when it holds an ``examples.json`` (a split folder such as
    ``nsynth-test/``), else ``data/nsynth-<split>`` (``split`` None means ``"test"``).

    A split folder named ``nsynth-<s>`` given with another explicit ``split`` is a :class:`ConfigError`: the
    two disagree and guessing would score the wrong notes.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> resolve_split(root).name, resolve_split(root / "nsynth-valid").name
    ('nsynth-test', 'nsynth-valid')
    """
    d = Path(data)
    if (d / "examples.json").is_file():
        named = d.name[len("nsynth-"):] if d.name.startswith("nsynth-") else None
        if split is not None and named in SPLITS and named != split:
            raise ConfigError(f"{d}: is the {named!r} split folder, but the {split!r} split was asked for; "
                              "pass the data set's root folder (or drop --split)")
        return d
    return split_dir(d, split or "test")


def read_split(root: str | os.PathLike, split: str | None, *, check_files: bool = True) -> list[NSynthNote]:
    """Read one split's ``examples.json``.

    Parameters
    ----------
    root : path
        Folder holding ``nsynth-train``, ``nsynth-valid``, ``nsynth-test``, or one such split folder
        (see :func:`resolve_split`).
    split : {"train", "valid", "test"} or None
    check_files : bool
        Also check that every WAV file exists (a missing one is an :class:`InputError` naming it).

    Returns
    -------
    list of NSynthNote
        Sorted by ``note_str`` so the order never depends on the JSON's key order.

    Raises
    ------
    InputError
        When the folder or ``examples.json`` is missing, the JSON is corrupt, or a record lacks a field.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> [n.pitch for n in read_split(root, "train")]
    [57, 69]
    """
    d = resolve_split(root, split)
    path = d / "examples.json"
    if not path.is_file():
        raise InputError(f"{path}: missing (not an NSynth-format data set?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: corrupt examples.json ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: corrupt examples.json (nested too deeply)") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: corrupt examples.json (top level is not an object)")
    notes = []
    for key in sorted(data):
        rec = data[key]
        if not isinstance(rec, dict):
            raise InputError(f"{path}: corrupt examples.json (record {key!r} is not an object)")
        for field, typ in _REQUIRED.items():
            if not isinstance(rec.get(field), typ) or isinstance(rec.get(field), bool):
                raise InputError(f"{path}: record {key!r} lacks field {field!r} of type {typ.__name__}")
        if rec["note_str"] != key:
            raise InputError(f"{path}: record {key!r} has note_str {rec['note_str']!r}")
        q, qs = rec.get("qualities", []), rec.get("qualities_str", [])
        if not (isinstance(q, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in q)
                and isinstance(qs, list) and all(isinstance(v, str) for v in qs)):
            raise InputError(f"{path}: record {key!r} has qualities that are not a list of 0/1 flags and "
                             "qualities_str that is not a list of names")
        wav = d / "audio" / f"{key}.wav"
        if check_files and not wav.is_file():
            raise InputError(f"{wav}: missing WAV file listed in {path}")
        notes.append(NSynthNote(**{k: rec[k] for k in _REQUIRED}, qualities=tuple(q), qualities_str=tuple(qs),
                                path=wav))
    return notes


def filter_notes(notes: Iterable[NSynthNote], *, families: Sequence[str] | None = None,
                 sources: Sequence[str] | None = None, pitches: Sequence[int] | None = None,
                 velocities: Sequence[int] | None = None) -> list[NSynthNote]:
    """Keep the notes whose family, source, pitch and velocity are in the given sets (``None`` keeps all).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> [n.pitch for n in filter_notes(read_split(root, "test"), pitches=[69])]
    [69]
    """
    for name, vals, allowed in (("family", families, FAMILIES), ("source", sources, SOURCES)):
        bad = [v for v in (vals or ()) if v not in allowed]
        if bad:
            raise ConfigError(f"unknown {name} {bad[0]!r}; expected one of {', '.join(allowed)}")
    fam = set(families) if families is not None else None
    src = set(sources) if sources is not None else None
    pit = set(pitches) if pitches is not None else None
    vel = set(velocities) if velocities is not None else None
    return [n for n in notes
            if (fam is None or n.instrument_family_str in fam) and (src is None or n.instrument_source_str in src)
            and (pit is None or n.pitch in pit) and (vel is None or n.velocity in vel)]


def select_notes(notes: Sequence[NSynthNote], flt) -> list[NSynthNote]:
    """The notes a :class:`~stylekit.spectral.config.NoteFilter` keeps: :func:`filter_notes`, then at most
    ``flt.max_notes`` of them evenly spaced through the ``note_str`` order (deterministic: the same notes for
    every model and seed).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.config import NoteFilter
    >>> len(select_notes(read_split(root, "test"), NoteFilter(max_notes=1)))
    1
    """
    kept = filter_notes(notes, families=flt.families, sources=flt.sources, pitches=flt.pitches,
                        velocities=flt.velocities)
    if flt.max_notes and len(kept) > flt.max_notes:
        idx = np.unique(np.linspace(0, len(kept) - 1, flt.max_notes).round().astype(int))
        kept = [kept[i] for i in idx]
    return kept


def load_audio(path: str | os.PathLike, *, sample_rate: int) -> np.ndarray:
    """Read a mono WAV file as float32 in [-1, 1].

    Multi-channel files are averaged to mono. A file at a rate other than ``sample_rate`` is refused (an
    :class:`InputError` naming the file) rather than silently resampled, since the models' STFT config fixes
    the rate.

    Returns
    -------
    ndarray, shape (n_samples,), float32

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> load_audio(read_split(root, "test")[0].path, sample_rate=16000).shape
    (64000,)
    """
    from ..audio.io import read_audio
    p = Path(path)
    y, sr = read_audio(p, dtype="float32", fallback=False)     # refuses a missing or non-regular file
    if sr != sample_rate:
        raise InputError(f"{p}: sample rate is {sr} Hz but the STFT config expects {sample_rate} Hz")
    if y.shape[0] == 0:
        raise InputError(f"{p}: empty audio file")
    if not np.isfinite(y).all():
        raise InputError(f"{p}: contains NaN or infinite samples")
    return y.mean(axis=1).astype(np.float32)
