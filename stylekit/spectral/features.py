"""Magnitude-STFT frames: the features every spectral model reads and writes.

One frozen :class:`SpectralSTFTConfig` drives both directions: :func:`to_features` (audio -> normalised log
magnitude frames) and :func:`to_audio` (frames -> audio by Griffin-Lim, or with a given phase).

Normalisation (a documented choice, Roche et al. work on log spectra too):

1. ``|STFT|`` with a periodic Hann window, divided by the window's sum so that a full-scale sine of amplitude
   ``a`` peaks at ``a / 2`` whatever ``n_fft`` is (a fixed reference, *not* per note: velocity stays visible);
2. ``dB = 20 log10(max(mag, 10**(-top_db/20)))``, i.e. floored at ``-top_db`` dB and, for 16-bit audio,
   never above 0 dB;
3. ``x = clip(1 + dB / top_db, 0, 1)``: 0 is the floor, 1 is 0 dB. An error of ``e`` in ``x`` is an error of
   ``e * top_db`` dB, which is how :func:`stylekit.spectral.evaluate.rmse_db` reports it.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .config import SpectralSTFTConfig, fold_seed

__all__ = ["SpectralSTFTConfig", "to_features", "to_audio", "features_to_db", "stft_phase", "pghi_phase",
           "PHASE_METHODS"]


def _stft(y: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    import librosa
    return librosa.stft(np.asarray(y, dtype=np.float32), n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                        window="hann", center=True)


def _scale(cfg: SpectralSTFTConfig) -> float:
    # librosa's periodic Hann window sums to n_fft / 2.
    return cfg.n_fft / 2.0


def to_features(y: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    """Audio -> normalised log-magnitude frames.

    Parameters
    ----------
    y : ndarray, shape (n_samples,)
        Mono audio in [-1, 1] at ``cfg.sample_rate``.
    cfg : SpectralSTFTConfig

    Returns
    -------
    ndarray, shape (n_frames, n_bins), float32 in [0, 1]
        ``n_frames = 1 + n_samples // hop_length`` (centred frames).

    Examples
    --------
    >>> cfg = SpectralSTFTConfig()
    >>> to_features(np.zeros(16000, dtype=np.float32), cfg).shape
    (63, 513)
    """
    mag = np.abs(_stft(y, cfg)).T / _scale(cfg)
    floor = 10.0 ** (-cfg.top_db / 20.0)
    db = 20.0 * np.log10(np.maximum(mag, floor))
    return np.clip(1.0 + db / cfg.top_db, 0.0, 1.0).astype(np.float32)


def features_to_db(x: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    """Feature units -> dB re the fixed reference, in [-top_db, 0]. Same shape as ``x``; values are clipped.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> cfg = SpectralSTFTConfig(n_fft=256, hop_length=64)
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)         # 0.25 s of A4 at 16 kHz
    >>> features_to_db(np.array([0.0, 0.5, 1.0]), cfg)
    array([-80., -40.,   0.])
    """
    return (np.clip(x, 0.0, 1.0) - 1.0) * cfg.top_db


def _magnitude(x: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    return (10.0 ** (features_to_db(x, cfg) / 20.0) * _scale(cfg)).T.astype(np.float32)


def stft_phase(y: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    """Unit-modulus phase of ``y``'s STFT, shape (n_bins, n_frames), for :func:`to_audio`'s ``phase``.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> cfg = SpectralSTFTConfig(n_fft=256, hop_length=64)
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)         # 0.25 s of A4 at 16 kHz
    >>> phase = stft_phase(note, cfg)
    >>> phase.shape, bool(np.allclose(np.abs(phase), 1))
    ((129, 63), True)
    """
    s = _stft(y, cfg)
    return np.exp(1j * np.angle(s)).astype(np.complex64)


#: Phase reconstruction methods of :func:`to_audio` when no phase is given; the first is the default.
#: Griffin-Lim stays the default: on 16 test notes PGHI reached a lower spectral-convergence error but a lower
#: perceptual score (PSM), most of all on low notes (the comparison is in docs/spectral.md).
PHASE_METHODS = ("griffinlim", "pghi")

# Prusa et al. (2017): for a Hann window of length L, the Gaussian that matches it has gamma = 0.25645 L^2.
_HANN_GAMMA = 0.25645


def pghi_phase(mag: np.ndarray, cfg: SpectralSTFTConfig) -> np.ndarray:
    """Phase (radians, shape of ``mag`` = (n_bins, n_frames)) by Phase Gradient Heap Integration (Prusa,
    Balazs & Sondergaard 2017), from the ``pghipy`` package, with the gamma of ``cfg``'s Hann window.

    pghipy integrates the phase of a frame-centred STFT whose time axis is first; librosa's frames are
    centred too, so only the axes are swapped.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> cfg = SpectralSTFTConfig(n_fft=256, hop_length=64)
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)         # 0.25 s of A4 at 16 kHz
    >>> mag = np.abs(np.random.default_rng(0).standard_normal((129, 20)))
    >>> pghi_phase(mag, cfg).shape                        # needs the spectral extra (pghipy)
    (129, 20)
    """
    try:
        from pghipy import pghi
    except ImportError:
        raise ConfigError("PGHI phase reconstruction needs pghipy: pip install 'stylekit[spectral]' "
                          "(or use --phase griffinlim)") from None
    spec = np.ascontiguousarray(mag.T, dtype=np.float64)
    return pghi(spec, win_length=cfg.n_fft, hop_length=cfg.hop_length, gamma=_HANN_GAMMA * cfg.n_fft ** 2,
                tol=1e-5).T


def to_audio(x: np.ndarray, cfg: SpectralSTFTConfig, *, phase: np.ndarray | None = None,
             length: int | None = None, seed: int = 0, method: str = PHASE_METHODS[0]) -> np.ndarray:
    """Frames -> audio, the inverse of :func:`to_features`.

    Parameters
    ----------
    x : ndarray, shape (n_frames, n_bins)
        Feature frames (values outside [0, 1] are clipped).
    cfg : SpectralSTFTConfig
        Must be the config the frames were made with.
    phase : ndarray, shape (n_bins, n_frames), complex, optional
        Known phase (e.g. :func:`stft_phase` of the original note). If omitted, the phase is estimated with
        librosa's Griffin-Lim (``cfg.griffin_lim_iters`` iterations, random initial phase seeded by ``seed``).
    length : int, optional
        Output length in samples.
    method : {"pghi", "griffinlim"}
        Phase reconstruction when ``phase`` is None: PGHI (:func:`pghi_phase`) refined by
        ``cfg.griffin_lim_iters // 4`` Griffin-Lim iterations, or librosa's Griffin-Lim alone
        (``cfg.griffin_lim_iters`` iterations from a random phase).
    seed : int
        Seed of Griffin-Lim's initial phase; results are deterministic. Any integer: one outside
        ``[0, 2**32)`` is folded into it (:func:`~stylekit.spectral.config.fold_seed`).

    Returns
    -------
    ndarray, shape (length,), float32
        Mono audio, clipped to [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> cfg = SpectralSTFTConfig(n_fft=256, hop_length=64)
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)         # 0.25 s of A4 at 16 kHz
    >>> frames = to_features(note, cfg)
    >>> to_audio(frames, cfg, phase=stft_phase(note, cfg), length=len(note)).shape
    (4000,)
    """
    import librosa
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != cfg.n_bins:
        raise ConfigError(f"expected frames of shape (n_frames, {cfg.n_bins}), got {x.shape}")
    mag = _magnitude(x, cfg)
    if phase is not None:
        if phase.shape != mag.shape:
            raise ConfigError(f"phase shape {phase.shape} does not match frames {mag.shape}")
        y = librosa.istft(mag * phase, hop_length=cfg.hop_length, window="hann", center=True, length=length)
    elif method == "griffinlim":
        y = librosa.griffinlim(mag, n_iter=cfg.griffin_lim_iters, hop_length=cfg.hop_length, window="hann",
                               center=True, length=length,
                               random_state=np.random.RandomState(fold_seed(seed)))
    elif method == "pghi":
        y = _refine(mag, np.exp(1j * pghi_phase(mag, cfg)), cfg, cfg.griffin_lim_iters // 4, length)
    else:
        raise ConfigError(f"unknown phase method {method!r}; expected one of {', '.join(PHASE_METHODS)}")
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _refine(mag: np.ndarray, phase: np.ndarray, cfg: SpectralSTFTConfig, iters: int,
            length: int | None) -> np.ndarray:
    """Griffin-Lim iterations started from a given phase (librosa's ``griffinlim`` only starts from a random
    or zero phase): project onto consistent spectrograms, keep the target magnitude."""
    import librosa
    kw = {"hop_length": cfg.hop_length, "window": "hann", "center": True}
    spec = mag * phase
    for _ in range(iters):
        y = librosa.istft(spec, length=length, **kw)
        rebuilt = librosa.stft(y, n_fft=cfg.n_fft, **kw)[:, : mag.shape[1]]
        if rebuilt.shape[1] < mag.shape[1]:
            rebuilt = np.pad(rebuilt, ((0, 0), (0, mag.shape[1] - rebuilt.shape[1])))
        spec = mag * np.exp(1j * np.angle(rebuilt))
    return librosa.istft(spec, length=length, **kw)
