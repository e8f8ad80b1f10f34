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

__all__ = ["FAMILIES", "SOURCES", "SPLITS", "NSynthNote", "split_dir", "read_split", "filter_notes",
           "load_audio", "NOTE_SECONDS"]

NOTE_SECONDS = 4.0

_REQUIRED = {"note": int, "note_str": str, "instrument": int, "instrument_str": str, "pitch": int,
             "velocity": int, "sample_rate": int, "instrument_family": int, "instrument_family_str": str,
             "instrument_source": int, "instrument_source_str": str}


@dataclass(frozen=True)
class NSynthNote:
    """One note record of ``examples.json`` plus the path of its WAV file."""

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


def split_dir(root: str | os.PathLike, split: str) -> Path:
    """``root/nsynth-<split>``; ``split`` must be one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(root) / f"nsynth-{split}"


def read_split(root: str | os.PathLike, split: str, *, check_files: bool = True) -> list[NSynthNote]:
    """Read one split's ``examples.json``.

    Parameters
    ----------
    root : path
        Folder holding ``nsynth-train``, ``nsynth-valid``, ``nsynth-test``.
    split : {"train", "valid", "test"}
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
    """
    d = split_dir(root, split)
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
        wav = d / "audio" / f"{key}.wav"
        if check_files and not wav.is_file():
            raise InputError(f"{wav}: missing WAV file listed in {path}")
        notes.append(NSynthNote(**{k: rec[k] for k in _REQUIRED}, qualities=tuple(rec.get("qualities", ())),
                                qualities_str=tuple(rec.get("qualities_str", ())), path=wav))
    return notes


def filter_notes(notes: Iterable[NSynthNote], *, families: Sequence[str] | None = None,
                 sources: Sequence[str] | None = None, pitches: Sequence[int] | None = None,
                 velocities: Sequence[int] | None = None) -> list[NSynthNote]:
    """Keep the notes whose family, source, pitch and velocity are in the given sets (``None`` keeps all)."""
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


def load_audio(path: str | os.PathLike, *, sample_rate: int) -> np.ndarray:
    """Read a mono WAV file as float32 in [-1, 1].

    Multi-channel files are averaged to mono. A file at a rate other than ``sample_rate`` is refused (an
    :class:`InputError` naming the file) rather than silently resampled, since the models' STFT config fixes
    the rate.

    Returns
    -------
    ndarray, shape (n_samples,), float32
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
