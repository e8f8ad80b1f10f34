"""The words control (speech-envelope term), the content's own rate (full band) and its channels (upmix)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylekit.audio.config import SpectrogramConfig
from stylekit.audio.pipeline import stylize_audio
from stylekit.audio.stereo import channel_balance, upmix
from stylekit.audio.transform import row_frequencies, to_network, to_spectrogram
from stylekit.errors import ConfigError
from stylekit.losses.audio import SpeechEnvelopeLoss, band_envelopes, segment_correlation, speech_bands

from _audio_data import SR, textureish, voiceish

FAST = dict(steps=6, griffin_lim_iters=4, threads=1)


def test_speech_bands_are_stois_third_octaves():
    f = torch.linspace(0, 11025, 1025)
    b = speech_bands(f)
    assert b.shape == (15, 1025) and set(b.unique().tolist()) == {0.0, 1.0}
    assert (b.sum(0) <= 1).all()                        # the bands do not overlap
    lo = f[b[0].bool()].min().item()
    hi = f[b[-1].bool()].max().item()
    assert 130 <= lo <= 140 and 4200 <= hi <= 4310      # 150 * 2^(-1/6) .. 150 * 2^(14/3 + 1/6)
    assert len(speech_bands(torch.linspace(0, 3000, 200))) < 15     # above Nyquist: left out


def test_segment_correlation_analytic():
    x = torch.randn(2, 3, 40, dtype=torch.float64)
    assert torch.allclose(segment_correlation(x, 2 * x + 3, length=8), torch.ones(2, 3, 33, dtype=torch.float64))
    assert torch.allclose(segment_correlation(x, -x, length=8, step=4), -torch.ones(2, 3, 9, dtype=torch.float64))
    assert segment_correlation(x, torch.zeros_like(x), length=8).abs().max() == 0      # constant: 0


def _content_z(cfg: SpectrogramConfig) -> torch.Tensor:
    return to_network(torch.from_numpy(to_spectrogram(voiceish(1.0), cfg))[None, None], cfg)


def test_speech_envelope_loss_is_blind_to_level_and_sees_timing():
    cfg = SpectrogramConfig()
    z = _content_z(cfg)
    basis = speech_bands(torch.from_numpy(row_frequencies(cfg)))
    span, lo = np.log(cfg.ref) - np.log(cfg.log_floor), np.log(cfg.log_floor)
    loss = SpeechEnvelopeLoss(z, basis=basis, span=span, offset=lo, segment=16)
    assert loss(z).item() == pytest.approx(0, abs=1e-4)
    assert loss(z + 0.05).item() == pytest.approx(0, abs=1e-4)        # a gain: the level is the style's
    assert loss(z.flip(-1)).item() > 0.3                               # the words' timing is not
    # the Module is the functions: correlation of the band envelopes over the content's active frames
    e = loss._envelopes(z.flip(-1))
    t = loss._envelopes(z)
    assert loss(z.flip(-1)).item() == pytest.approx((1 - segment_correlation(e, t, length=16)).mean().item(), rel=1e-5)
    z.requires_grad_(True)
    loss(z * 0.9).backward()
    assert torch.isfinite(z.grad).all()


def _speech_score(result, content) -> float:
    """Mean correlation of the speech-band envelopes of result and content (a STOI-like figure)."""
    cfg = SpectrogramConfig()
    basis = speech_bands(torch.from_numpy(row_frequencies(cfg)))
    env = [band_envelopes(to_network(torch.from_numpy(to_spectrogram(y, cfg))[None, None], cfg), basis=basis,
                          span=np.log(1e5), offset=np.log(1e-5)) for y in (result, content)]
    return float(segment_correlation(env[0], env[1], length=16).mean())


def test_words_trades_texture_for_words():
    content, style = (voiceish(1.0), SR), (textureish(1.0), SR)
    scores = {w: _speech_score(stylize_audio(content, style, words=w, **{**FAST, "steps": 15}).working, content[0])
              for w in (0.0, 0.5, 1.0)}
    assert scores[0.0] + 0.2 < scores[0.5] < scores[1.0]
    assert scores[1.0] > 0.9           # words=1: the style terms are off and the content comes back
    with pytest.raises(ConfigError, match="words"):
        stylize_audio(content, style, words=1.5, **FAST)


def test_at_rate_keeps_durations_and_band_resolution():
    cfg = SpectrogramConfig()
    assert cfg.at_rate(22050) is cfg
    c44 = cfg.at_rate(44100)
    assert (c44.sample_rate, c44.n_fft, c44.hop_length) == (44100, 4096, 1024)
    assert c44.n_mels > cfg.n_mels
    f22, f44 = row_frequencies(cfg), row_frequencies(c44)
    assert np.allclose(f44[:100], f22[:100], rtol=0.02)                    # the same bands below 11 kHz
    assert f44[-1] > 20000


def test_full_band_keeps_energy_above_11_khz():
    sr = 44100
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    style = (0.2 * rng.standard_normal(sr) + 0.2 * np.sin(2 * np.pi * 14000 * t)).astype(np.float32)   # bright
    content = (voiceish(1.0, sr=sr), sr)
    def high(y):
        p = np.abs(np.fft.rfft(y)) ** 2
        f = np.fft.rfftfreq(len(y), 1 / sr)
        return 10 * np.log10(p[f > 11500].sum() / p.sum())
    full = stylize_audio(content, (style, sr), **{**FAST, "steps": 15})
    narrow = stylize_audio(content, (style, sr), full_band=False, **FAST)
    assert full.sample_rate == narrow.sample_rate == sr and full.spectrogram.sample_rate == sr
    assert high(full.data) > -30 and high(narrow.data) < -40


def _flatness(y: np.ndarray, lo: float = 2500, hi: float = 8000) -> float:
    """Spectral flatness of the mean STFT power between ``lo`` and ``hi`` Hz: 1 for noise, near 0 for partials."""
    s = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(y, 2048)[::512] * np.hanning(2048))).mean(0)
    f = np.fft.rfftfreq(2048, 1 / SR)
    band = s[(f > lo) & (f < hi)] ** 2
    return float(np.exp(np.log(band + 1e-20).mean()) / band.mean())


def test_the_result_has_the_styles_partials_where_mel_bands_are_wide():
    """Above 2.5 kHz a mel band spans several STFT bins; the default inversion gives the result the partials of
    the style (a harmonic series on 440 Hz), where the pseudo-inverse gives each band a flat hump."""
    t = np.arange(SR) / SR
    style = (sum(np.sin(2 * np.pi * 440 * k * t + k) for k in range(1, 21)) / 20).astype(np.float32)
    kw = {**FAST, "steps": 20}
    prior = stylize_audio((voiceish(1.0), SR), (style, SR), **kw)
    pinv = stylize_audio((voiceish(1.0), SR), (style, SR), mel_inverse="pinv", **kw)
    assert prior.spectrogram.mel_inverse == "prior"
    assert _flatness(style) < 0.01 < _flatness(prior.data) < 0.5 * _flatness(pinv.data)


def test_style_frames_for_the_inversion_are_bounded(monkeypatch):
    """The style frames kept for the fine structure: every frame of a short style, evenly spaced ones of a long
    one (bounded memory), none for a linear spectrogram (it has no mel bands to fill)."""
    import stylekit.audio.pipeline as pipeline
    style = (textureish(1.0), SR)
    t = pipeline.style_targets(style, **FAST)
    frames = t.spectrograms[0].shape[-1]
    assert t.fine.shape == (1025, frames) and t.fine_keys.shape == (224, frames)
    assert torch.allclose(t.fine_keys.norm(dim=0), torch.ones(frames), atol=1e-4)
    monkeypatch.setattr(pipeline, "_FINE_FRAMES", 8)
    short = pipeline.style_targets(style, **FAST)
    assert short.fine.shape == (1025, 8)
    assert torch.equal(short.fine[:, 0], t.fine[:, 0]) and torch.equal(short.fine[:, -1], t.fine[:, -1])
    assert pipeline.style_targets(style, kind="linear", **FAST).fine is None


def test_upmix_restores_pan_and_width():
    rng = np.random.default_rng(1)
    mono = textureish(1.0)
    same = np.stack([mono, mono], 1)
    assert np.allclose(upmix(mono, same, n_fft=512, hop_length=128), same, atol=1e-4)       # mono stays mono
    left = np.stack([0.9 * mono, 0.3 * mono], 1)
    shares, corr = channel_balance(upmix(mono, left, n_fft=512, hop_length=128))
    assert shares[0] == pytest.approx(0.9, abs=0.01) and corr > 0.99
    wide = rng.standard_normal((SR, 2)).astype(np.float32)
    assert abs(channel_balance(upmix(mono, wide, n_fft=512, hop_length=128))[1]) < 0.05    # mono upmix: 1
    half = (0.6 * np.stack([mono, mono], 1) / mono.std() + 0.4 * wide).astype(np.float32)   # correlation 0.69
    assert channel_balance(half)[1] - 0.02 < channel_balance(upmix(half.mean(1), half, n_fft=512,
                                                                      hop_length=128))[1] < 0.8
    whole = upmix(mono, left, n_fft=512, hop_length=128)
    assert np.allclose(upmix(mono, left, n_fft=512, hop_length=128, chunk=8192), whole, atol=0.02 * np.abs(whole).max())


def test_style_targets_made_once_serve_contents_at_any_rate():
    """A batch computes the style targets once; a content at another rate gets them made again at its rate, from
    the styles' own samples, and the result is the one of a run given the styles themselves."""
    from stylekit.audio.pipeline import style_targets
    style = (textureish(0.8, sr=44100), 44100)
    targets = style_targets(style, **FAST)
    for sr in (22050, 44100):
        content = (voiceish(0.6, sr=sr), sr)
        via_targets = stylize_audio(content, targets, **FAST)
        direct = stylize_audio(content, style, **FAST)
        assert via_targets.sample_rate == sr and np.allclose(via_targets.data, direct.data, atol=1e-5)
    assert set(targets.by_rate) == {44100}          # 22,050 Hz: the targets as made; 44.1 kHz: made once more
