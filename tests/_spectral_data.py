"""Tiny NSynth-format data set for the spectral tests, rendered once per session with FluidSynth.

Four instruments (GM programs 0 and 40, each with the two Debian soundfonts), three pitches, one velocity:
12 notes in about a second. Needs the Debian packages fluidsynth, fluid-soundfont-gm and timgm6mb-soundfont.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylekit.spectral.synth import SynthConfig, synthesize

TINY = SynthConfig(programs=(0, 40), pitches=(48, 60, 72), velocities=(100,), seed=0)


def make_tiny_dataset(root: Path) -> Path:
    """Render :data:`TINY` into ``root`` and return it."""
    synthesize(root, TINY, jobs=2)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second torch thread only adds contention on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def segments(n: int = 24, t: int = 8, seed: int = 0, bins: int = 33):
    """Low-rank "spectra" in [0, 1], shape (n, t, bins): smooth bumps with random centres and heights."""
    import torch
    g = torch.Generator().manual_seed(seed)
    b = torch.arange(bins, dtype=torch.float32)
    c = torch.rand(n, t, 1, generator=g) * bins
    h = torch.rand(n, t, 1, generator=g)
    return (0.2 + 0.7 * h * torch.exp(-((b - c) / 4) ** 2)).clamp(0, 1)


#: NSynth records exactly as NSynth ships them (``examples.json`` keys, field names, value types and key order,
#: ``<instrument_str>-<pitch>-<velocity>`` names, the three split folders); the audio is made by
#: :func:`make_nsynth_fixture`, so no WAV is committed.
NSYNTH_FIXTURE = Path(__file__).parent / "spectral" / "nsynth_fixture"


def nsynth_tone(pitch: int, velocity: int, *, seconds: float = 4.0, sr: int = 16000):
    """A 4 s harmonic note at MIDI ``pitch``, louder with ``velocity``: held 3 s, released over 1 s."""
    import numpy as np
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12) if k * f0 < 0.45 * sr)
    env = np.minimum(t / 0.01, 1.0) * np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) / 0.15))
    return (0.5 * velocity / 127 * env * y / np.abs(y).max()).astype("float32")


def make_nsynth_fixture(root: Path) -> Path:
    """Copy the NSynth-format fixture into ``root`` and write each record's audio (16 kHz mono 16-bit PCM,
    64,000 samples, as NSynth's) under ``nsynth-<split>/audio/<note_str>.wav``."""
    import json
    import shutil

    import soundfile as sf
    for split in ("train", "valid", "test"):
        d = root / f"nsynth-{split}"
        (d / "audio").mkdir(parents=True)
        shutil.copy(NSYNTH_FIXTURE / f"nsynth-{split}" / "examples.json", d / "examples.json")
        for key, rec in json.loads((d / "examples.json").read_text()).items():
            sf.write(d / "audio" / f"{key}.wav", nsynth_tone(rec["pitch"], rec["velocity"]), 16000,
                     subtype="PCM_16")
    return root
