"""The PEMO-Q-like score: identical signals score 1, and it ranks a ladder of known degradations in order."""
from __future__ import annotations

import numpy as np
import pytest

from stylekit.errors import ConfigError
from stylekit.spectral.perceptual import degrade, erb_centres, internal_representation, pemo_score

SR = 32000      # above 16 kHz so that the 8 kHz low-pass removes something


def _note(seconds: float = 1.0, f0: float = 220.0) -> np.ndarray:
    """A harmonic note with partials up to 0.45 SR, a slight vibrato and a decay: broadband, like music."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * k * f0 * t * (1 + 0.003 * np.sin(2 * np.pi * 5 * t))) / k
            for k in range(1, int(0.45 * SR / f0)))
    return 0.3 * y * np.minimum(t / 0.02, 1) * np.exp(-t / 1.5) / np.abs(y).max()


def test_identical_signals_score_one_and_the_filterbank_spans_the_band():
    y = _note(0.5)
    s = pemo_score(y, y, SR)
    assert s.psm == pytest.approx(1.0) and s.psm_t == pytest.approx(1.0)
    fc = erb_centres(44100)
    assert (fc[0], fc[-1], len(fc)) == (pytest.approx(235.0), pytest.approx(14500.0), 35)  # PEMO-Q's channels
    assert erb_centres(16000)[-1] <= 0.45 * 16000 < erb_centres(44100)[len(erb_centres(16000))]
    ir = internal_representation(y, SR)
    assert ir.ndim == 3 and ir.shape[1] == len(erb_centres(SR)) == 34 and np.isfinite(ir).all()


def test_the_degradation_ladder_is_ranked_monotonically():
    y = _note()
    noise = [pemo_score(y, degrade(y, SR, "noise", snr), SR).psm for snr in (40, 30, 20, 10)]
    lowpass = [pemo_score(y, degrade(y, SR, "lowpass", fc), SR).psm for fc in (8000, 4000, 2000)]
    assert 1.0 > noise[0] > noise[1] > noise[2] > noise[3]
    assert 1.0 > lowpass[0] > lowpass[1] > lowpass[2]


def test_degradations_do_what_they_say():
    y = _note(0.5)
    n = degrade(y, SR, "noise", 20) - y
    assert 10 * np.log10(np.mean(y ** 2) / np.mean(n ** 2)) == pytest.approx(20.0, abs=1e-6)
    spec = np.abs(np.fft.rfft(degrade(y, SR, "lowpass", 2000)))
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f > 3000].max() < 1e-3 * spec.max()
    with pytest.raises(ConfigError):
        degrade(y, SR, "reverb", 1)
    with pytest.raises(ConfigError, match="differ in length"):
        pemo_score(y, y[:-1], SR)
