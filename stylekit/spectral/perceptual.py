"""A PEMO-Q-like perceptual similarity score (after Huber & Kollmeier, 2006).

PEMO-Q compares the *internal representations* that an auditory model makes of a reference and a test signal.
The stages here follow the paper's model (Dau, Kollmeier & Kohlrausch, 1997):

1. **gammatone filterbank**: 35 4th-order gammatone filters from 235 Hz to 14.5 kHz, equally spaced on the
   ERB scale (those above 0.9 x Nyquist are left out), designed by :func:`scipy.signal.gammatone`;
2. **envelope**: half-wave rectification and a 1 kHz first-order low-pass, then decimation to
   :data:`ENV_RATE` Hz;
3. **adaptation**: five non-linear feedback loops (time constants 5, 50, 129, 253 and 500 ms), which compress
   stationary parts roughly logarithmically and emphasise onsets;
4. **modulation filterbank**: a 2.5 Hz low-pass, resonators at 5 and 10 Hz (5 Hz wide), then resonators with
   Q = 2 spaced by 5/3 up to a quarter of the envelope rate; above 10 Hz only the Hilbert envelope of a band
   is kept (its phase carries no information the ear uses);
5. **comparison**: *partial assimilation* (where the test's representation is smaller than the reference's,
   it is replaced by the mean of the two: missing components disturb less than added ones), then the
   correlation of the two representations per modulation channel, weighted by the reference's share of the
   variance in that channel: **PSM**, in [-1, 1], 1 = identical. **PSM_t** is the same correlation in 10 ms
   frames, of which the 5th percentile is taken over the frames that carry sound.

Notes
-----
Differences from PEMO-Q, all to keep it small and dependency-free: no outer/middle-ear filter; no overshoot
limitation in the adaptation loops; the modulation filters stop at ``ENV_RATE / 4`` (500 Hz, PEMO-Q goes to
1 kHz); PSM_t weights every sounding frame equally instead of by a moving average of the test signal's level;
no mapping to ODG. Signals are taken as full scale = 100 dB SPL. The gammatone filters come from SciPy (a
well-kept library already required; the ``gammatone`` package on PyPI designs the same Slaney filters but would
be one more dependency); the envelope, adaptation and modulation stages are written here because no
maintained PyPI package provides PEMO-Q's model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["PemoScore", "pemo_score", "internal_representation", "erb_centres", "ENV_RATE", "degrade"]

#: Rate (Hz) of the envelopes after stage 2.
ENV_RATE = 2000
_TAUS = (0.005, 0.050, 0.129, 0.253, 0.500)
_FLOOR = 1e-5
_FULL_SCALE_PA = 2.0            # 100 dB SPL re 20 uPa


@dataclass(frozen=True)
class PemoScore:
    """``psm``: overall correlation of the internal representations; ``psm_t``: 5th percentile of the 10 ms
    frame correlations. Both in [-1, 1], 1 = no audible difference.

    Examples
    --------
    >>> PemoScore(psm=0.98, psm_t=0.9).psm
    0.98
    """

    psm: float
    psm_t: float


def erb_centres(sample_rate: int, *, lo: float = 235.0, hi: float = 14500.0, n: int = 35) -> np.ndarray:
    """PEMO-Q's centre frequencies (Hz): ``n`` channels equally spaced on the ERB-rate scale (Glasberg & Moore
    1990) from ``lo`` to ``hi`` (about 0.95 ERB apart), keeping those below ``0.45 * sample_rate``.

    Examples
    --------
    >>> centres = erb_centres(16000)
    >>> len(centres), round(float(centres[0])), bool((np.diff(centres) > 0).all())   # up to 8 kHz at 16 kHz
    (28, 235, True)
    """
    rate = lambda f: 21.4 * np.log10(1 + 0.00437 * f)              # noqa: E731
    inv = lambda e: (10 ** (e / 21.4) - 1) / 0.00437                 # noqa: E731
    fc = inv(np.linspace(rate(lo), rate(hi), n))
    fc = fc[fc < 0.45 * sample_rate]
    if len(fc) < 2:
        raise ConfigError(f"sample rate {sample_rate} Hz is too low for the gammatone filterbank")
    return fc


def _gammatone(y: np.ndarray, sample_rate: int) -> np.ndarray:
    from scipy.signal import gammatone, lfilter
    out = []
    for fc in erb_centres(sample_rate):
        b, a = gammatone(fc, "iir", fs=sample_rate)
        out.append(lfilter(b, a, y))
    return np.stack(out)                                              # (channels, samples)


def _envelope(bands: np.ndarray, sample_rate: int) -> np.ndarray:
    from scipy.signal import lfilter, resample_poly
    env = np.maximum(bands, 0.0)
    k = np.exp(-2 * np.pi * 1000.0 / sample_rate)
    env = lfilter([1 - k], [1, -k], env, axis=-1)
    g = np.gcd(int(sample_rate), ENV_RATE)
    return np.maximum(resample_poly(env, ENV_RATE // g, int(sample_rate) // g, axis=-1), 0.0)


def _adapt_loops(env: np.ndarray, coeffs: np.ndarray, floor: float) -> np.ndarray:
    # Dau et al. (1996): each loop divides by a low-passed copy of its own output.
    n_ch, n = env.shape
    state = np.empty((len(coeffs), n_ch))
    for i in range(len(coeffs)):
        state[i] = floor ** (1.0 / 2 ** (i + 1))
    out = np.empty_like(env)
    for t in range(n):
        x = np.maximum(env[:, t], floor)
        for i in range(len(coeffs)):
            x = x / state[i]
            state[i] = coeffs[i] * state[i] + (1 - coeffs[i]) * x
        out[:, t] = x
    return out


_ADAPT = None


def _adaptation(env: np.ndarray) -> np.ndarray:
    """The five adaptation loops; compiled with numba (already a dependency of librosa) when it imports."""
    global _ADAPT
    if _ADAPT is None:
        try:
            from numba import njit
            _ADAPT = njit(cache=False)(_adapt_loops)
        except ImportError:             # the plain loop gives the same numbers, only slower
            _ADAPT = _adapt_loops
    coeffs = np.exp(-1.0 / (np.array(_TAUS) * ENV_RATE))
    return _ADAPT(np.ascontiguousarray(env, dtype=np.float64), coeffs, _FLOOR)


def _mod_centres() -> list[float]:
    fcs, f = [5.0, 10.0], 10.0
    while f * 5 / 3 <= ENV_RATE / 4:
        f *= 5 / 3
        fcs.append(f)
    return fcs


def _modulation(adapted: np.ndarray) -> np.ndarray:
    """(mod channels, audio channels, time): low-pass 2.5 Hz, then complex resonators."""
    from scipy.signal import butter, lfilter
    b, a = butter(1, 2.5, fs=ENV_RATE)
    out = [lfilter(b, a, adapted, axis=-1)]
    for fc in _mod_centres():
        bw = 5.0 if fc <= 10 else fc / 2.0
        pole = np.exp(-np.pi * bw / ENV_RATE) * np.exp(2j * np.pi * fc / ENV_RATE)
        band = lfilter([1 - abs(pole)], [1, -pole], adapted.astype(np.complex128), axis=-1)
        out.append(band.real if fc <= 10 else np.abs(band))
    return np.stack(out)


def internal_representation(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """The model's internal representation of mono ``y`` (full scale = 100 dB SPL).

    Returns
    -------
    ndarray, shape (n_mod, n_audio_channels, n_env_samples), float64

    Examples
    --------
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    >>> internal_representation(y, 16000).ndim               # (modulation, audio channel, time)
    3
    """
    y = np.asarray(y, dtype=np.float64) * _FULL_SCALE_PA
    if y.ndim != 1 or len(y) < sample_rate // 50:
        raise ConfigError("the perceptual score needs mono signals of at least 20 ms")
    return _modulation(_adaptation(_envelope(_gammatone(y, sample_rate), sample_rate)))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 1.0


def _weighted_corr(ref: np.ndarray, test: np.ndarray) -> float:
    """Correlation per modulation channel, weighted by the reference's variance share in that channel."""
    w = np.array([((r - r.mean()) ** 2).sum() for r in ref])
    if w.sum() <= 0:
        return 1.0
    return float(sum(wi * _corr(r, t) for wi, r, t in zip(w, ref, test)) / w.sum())


def pemo_score(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> PemoScore:
    """PSM and PSM_t of ``test`` against ``ref`` (mono, same rate, same length; see the module notes).

    Examples
    --------
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    >>> same, noisy = pemo_score(y, y, 16000), pemo_score(y, degrade(y, 16000, "noise", 0.0), 16000)
    >>> round(same.psm, 3), noisy.psm < same.psm
    (1.0, True)
    """
    ref, test = np.asarray(ref, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if ref.shape != test.shape:
        raise ConfigError(f"reference and test differ in length: {ref.shape} vs {test.shape}")
    ir_r = internal_representation(ref, sample_rate)
    ir_t = internal_representation(test, sample_rate)
    ir_t = np.where(np.abs(ir_t) < np.abs(ir_r), 0.5 * (ir_t + ir_r), ir_t)      # partial assimilation
    psm = _weighted_corr(ir_r, ir_t)
    frame = ENV_RATE // 100
    n = ir_r.shape[-1] // frame
    energy = np.array([np.abs(ir_r[..., i * frame:(i + 1) * frame]).mean() for i in range(n)])
    sounding = [i for i in range(n) if energy[i] > 0.01 * energy.max()] if n else []
    per = [_weighted_corr(ir_r[..., i * frame:(i + 1) * frame], ir_t[..., i * frame:(i + 1) * frame])
           for i in sounding]
    return PemoScore(psm=psm, psm_t=float(np.percentile(per, 5)) if per else psm)


def degrade(y: np.ndarray, sample_rate: int, kind: str, value: float, *, seed: int = 0) -> np.ndarray:
    """One rung of the validation ladder: ``kind="noise"`` adds white noise at ``value`` dB SNR (seeded);
    ``kind="lowpass"`` removes everything above ``value`` Hz (8th-order Butterworth, zero phase).

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    >>> noisy = degrade(y, 16000, "noise", 20.0)             # 20 dB SNR
    >>> round(float(10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))), 1)
    20.0
    """
    y = np.asarray(y, dtype=np.float64)
    if kind == "noise":
        noise = np.random.default_rng(seed).standard_normal(len(y))
        noise *= np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2) / 10 ** (value / 10))
        return y + noise
    if kind == "lowpass":
        if value >= sample_rate / 2:
            return y.copy()
        from scipy.signal import butter, sosfiltfilt
        return sosfiltfilt(butter(8, value, fs=sample_rate, output="sos"), y)
    raise ConfigError(f"unknown degradation {kind!r}; expected noise or lowpass")
