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
