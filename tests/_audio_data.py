"""Synthetic audio for the audio tests, generated on the fly (nothing downloaded or committed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


def voiceish(seconds: float, *, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: harmonic 'syllables' with a gliding pitch, separated by short gaps."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    syll = 0.5 - 0.5 * np.cos(2 * np.pi * 3.1 * t)        # ~3 syllables per second
    gate = (np.sin(2 * np.pi * 0.9 * t + 1.0) > -0.6)       # gaps between 'words'
    y = y * syll * gate
    return (0.3 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)


def textureish(seconds: float, *, sr: int = SR, seed: int = 1) -> np.ndarray:
    """A texture-like test signal: band-passed noise plus a steady chord."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    noise = np.convolve(rng.standard_normal(n), np.hanning(9), mode="same")
    chord = sum(np.sin(2 * np.pi * f * t) for f in (330.0, 415.0, 494.0))
    y = 0.3 * noise / np.abs(noise).max() + 0.2 * chord / 3
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    sf.write(str(path), y, sr, subtype=subtype)
    return path


def run(*args):
    """``stylekit audio ARGS`` through click's CliRunner."""
    from click.testing import CliRunner

    from stylekit.cli import cli
    return CliRunner().invoke(cli, ["audio", *map(str, args)], catch_exceptions=False)


def one_line_error(result, name=None):
    """Assert exit code 2 with exactly one ``error: ...`` line and no traceback (naming ``name`` if given)."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    if name is not None:
        assert str(name) in lines[0]
    return lines[0]
