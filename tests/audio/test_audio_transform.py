"""The spectrogram transform: round trips, shapes and lengths, chunking, Griffin-Lim, network scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stylekit.audio.phase import griffin_lim, stft
from stylekit.audio.transform import (SpectrogramConfig, chunk_spans, content_phase, from_network,
                                      log_spectral_distance, mel_basis, mel_to_linear, overlap_add, prior_inverse,
                                      spectral_convergence, to_audio, to_network, to_spectrogram)
from stylekit.errors import ConfigError

from _audio_data import textureish, voiceish

LINEAR = SpectrogramConfig(kind="linear")
MEL = SpectrogramConfig()


def test_defaults_are_log_mel_with_documented_settings():
    c = SpectrogramConfig()
    assert (c.kind, c.sample_rate, c.n_fft, c.hop_length, c.n_mels) == ("mel", 22050, 2048, 512, 224)
    assert c.n_bins == 224 and LINEAR.n_bins == 1025


def test_default_mel_bands_are_independent_and_narrower_than_128():
    w = mel_basis(MEL).astype(np.float64)
    sv = np.linalg.svd(w, compute_uv=False)
    assert sv[0] / sv[-1] < 10                                  # well conditioned: the inverse is stable
    widths = (w > 0).sum(axis=1)
    w128 = mel_basis(SpectrogramConfig(n_mels=128)) > 0
    assert widths.min() >= 2 and widths.max() < w128.sum(axis=1).max()


@pytest.mark.parametrize("n_mels, n_fft, most", [(384, 2048, 304), (224, 1024, 144), (2000, 2048, 304)])
def test_more_mel_bands_than_the_stft_resolves_is_refused_with_the_limit(n_mels, n_fft, most):
    cfg = SpectrogramConfig(n_mels=n_mels, n_fft=n_fft, hop_length=256)
    with pytest.raises(ConfigError, match=f"n_mels={n_mels} .* use --n-mels {most} or fewer"):
        mel_basis(cfg)
    w = mel_basis(SpectrogramConfig(n_mels=most, n_fft=n_fft, hop_length=256)).astype(np.float64)
    sv = np.linalg.svd(w, compute_uv=False)
    assert sv[-1] > 1e-3 * sv[0]                                # the limit it names does work


@pytest.mark.parametrize("n", [2205, 2206, 22050, 22050 + 511])
@pytest.mark.parametrize("cfg", [MEL, LINEAR], ids=["mel", "linear"])
def test_shapes_and_exact_lengths(n, cfg):
    y = voiceish(n / 22050)[:n]
    spec = to_spectrogram(y, cfg)
    assert spec.shape == (cfg.n_bins, 1 + n // cfg.hop_length) == (cfg.n_bins, cfg.n_frames(n))
    assert spec.dtype == np.float32 and np.isfinite(spec).all()
    assert spec.min() >= np.log(cfg.log_floor) - 1e-5
    out = to_audio(spec, cfg, length=n)
    assert out.shape == (n,) and out.dtype == np.float32 and np.isfinite(out).all()


def test_linear_round_trip_meets_spectral_convergence_target_from_random_phase():
    y = voiceish(2.0)
    out = to_audio(to_spectrogram(y, LINEAR), LINEAR, length=len(y))   # seeded random start phase
    assert spectral_convergence(y, out, LINEAR) <= 0.15


def test_round_trip_from_own_phase_is_nearly_exact_for_linear():
    y = textureish(1.0)
    out = to_audio(to_spectrogram(y, LINEAR), LINEAR, length=len(y), init_phase=content_phase(y, LINEAR))
    assert spectral_convergence(y, out, LINEAR) < 0.01
    assert np.max(np.abs(out - y)) < 1e-3


def test_mel_round_trip_is_bounded_and_worse_than_linear():
    y = voiceish(2.0)
    mel = to_audio(to_spectrogram(y, MEL), MEL, length=len(y), init_phase=content_phase(y, MEL))
    lin = to_audio(to_spectrogram(y, LINEAR), LINEAR, length=len(y), init_phase=content_phase(y, LINEAR))
    lsd_mel, lsd_lin = log_spectral_distance(y, mel, MEL), log_spectral_distance(y, lin, MEL)
    assert lsd_lin < 0.5 < lsd_mel < 8.0
    # the mel spectrogram of the reconstruction matches the one it came from closely
    assert np.abs(to_spectrogram(mel, MEL) - to_spectrogram(y, MEL)).mean() < 0.5


def test_mel_inverse_is_consistent_and_nonnegative():
    y = textureish(0.5)
    m = np.exp(to_spectrogram(y, MEL)) - MEL.log_floor
    err = {}
    for how in ("pinv", "nnls"):
        cfg = SpectrogramConfig(mel_inverse=how)
        lin = mel_to_linear(m, cfg)
        assert lin.shape == (1025, m.shape[1]) and lin.min() >= 0
        err[how] = np.linalg.norm(mel_basis(cfg) @ lin - m) / np.linalg.norm(m)
    assert err["nnls"] <= err["pinv"] + 1e-6 and err["pinv"] < 0.05


def test_prior_inverse_gives_each_band_the_priors_fine_structure():
    """The prior inverse meets the mel spectrum like the pseudo-inverse, but inside each wide band the energy sits
    where the prior has it (a style's partials), not spread evenly; without a prior it is the pseudo-inverse."""
    cfg = SpectrogramConfig(mel_inverse="prior")
    w = mel_basis(cfg)
    y = textureish(0.5)
    m = np.exp(to_spectrogram(y, MEL)) - MEL.log_floor
    prior = np.full(1025, 1e-3, dtype=np.float32)
    prior[::12] = 1.0                                     # partials every 12 bins (about 130 Hz)
    lin = prior_inverse(m, cfg, prior)
    flat = mel_to_linear(m, SpectrogramConfig(mel_inverse="pinv"))
    assert lin.shape == flat.shape and lin.min() >= 0
    assert np.linalg.norm(w @ lin - m) / np.linalg.norm(m) < 0.05          # the mel spectrum is met
    hi = slice(408, 1020)                                 # 4.4-11 kHz, from a partial: bands 7-8 bins wide
    peaks, valleys = lin[hi][::12].mean(), lin[hi][6::12].mean()
    assert peaks > 30 * valleys                           # the prior's partials, sharp
    assert flat[hi][::12].mean() < 3 * flat[hi][6::12].mean()               # the pseudo-inverse: a hump
    # one prior per frame, the same prior repeated: the same result
    np.testing.assert_allclose(prior_inverse(m, cfg, np.repeat(prior[:, None], m.shape[1], 1)), lin, rtol=1e-4,
                               atol=1e-9)
    # a tensor in, a tensor out; no prior: the pseudo-inverse
    assert torch.is_tensor(mel_to_linear(torch.from_numpy(m), cfg, prior=torch.from_numpy(prior)))
    np.testing.assert_allclose(mel_to_linear(m, cfg), flat)
    with pytest.raises(ValueError, match="bins"):
        prior_inverse(m, cfg, prior[:100])


def test_mel_rows_average_magnitude():
    w = mel_basis(MEL)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    # a flat magnitude spectrum gives the same value in every band, as in the linear representation
    flat = np.full((1025, 3), 0.01, dtype=np.float32)
    np.testing.assert_allclose(w @ flat, 0.01, rtol=1e-4)


def test_fast_griffin_lim_beats_plain_griffin_lim_at_equal_iterations():
    y = voiceish(1.5)
    mag = stft(torch.from_numpy(y), n_fft=1024, hop_length=256).abs()
    fast = griffin_lim(mag, n_fft=1024, hop_length=256, length=len(y), n_iter=20, momentum=0.99)
    plain = griffin_lim(mag, n_fft=1024, hop_length=256, length=len(y), n_iter=20, momentum=0.0)
    cfg = SpectrogramConfig(kind="linear", n_fft=1024, hop_length=256)
    assert spectral_convergence(y, fast, cfg) < spectral_convergence(y, plain, cfg)


def test_griffin_lim_is_seeded():
    mag = torch.rand(513, 20)
    a = griffin_lim(mag, n_fft=1024, hop_length=256, length=5000, n_iter=3, seed=3)
    b = griffin_lim(mag, n_fft=1024, hop_length=256, length=5000, n_iter=3, seed=3)
    c = griffin_lim(mag, n_fft=1024, hop_length=256, length=5000, n_iter=3, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_network_scale_is_an_exact_inverse_pair():
    x = torch.from_numpy(to_spectrogram(voiceish(0.5), MEL))
    z = to_network(x, MEL)
    torch.testing.assert_close(from_network(z, MEL), x, rtol=0, atol=1e-5)
    assert float(z.min()) >= -1e-6 and float(z.max()) <= 1.0    # floor -> 0, full scale < 1


@pytest.mark.parametrize("kw", [dict(kind="cqt"), dict(mel_inverse="magic"), dict(hop_length=2048),
                                dict(log_floor=0.0), dict(fmin=20000.0), dict(momentum=1.0)])
def test_invalid_spectrogram_config(kw):
    with pytest.raises(ConfigError):
        SpectrogramConfig(**kw)


def test_chunk_spans_cover_with_exact_overlaps():
    assert chunk_spans(50, chunk=100, overlap=10) == [(0, 50)]
    spans = chunk_spans(1000, chunk=300, overlap=50)
    assert spans[0][0] == 0 and spans[-1][1] == 1000
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert b0 - a1 == 50 and b1 - a1 >= 101
    assert all(b - a <= 300 for a, b in spans[:-1])
    with pytest.raises(ConfigError):
        chunk_spans(1000, chunk=100, overlap=50)


def test_overlap_add_of_identical_pieces_is_lossless():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(1234).astype(np.float32)
    spans = chunk_spans(len(y), chunk=400, overlap=60)
    out = overlap_add([y[a:b] for a, b in spans], spans, len(y))
    np.testing.assert_allclose(out, y, atol=1e-5)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(min_value=2205, max_value=12000), f0=st.floats(min_value=80, max_value=2000),
       amp=st.floats(min_value=1e-3, max_value=0.9), seed=st.integers(0, 2 ** 16))
def test_property_round_trip_preserves_length_and_bounds_error(n, f0, amp, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 22050
    y = (amp * np.sin(2 * np.pi * f0 * t) + 0.05 * amp * rng.standard_normal(n)).astype(np.float32)
    cfg = SpectrogramConfig(kind="linear", n_fft=512, hop_length=128, griffin_lim_iters=12)
    spec = to_spectrogram(y, cfg)
    assert spec.shape[1] == cfg.n_frames(n)
    out = to_audio(spec, cfg, length=n, init_phase=content_phase(y, cfg))
    assert out.shape == (n,) and np.isfinite(out).all()
    assert spectral_convergence(y, out, cfg) < 0.05
    # from random phase the magnitude is still close: bounded error
    out2 = to_audio(spec, cfg, length=n, seed=seed)
    assert out2.shape == (n,) and spectral_convergence(y, out2, cfg) < 0.5


@settings(max_examples=6, deadline=None)
@given(n=st.integers(min_value=2205, max_value=9000), seed=st.integers(0, 2 ** 16))
def test_property_mel_round_trip_bounded(n, seed):
    y = textureish(n / 22050, seed=seed)[:n]
    cfg = SpectrogramConfig(n_mels=64, n_fft=1024, hop_length=256, griffin_lim_iters=8)
    spec = to_spectrogram(y, cfg)
    out = to_audio(spec, cfg, length=n, init_phase=content_phase(y, cfg))
    assert out.shape == (n,)
    back = to_spectrogram(out, cfg)
    assert back.shape == spec.shape and np.abs(back - spec).mean() < 1.0


def test_linear_to_mel_gives_the_log_mel_of_the_same_signal():
    from stylekit.audio.transform import LinearToMel

    y = voiceish(0.8)
    mel_cfg = SpectrogramConfig()
    lin_cfg = SpectrogramConfig(kind="linear")
    x = to_network(torch.from_numpy(to_spectrogram(y, lin_cfg))[None, None], lin_cfg)
    z = to_network(torch.from_numpy(to_spectrogram(y, mel_cfg))[None, None], mel_cfg)
    got = LinearToMel(mel_cfg)(x)
    assert got.shape == z.shape
    # exp(log(m + floor)) - floor loses a little at the floor only
    torch.testing.assert_close(got, z, atol=2e-4, rtol=0)


def test_tensor_inputs_stay_tensors_and_agree_with_arrays():
    y = voiceish(0.5)
    for cfg in (SpectrogramConfig(), SpectrogramConfig(kind="linear")):
        a = to_spectrogram(y, cfg)
        t = to_spectrogram(torch.from_numpy(y), cfg)
        assert torch.is_tensor(t) and isinstance(a, np.ndarray)
        np.testing.assert_allclose(t.numpy(), a, atol=1e-5)
        back_a = to_audio(a, cfg, length=len(y), init_phase=content_phase(y, cfg))
        back_t = to_audio(t, cfg, length=len(y), init_phase=content_phase(torch.from_numpy(y), cfg))
        np.testing.assert_allclose(back_t, back_a, atol=1e-5)


def test_mel_pseudo_inverse_does_not_depend_on_blas_threads():
    """L-BFGS amplifies last-bit differences of the mel pseudo-inverse into audible ones; it must be the same
    whatever OMP_NUM_THREADS says (a float32 SVD is not)."""
    import os
    import subprocess
    import sys

    code = ("import hashlib; from stylekit.audio.transform import SpectrogramConfig, MelProjection; "
            "print(hashlib.sha256(MelProjection(SpectrogramConfig()).w_pinv.numpy().tobytes()).hexdigest())")
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        digests.add(r.stdout.strip())
    assert len(digests) == 1
