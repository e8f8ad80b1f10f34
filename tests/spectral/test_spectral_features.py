"""Spectral features: analytic levels, invertibility with a known phase, Griffin-Lim convergence."""
from __future__ import annotations

import numpy as np
import pytest

from stylekit.errors import ConfigError
from stylekit.spectral.features import (SpectralSTFTConfig, features_to_db, stft_phase, to_audio,
                                        to_features)

SR = 16000


def _sine(freq: float, amp: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_shapes_and_range():
    cfg = SpectralSTFTConfig()
    x = to_features(_sine(440, 0.3, 4.0), cfg)
    assert x.shape == (1 + 64000 // 256, 513)
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("amp", [1.0, 0.5, 0.1])
def test_sine_level_is_analytic(amp):
    # A bin-centred sine of amplitude a has |STFT| / sum(window) = a / 2 at its bin: 20 log10(a / 2) dB.
    cfg = SpectralSTFTConfig()
    freq = 64 * SR / cfg.n_fft  # exactly bin 64
    x = to_features(_sine(freq, amp), cfg)
    db = features_to_db(x, cfg)[5:-5, 64]
    np.testing.assert_allclose(db, 20 * np.log10(amp / 2), atol=0.01)


def test_silence_is_floor():
    cfg = SpectralSTFTConfig(top_db=60)
    x = to_features(np.zeros(4000, np.float32), cfg)
    assert np.all(x == 0) and np.all(features_to_db(x, cfg) == -60)


def test_round_trip_with_known_phase_is_exact():
    cfg = SpectralSTFTConfig(top_db=300)  # a floor far below float32 noise: only the STFT pair remains
    rng = np.random.default_rng(0)
    y = np.clip(0.2 * rng.standard_normal(8000), -0.9, 0.9).astype(np.float32)
    y_hat = to_audio(to_features(y, cfg), cfg, phase=stft_phase(y, cfg), length=len(y))
    np.testing.assert_allclose(y_hat, y, atol=1e-4)


def test_griffin_lim_recovers_magnitudes_and_is_seeded():
    cfg = SpectralSTFTConfig(griffin_lim_iters=32)
    y = _sine(440, 0.3) + _sine(880, 0.15) + _sine(1320, 0.05)
    x = to_features(y, cfg)
    y1 = to_audio(x, cfg, length=len(y), seed=1)
    y2 = to_audio(x, cfg, length=len(y), seed=1)
    np.testing.assert_array_equal(y1, y2)
    # Compare levels where the tone has energy (above -40 dB): Griffin-Lim should be within ~1 dB there.
    xr = to_features(y1, cfg)
    mask = features_to_db(x, cfg) > -40
    err = np.abs(features_to_db(xr, cfg) - features_to_db(x, cfg))[mask]
    assert np.median(err) < 1.0


def test_config_validation_and_dict_round_trip():
    with pytest.raises(ConfigError):
        SpectralSTFTConfig(n_fft=1023)
    with pytest.raises(ConfigError):
        SpectralSTFTConfig(hop_length=0)
    with pytest.raises(ConfigError):
        SpectralSTFTConfig.from_dict({"n_fft": 512, "bogus": 1})
    cfg = SpectralSTFTConfig(n_fft=512, hop_length=128)
    assert SpectralSTFTConfig.from_dict(cfg.to_dict()) == cfg and cfg.n_bins == 257
    with pytest.raises(ConfigError):
        to_audio(np.zeros((3, 100), np.float32), cfg)
