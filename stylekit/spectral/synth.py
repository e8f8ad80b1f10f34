"""Render an NSynth-format data set of single notes with FluidSynth.

Each *instrument* is one General MIDI program played by one soundfont. Every note is held for 3 s and released
for 1 s, and stored as 4 s of mono 16-bit PCM at 16 kHz in ``nsynth-<split>/audio/<note_str>.wav`` with an
``examples.json`` carrying NSynth's fields. Splits are by instrument: no instrument is in two splits.

Deviations from NSynth, all deliberate:

* ``instrument_family`` comes from the GM program group (:func:`gm_family`), e.g. programs 0-7 (piano) are
  ``keyboard``; sound effects (120-127) are refused.
* ``instrument_source`` names the *soundfont* (first soundfont = ``acoustic``, second = ``electronic``, third =
  ``synthetic``), so that two renderings of one program are two instruments. It is a provenance label, not
  NSynth's acoustic/electronic/synthetic judgement.
* ``qualities`` are all 0: they are human annotations in NSynth and cannot be derived here.
* Notes that render silent (peak below -60 dBFS, e.g. outside a sample's key range) are dropped.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import ConfigError, InputError, StylekitError
from .config import DEFAULT_SOUNDFONTS, FAMILIES, SOURCES, SPLITS, SynthConfig, gm_family, parse_int_list
from .nsynth import split_dir

__all__ = ["SynthConfig", "SynthReport", "gm_family", "parse_int_list", "synthesize", "DEFAULT_SOUNDFONTS",
           "QUALITIES"]

QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced")
_SAMPLE_RATE = 16000
_HOLD_S, _RELEASE_S, _GAP_S = 3.0, 1.0, 1.0
_SILENT_PEAK = 10 ** (-60 / 20)


@dataclass
class SynthReport:
    """What :func:`synthesize` wrote: notes per split, instruments per split, and dropped silent notes.

    Examples
    --------
    >>> SynthReport(notes={"train": 12}).notes["train"]
    12
    """

    notes: dict[str, int] = field(default_factory=dict)
    instruments: dict[str, list[str]] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _midi_file(program: int, notes: Sequence[tuple[int, int]], slot_ms: int) -> bytes:
    """A format-0 standard MIDI file playing ``notes`` one per slot, with 1 tick = 1 ms.

    Hand-written (about 20 lines) rather than adding a MIDI library dependency: it only needs note on/off,
    program change and all-sound-off.
    """
    hold, release = int(_HOLD_S * 1000), int(_RELEASE_S * 1000)
    ev = bytearray(_vlq(0) + bytes([0xFF, 0x51, 3]) + (1_000_000).to_bytes(3, "big"))  # 1 beat = 1 s
    ev += _vlq(0) + bytes([0xC0, program])
    rest = 0
    for pitch, vel in notes:
        ev += _vlq(rest) + bytes([0x90, pitch, vel])
        ev += _vlq(hold) + bytes([0x80, pitch, 0])
        ev += _vlq(release) + bytes([0xB0, 120, 0])  # all sound off: no tail leaks into the next slot
        rest = slot_ms - hold - release
    ev += _vlq(rest) + bytes([0xFF, 0x2F, 0])
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(ev)) + bytes(ev))


def _render(soundfont: str, program: int, notes: Sequence[tuple[int, int]], gain: float) -> list[np.ndarray]:
    """Render ``notes`` of one instrument in one FluidSynth run; returns one 4 s float array per note."""
    from ..audio.io import read_audio
    slot = int((_HOLD_S + _RELEASE_S + _GAP_S) * 1000)
    n = int((_HOLD_S + _RELEASE_S) * _SAMPLE_RATE)
    with tempfile.TemporaryDirectory(prefix="stylekit-synth-") as tmp:
        mid, wav = Path(tmp) / "notes.mid", Path(tmp) / "notes.wav"
        mid.write_bytes(_midi_file(program, notes, slot))
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain), "-r", str(_SAMPLE_RATE),
               "-T", "wav", "-O", "float", "-F", str(wav), soundfont, str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not wav.is_file() or "failed to load" in (proc.stderr or "").lower():
            raise StylekitError(f"fluidsynth failed on {soundfont} program {program}: "
                                f"{(proc.stderr or proc.stdout).strip()[:200]}")
        y, _ = read_audio(wav, dtype="float32", fallback=False)
    y = y.mean(axis=1)
    step = slot * _SAMPLE_RATE // 1000
    out = []
    for i in range(len(notes)):
        seg = y[i * step:i * step + n]
        out.append(np.pad(seg, (0, n - len(seg))))
    return out


def _check_soundfont(sf2: Path) -> None:
    """Refuse a soundfont FluidSynth could not load: it would then render with whatever soundfont its own
    settings name, and the data set would silently hold other instruments."""
    if not sf2.is_file():
        raise InputError(f"{sf2}: soundfont not found (Debian: apt-get install fluid-soundfont-gm "
                         "timgm6mb-soundfont)")
    try:
        with open(sf2, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise InputError(f"{sf2}: cannot read the soundfont ({e.strerror})") from None
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise InputError(f"{sf2}: not a SoundFont 2 file (no RIFF sfbk header)")


def _prepare(out: Path, cfg: SynthConfig, jobs: int, overwrite: bool) -> None:
    """Check the tools, soundfonts and output folder, and make the empty split folders."""
    for sf2 in cfg.soundfonts:
        _check_soundfont(Path(sf2))
        if any(Path(os.path.abspath(sf2)).is_relative_to(os.path.abspath(split_dir(out, s))) for s in SPLITS):
            raise ConfigError(f"{sf2}: the soundfont lies in the data set's folders, which this run replaces")
    if shutil.which("fluidsynth") is None:
        raise ConfigError("fluidsynth not found; install it (Debian: apt-get install fluidsynth)")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        d = split_dir(out, split)
        if d.exists():
            if not overwrite:
                raise ConfigError(f"{d}: already exists (use --overwrite to replace it)")
            shutil.rmtree(d)


def _splits(cfg: SynthConfig, instruments: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """The split of each instrument: a seeded shuffle, then the first test, the next valid, the rest train."""
    order = list(instruments)
    random.Random(cfg.seed).shuffle(order)
    n = len(order)
    n_test = max(1, round(cfg.test_fraction * n)) if cfg.test_fraction > 0 else 0
    n_valid = max(1, round(cfg.valid_fraction * n)) if cfg.valid_fraction > 0 else 0
    return {inst: ("test" if i < n_test else "valid" if i < n_test + n_valid else "train")
            for i, inst in enumerate(order)}


def _example(note_id: int, note_str: str, inst_str: str, src: int, prog: int, pitch: int, vel: int,
             family: str) -> dict:
    """One note's entry in ``examples.json``, in NSynth's fields."""
    return {"note": note_id, "note_str": note_str, "instrument": src * 128 + prog, "instrument_str": inst_str,
            "pitch": pitch, "velocity": vel, "sample_rate": _SAMPLE_RATE, "qualities": [0] * len(QUALITIES),
            "qualities_str": [], "instrument_family": FAMILIES.index(family), "instrument_family_str": family,
            "instrument_source": src, "instrument_source_str": SOURCES[src]}


def synthesize(out_dir: str | os.PathLike, cfg: SynthConfig, *, jobs: int = 1, overwrite: bool = False,
               progress: Callable[[int], None] | None = None) -> SynthReport:
    """Render ``cfg``'s notes into ``out_dir`` in NSynth's layout.

    Parameters
    ----------
    out_dir : path
        Created if missing; must not already hold ``nsynth-*`` folders unless ``overwrite``.
    cfg : SynthConfig
    jobs : int
        FluidSynth processes run in parallel (one instrument each).
    overwrite : bool
        Replace an existing data set in ``out_dir``.
    progress : callable, optional
        Called with the number of notes just finished (for a progress bar).

    Returns
    -------
    SynthReport

    Examples
    --------
    Needs FluidSynth and a General MIDI soundfont (``apt-get install fluidsynth fluid-soundfont-gm``):

    >>> import shutil, tempfile
    >>> from stylekit.spectral.config import SynthConfig
    >>> if shutil.which("fluidsynth"):
    ...     report = synthesize(tempfile.mkdtemp(), SynthConfig(programs=(0, 24, 40), pitches=(60,), velocities=(100,),
    ...                                                          soundfonts=SynthConfig().soundfonts[:1]))
    ...     assert sum(report.notes.values()) == 3 and set(report.notes) == {"train", "valid", "test"}
    """
    out = Path(out_dir)
    _prepare(out, cfg, jobs, overwrite)
    try:
        return _render_all(out, cfg, jobs, progress)
    except BaseException:
        # a failure (a full disk, Ctrl-C) leaves no half data set that a later run would take for a whole one
        for split in SPLITS:
            shutil.rmtree(split_dir(out, split), ignore_errors=True)
        raise


def _render_all(out: Path, cfg: SynthConfig, jobs: int, progress) -> SynthReport:
    """Render every note into the prepared (empty) ``out`` and write each split's examples.json."""
    from ..audio.io import write_audio

    instruments = [(s, p) for s in range(len(cfg.soundfonts)) for p in cfg.programs]
    split_of = _splits(cfg, instruments)
    for split in SPLITS:
        (split_dir(out, split) / "audio").mkdir(parents=True)

    notes = [(p, v) for p in cfg.pitches for v in cfg.velocities]
    report = SynthReport(notes={s: 0 for s in SPLITS}, instruments={s: [] for s in SPLITS})
    examples: dict[str, dict[str, dict]] = {s: {} for s in SPLITS}

    def work(inst: tuple[int, int]) -> tuple[tuple[int, int], list[np.ndarray]]:
        src, prog = inst
        return inst, _render(cfg.soundfonts[src], prog, notes, cfg.gain)

    note_id = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (src, prog), audios in pool.map(work, instruments):  # map keeps the order: ids are deterministic
            family = gm_family(prog)
            inst_str = f"{family}_{SOURCES[src]}_{prog:03d}"
            split = split_of[(src, prog)]
            report.instruments[split].append(inst_str)
            for (pitch, vel), y in zip(notes, audios):
                note_str = f"{inst_str}-{pitch:03d}-{vel:03d}"
                if np.abs(y).max() < _SILENT_PEAK:
                    report.silent.append(note_str)
                    continue
                write_audio(split_dir(out, split) / "audio" / f"{note_str}.wav", np.clip(y, -1.0, 1.0), _SAMPLE_RATE)
                examples[split][note_str] = _example(note_id, note_str, inst_str, src, prog, pitch, vel, family)
                note_id += 1
                report.notes[split] += 1
            if progress is not None:
                progress(len(notes))
    for split in SPLITS:
        text = json.dumps(examples[split], indent=1, sort_keys=True)
        atomic_write(split_dir(out, split) / "examples.json", lambda t, text=text: t.write_text(text))
    return report
