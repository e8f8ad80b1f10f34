"""The invertible spectrogram transform: one frozen config, used in both directions.

:func:`to_spectrogram` and :func:`to_audio` sit side by side and take the same :class:`SpectrogramConfig`, so
the scaling of the forward and the inverse transform cannot disagree (the config itself is plain data in
:mod:`.config`). :func:`to_network` / :func:`from_network`
are the one affine map between a log spectrogram and the feature network's input scale. Long signals are cut
into overlapping chunks by :func:`chunk_spans` and joined again by :func:`overlap_add`.

Representation
--------------
``magnitude = |STFT(y)| / (n_fft / 2)`` (a full-scale sine at a bin frequency gives 0.5), then

- ``kind="mel"`` (default): ``M = W @ magnitude`` where the rows of the mel filterbank ``W`` are normalised
  to sum to 1 (each band is the weighted *average* magnitude in that band, so mel and linear spectrograms
  share one level scale and one floor), and ``X = log(M + log_floor)``;
- ``kind="linear"``: ``X = log(magnitude + log_floor)``.

Network scale: ``Z = (X - log(log_floor)) / (log(ref) - log(log_floor))``, so the floor maps to 0 and a
magnitude of ``ref`` to about 1.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch

from ..errors import ConfigError
from .config import SpectrogramConfig
from .phase import griffin_lim, stft

__all__ = ["SpectrogramConfig", "to_spectrogram", "to_audio", "to_network", "from_network", "content_phase",
           "linear_magnitude", "log_spectrogram", "mel_to_linear", "prior_inverse", "row_frequencies", "chunk_spans",
           "overlap_add", "spectral_convergence", "log_spectral_distance"]

@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    w = _mel_rows(sr, n_fft, n_mels, fmin, fmax)
    if not _full_rank(w):
        # An empty band, or low bands that share their one or two STFT bins: such mel spectra cannot be
        # inverted, and results stop moving toward the style.
        most = max((n for n in range(16, n_mels, 16) if _full_rank(_mel_rows(sr, n_fft, n, fmin, fmax))),
                   default=None)
        hint = f"use --n-mels {most} or fewer" if most else "use fewer n_mels"
        raise ConfigError(f"n_mels={n_mels} is more mel bands than n_fft={n_fft} can tell apart at {sr} Hz "
                          f"(some bands would be empty or cover the same STFT bins): {hint}, or a larger n_fft")
    return w.astype(np.float32)


def _mel_rows(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's triangular mel filters (``norm=None``), each row divided by its sum (an empty band stays 0)."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # librosa's empty-filter warning: _full_rank catches it
        w = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=None)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-30)


def _full_rank(w: np.ndarray) -> bool:
    """Whether the bands are linearly independent (smallest singular value above 1e-6 of the largest).

    Row-normalised mel filterbanks stay well conditioned up to the rank limit and are exactly singular beyond
    it, so the threshold is not delicate.
    """
    sv = np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)
    return bool(sv[-1] > 1e-6 * sv[0])


def row_frequencies(config: SpectrogramConfig) -> np.ndarray:
    """Centre frequency in Hz of each row of the representation: mel band centres or STFT bin frequencies,
    shape (config.n_bins,), float64.

    Examples
    --------
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> row_frequencies(SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32))[:3].round(1)
    array([100.8, 201.7, 302.5])
    """
    import librosa

    if config.kind == "mel":
        top = config.sample_rate / 2 if config.fmax is None else config.fmax
        return librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=top)[1:-1]
    return librosa.fft_frequencies(sr=config.sample_rate, n_fft=config.n_fft)


def mel_basis(config: SpectrogramConfig) -> np.ndarray:
    """Row-normalised mel filterbank, shape (n_mels, n_fft // 2 + 1), float32."""
    return _mel_basis(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin), config.fmax)


@lru_cache(maxsize=8)
def _mel_pinv(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    # One thread, float64: an SVD's last bits depend on how many threads BLAS/LAPACK use, and L-BFGS amplifies
    # such differences into audible ones, so results would otherwise change with OMP_NUM_THREADS.
    w = torch.from_numpy(_mel_basis(sr, n_fft, n_mels, fmin, fmax).astype(np.float64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.pinv(w).numpy().astype(np.float32)
    finally:
        torch.set_num_threads(threads)


def _basis_tensor(config: SpectrogramConfig, device, *, inverse: bool = False) -> torch.Tensor:
    fn = _mel_pinv if inverse else _mel_basis
    return torch.from_numpy(fn(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin),
                               config.fmax)).to(device)


def _stft_t(y, config: SpectrogramConfig) -> torch.Tensor:
    if not torch.is_tensor(y):
        y = torch.as_tensor(np.ascontiguousarray(np.asarray(y, dtype=np.float32)))
    return stft(y.float(), n_fft=config.n_fft, hop_length=config.hop_length)


def _magnitude(y: np.ndarray, config: SpectrogramConfig) -> tuple[np.ndarray, np.ndarray]:
    spec = _stft_t(y, config)
    return (spec.abs() / (config.n_fft / 2)).cpu().numpy(), spec.angle().cpu().numpy()


def to_spectrogram(y, config: SpectrogramConfig = SpectrogramConfig()):
    """Signal to log spectrogram.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape (n,), float, at ``config.sample_rate``. A tensor is transformed on its own device (CPU or CUDA).
    config : SpectrogramConfig

    Returns
    -------
    np.ndarray or torch.Tensor
        Shape (config.n_bins, config.n_frames(n)), float32, natural-log magnitude, >= log(log_floor); a tensor
        on ``y``'s device when ``y`` is a tensor, else an array.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> to_spectrogram(y, config).shape              # (n_mels, frames)
    (32, 35)
    """
    out = log_spectrogram(linear_magnitude(y, config), config)
    return out if torch.is_tensor(y) else out.cpu().numpy().astype(np.float32)


def linear_magnitude(y, config: SpectrogramConfig) -> torch.Tensor:
    """``|STFT(y)| / (n_fft / 2)``, shape (n_fft // 2 + 1, frames), a tensor on ``y``'s device (CPU for an
    array): the magnitude :func:`to_spectrogram` starts from.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> mag = linear_magnitude(y, config)
    >>> tuple(mag.shape), int(mag[:, 10].argmax())         # A4 lies in bin 440 / (22050 / 256) = 5.1
    ((129, 35), 5)
    """
    return _stft_t(y, config).abs() / (config.n_fft / 2)


def log_spectrogram(mag: torch.Tensor, config: SpectrogramConfig) -> torch.Tensor:
    """:func:`linear_magnitude`'s result as :func:`to_spectrogram`'s: log-mel or log-linear, a tensor.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)
    >>> np.allclose(log_spectrogram(linear_magnitude(y, config), config).numpy(), to_spectrogram(y, config))
    True
    """
    if config.kind == "mel":
        mag = _basis_tensor(config, mag.device) @ mag
    return torch.log(mag + config.log_floor)


def content_phase(y, config: SpectrogramConfig = SpectrogramConfig()):
    """STFT phase of ``y`` (radians, shape (n_fft // 2 + 1, frames)), the Griffin-Lim start for results.

    A tensor on ``y``'s device when ``y`` is a tensor, else an array.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> content_phase(y, config).shape               # (n_fft // 2 + 1, frames)
    (129, 35)
    """
    phase = _stft_t(y, config).angle()
    return phase if torch.is_tensor(y) else phase.cpu().numpy()


def mel_to_linear(mel, config: SpectrogramConfig, *, prior=None):
    """Mel magnitude (n_mels, T), >= 0, to linear magnitude (n_fft // 2 + 1, T), >= 0.

    An array gives an array; a tensor gives a tensor on its device (``"pinv"`` runs there, ``"nnls"`` on the
    CPU).

    Notes
    -----
    ``"nnls"`` is :func:`librosa.feature.inverse.mel_to_stft`'s solver (``librosa.util.nnls``) applied to this
    module's row-normalised filterbank; ``"pinv"`` is the Moore-Penrose pseudo-inverse clipped at 0 (faster,
    blurrier above a few kHz); ``"prior"`` (:func:`prior_inverse`) shapes every band's energy like ``prior``
    (a linear magnitude, (n_fft // 2 + 1,) or one per frame, (n_fft // 2 + 1, T): the style's), and is
    ``"pinv"`` without one.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> mel_to_linear(np.exp(to_spectrogram(y, config)), config).shape
    (129, 35)
    """
    if config.mel_inverse == "prior" and prior is not None:
        return prior_inverse(mel, config, prior)
    if torch.is_tensor(mel):
        m = torch.clamp(mel.float(), min=0)
        if config.mel_inverse in ("pinv", "prior"):
            return torch.relu(_basis_tensor(config, m.device, inverse=True) @ m)
        return torch.from_numpy(mel_to_linear(m.cpu().numpy(), config)).to(m.device)
    import librosa

    w = mel_basis(config)
    mel = np.maximum(np.asarray(mel, dtype=np.float32), 0)
    if config.mel_inverse in ("pinv", "prior"):
        return np.maximum(_mel_pinv(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin),
                                    config.fmax) @ mel, 0).astype(np.float32)
    return librosa.util.nnls(w, mel).astype(np.float32)


#: Multiplicative updates of :func:`prior_inverse`: enough to meet the mel spectrum to a few percent.
PRIOR_ITERS = 30


def prior_inverse(mel, config: SpectrogramConfig, prior, *, iters: int = PRIOR_ITERS):
    """Mel magnitude (n_mels, T) to linear magnitude (n_fft // 2 + 1, T) with the fine structure of ``prior``.

    A mel band fixes only the mean magnitude of its STFT bins; how that energy lies across the bins (a few sharp
    partials or a flat hump) is free, and the pseudo-inverse spreads it evenly, so a style's partials come back
    smeared over wide high bands. Here every bin starts as ``prior`` (a style's linear magnitude: one spectrum,
    (n_fft // 2 + 1,), or one per frame, (n_fft // 2 + 1, T)) scaled by its bands' gains, and multiplicative
    updates that lower the Kullback-Leibler divergence between the result's mel spectrum and ``mel`` over
    non-negative spectra (Lee & Seung 2001, the NMF update with the filterbank fixed) then bring the one to the
    other. The updates keep zeros at zero and change each bin in proportion to itself, so the start's peaks and
    valleys stay wherever the bands are wider than a bin, while narrow low bands (the content's harmonics) are
    still met bin by bin.
    librosa's NNLS (``"nnls"``) starts from the pseudo-inverse and cannot be given a start; hence this solver.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32, mel_inverse="prior")
    >>> prior = np.full(129, 1e-3, dtype=np.float32); prior[::10] = 1.0        # sharp partials
    >>> w = mel_basis(config)
    >>> flat = np.ones((129, 5), np.float32)                  # a flat spectrum: every band at 1
    >>> lin = prior_inverse(w @ flat, config, prior)
    >>> bool(np.allclose(w @ lin, w @ flat, rtol=0.05))       # the same mel spectrum ...
    True
    >>> lin[100:106, 0].round(2)                              # ... with the partials where the bands are wide
    array([10.51,  0.01,  0.01,  0.01,  0.01,  0.01], dtype=float32)
    """
    is_t = torch.is_tensor(mel)
    m = torch.clamp(mel.float() if is_t else torch.from_numpy(np.asarray(mel, dtype=np.float32)), min=0)
    w = _basis_tensor(config, m.device)
    p = torch.as_tensor(np.asarray(prior, dtype=np.float32) if not torch.is_tensor(prior) else prior,
                        dtype=torch.float32, device=m.device)
    p = p[:, None] if p.dim() == 1 else p
    if p.shape[0] != w.shape[1]:
        raise ValueError(f"prior has {p.shape[0]} bins, the filterbank {w.shape[1]}")
    # a floor far below the prior's peak, so bands where it is silent still take energy
    p = p.clamp(min=0) + 1e-6 * p.amax(0, keepdim=True).clamp(min=1e-12)
    colsum = w.sum(0)
    covered = colsum > 0
    norm = torch.where(covered, colsum, torch.ones_like(colsum))[:, None]
    tiny = 1e-12
    lin = p * (w.T @ (m / (w @ p))) / norm
    for _ in range(iters):
        lin = lin * (w.T @ (m / (w @ lin + tiny))) / norm
    lin = lin * covered[:, None]
    return lin if is_t else lin.numpy()


def to_audio(spec, config: SpectrogramConfig = SpectrogramConfig(), *, length: int,
             init_phase=None, seed: int = 0, prior=None) -> np.ndarray:
    """Log spectrogram back to a signal: the inverse of :func:`to_spectrogram` under the same config.

    Parameters
    ----------
    spec : np.ndarray or torch.Tensor
        Shape (config.n_bins, frames), as returned by :func:`to_spectrogram`; a tensor is inverted on its own
        device (mel inversion and Griffin-Lim).
    config : SpectrogramConfig
    length : int
        Samples to return (the original signal's length).
    init_phase : np.ndarray or torch.Tensor, optional
        Shape (n_fft // 2 + 1, frames), the phase Griffin-Lim starts from (e.g. :func:`content_phase`);
        seeded random phase when omitted.
    seed : int, optional
        Seed of the random start.
    prior : np.ndarray or torch.Tensor, optional
        Shape (n_fft // 2 + 1,) or (n_fft // 2 + 1, frames): the linear magnitude whose fine structure
        ``mel_inverse="prior"`` gives the result (:func:`prior_inverse`).

    Returns
    -------
    np.ndarray
        Shape (length,), float32.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> spec = to_spectrogram(y, config)
    >>> back = to_audio(spec, config, length=len(y), init_phase=content_phase(y, config))
    >>> back.shape, spectral_convergence(y, back, config) < 0.2
    ((2205,), True)
    """
    spec = spec.float() if torch.is_tensor(spec) else torch.from_numpy(np.asarray(spec, dtype=np.float32))
    if spec.dim() != 2 or spec.shape[0] != config.n_bins:
        raise ValueError(f"expected a spectrogram of shape ({config.n_bins}, frames), got {tuple(spec.shape)}")
    mag = torch.clamp(torch.exp(spec) - config.log_floor, min=0)
    if config.kind == "mel":
        mag = mel_to_linear(mag, config, prior=prior)
    mag = mag * (config.n_fft / 2)
    return griffin_lim(mag, n_fft=config.n_fft, hop_length=config.hop_length, length=length,
                       n_iter=config.griffin_lim_iters, momentum=config.momentum, init_phase=init_phase, seed=seed)


def _net_span(config: SpectrogramConfig) -> tuple[float, float]:
    lo = math.log(config.log_floor)
    return lo, math.log(config.ref) - lo


def to_network(spec: torch.Tensor, config: SpectrogramConfig) -> torch.Tensor:
    """Log spectrogram to the feature network's input scale: the floor maps to 0, ``ref`` to about 1.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> import torch
    >>> z = to_network(torch.from_numpy(to_spectrogram(y, config)), config)
    >>> 0 <= float(z.min()) and float(z.max()) <= 1
    True
    """
    lo, span = _net_span(config)
    return (spec - lo) / span


def from_network(z: torch.Tensor, config: SpectrogramConfig) -> torch.Tensor:
    """Inverse of :func:`to_network`.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> import torch
    >>> spec = torch.from_numpy(to_spectrogram(y, config))
    >>> torch.allclose(from_network(to_network(spec, config), config), spec, atol=1e-5)
    True
    """
    lo, span = _net_span(config)
    return z * span + lo


def chunk_spans(n: int, *, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into overlapping spans of at most ``chunk`` items.

    Consecutive spans overlap by exactly ``overlap`` items (except that a short tail is merged into the last
    span so no span is shorter than ``2 * overlap``). One span ``(0, n)`` when ``n <= chunk``.

    Returns
    -------
    list of (start, stop)

    Examples
    --------
    >>> chunk_spans(10, chunk=6, overlap=2)
    [(0, 6), (4, 10)]
    """
    if chunk <= 2 * overlap or overlap < 0:
        raise ConfigError(f"chunk ({chunk}) must exceed twice the overlap ({overlap})")
    if n <= chunk:
        return [(0, n)]
    spans, start, step = [], 0, chunk - overlap
    while True:
        stop = start + chunk
        if stop >= n or n - (stop - overlap) < 2 * overlap + 1:
            spans.append((start, n))
            return spans
        spans.append((start, stop))
        start += step


def overlap_add(pieces: list[np.ndarray], spans: list[tuple[int, int]], n: int) -> np.ndarray:
    """Join pieces produced for :func:`chunk_spans` spans with raised-cosine cross-fades over each overlap.

    Parameters
    ----------
    pieces : list of np.ndarray
        Piece ``i`` has shape (stop_i - start_i,) (1-D signals) or (..., stop_i - start_i) (last axis is time).
    spans : list of (start, stop)
    n : int
        Total length.

    Returns
    -------
    np.ndarray
        Shape (..., n). The cross-fade weights sum to 1 everywhere, so identical pieces join losslessly.

    Examples
    --------
    >>> import numpy as np
    >>> spans = chunk_spans(10, chunk=6, overlap=2)
    >>> x = np.arange(10.0)
    >>> overlap_add([x[a:b] for a, b in spans], spans, 10)      # identical pieces join losslessly
    array([0., 1., 2., 3., 4., 5., 6., 7., 8., 9.])
    """
    lead = pieces[0].shape[:-1]
    out = np.zeros(lead + (n,), dtype=np.float64)
    wsum = np.zeros(n, dtype=np.float64)
    for i, ((a, b), p) in enumerate(zip(spans, pieces)):
        w = np.ones(b - a)
        if i > 0:
            ov = spans[i - 1][1] - a
            w[:ov] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ov) + 0.5) / ov)
        if i < len(spans) - 1:
            ov = b - spans[i + 1][0]
            w[b - a - ov:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(ov) + 0.5) / ov)
        out[..., a:b] += p * w
        wsum[a:b] += w
    return (out / wsum).astype(pieces[0].dtype)


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray,
                         config: SpectrogramConfig = SpectrogramConfig()) -> float:
    """``|| |S_ref| - |S_est| ||_F / || |S_ref| ||_F`` on the linear STFT magnitude (lower is better).

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> spectral_convergence(y, y, config), spectral_convergence(y, 0.5 * y, config)
    (0.0, 0.5)
    """
    a, _ = _magnitude(np.asarray(reference, dtype=np.float32), config)
    b, _ = _magnitude(np.asarray(estimate, dtype=np.float32), config)
    t = min(a.shape[1], b.shape[1])
    return float(np.linalg.norm(a[:, :t] - b[:, :t]) / np.linalg.norm(a[:, :t]))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray,
                          config: SpectrogramConfig = SpectrogramConfig()) -> float:
    """Log-spectral distance in dB on the linear STFT power: ``mean_t sqrt(mean_f (10 log10 P/P')^2)``.

    Both powers are floored at ``log_floor ** 2`` so silent frames do not dominate.

    Examples
    --------
    >>> import numpy as np
    >>> from stylekit.audio.config import SpectrogramConfig
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> y = np.sin(2 * np.pi * 440 * np.arange(2205) / 22050).astype(np.float32)     # 0.1 s of A4
    >>> log_spectral_distance(y, y, config), log_spectral_distance(y, 0.5 * y, config) > 1
    (0.0, True)
    """
    a, _ = _magnitude(np.asarray(reference, dtype=np.float32), config)
    b, _ = _magnitude(np.asarray(estimate, dtype=np.float32), config)
    t = min(a.shape[1], b.shape[1])
    fl = config.log_floor ** 2
    d = 10 * np.log10(a[:, :t] ** 2 + fl) - 10 * np.log10(b[:, :t] ** 2 + fl)
    return float(np.mean(np.sqrt(np.mean(d * d, axis=0))))


class MelProjection(torch.nn.Module):
    """Differentiable projection of a network-scale log-mel onto the mel spectra a linear magnitude can have.

    ``z -> to_network(log(W relu(W^+ M) + floor))`` with ``M = exp(from_network(z)) - floor``: the mel
    spectrum of the clipped pseudo-inverse, i.e. what :func:`to_audio` will actually produce. Input and
    output (B, 1, n_mels, T).

    Notes
    -----
    Adjacent low-frequency mel bands share the same one to three STFT bins, so an optimiser that moves bands
    freely builds mel spectra no non-negative linear spectrum has; inverting them loses much of what was
    optimised (docs/audio.md). Optimising through this projection keeps every iterate realisable.
    """

    def __init__(self, config: SpectrogramConfig) -> None:
        super().__init__()
        if config.kind != "mel":
            raise ConfigError("MelProjection needs a mel spectrogram config")
        w = mel_basis(config)
        self.register_buffer("w", torch.from_numpy(w))
        self.register_buffer("w_pinv", torch.from_numpy(_mel_pinv(config.sample_rate, config.n_fft, config.n_mels,
                                                                  float(config.fmin), config.fmax).copy()))
        self.lo, self.span = _net_span(config)
        self.floor = float(config.log_floor)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # L-BFGS (no line search) can overshoot; above z = 2 the slope drops to 1/100 so exp() stays finite
        # while the gradient still points back (a hard clamp would leave the iterate stuck with zero gradient).
        z = z - 0.99 * torch.relu(z - 2.0)
        m = torch.exp(z * self.span + self.lo) - self.floor
        lin = torch.relu(torch.einsum("kf,bcft->bckt", self.w_pinv, m))
        m2 = torch.einsum("fk,bckt->bcft", self.w, lin)
        return (torch.log(m2 + self.floor) - self.lo) / self.span


class LinearToMel(torch.nn.Module):
    """Differentiable map from a network-scale *linear* log-magnitude to the network-scale log-mel.

    ``x -> to_network(log(W (exp(from_network(x)) - floor) + floor))``: input (B, 1, n_fft // 2 + 1, T),
    output (B, 1, n_mels, T). Optimising the linear magnitude and computing every loss on the log-mel of it
    lets the result keep peaks narrower than a mel band (the partials of a chord with dark gaps between
    them), which no mel spectrum passed through the pseudo-inverse (:class:`MelProjection`) can, and the
    optimised magnitude goes to Griffin-Lim as it is, with no mel-to-linear step.
    """

    def __init__(self, config: SpectrogramConfig) -> None:
        super().__init__()
        if config.kind != "mel":
            raise ConfigError("LinearToMel needs a mel spectrogram config")
        self.register_buffer("w", torch.from_numpy(mel_basis(config)))
        self.lo, self.span = _net_span(config)
        self.floor = float(config.log_floor)
        self.cap = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Soft cap, as in MelProjection but at full scale (x = 1): L-BFGS (no line search) may overshoot, and
        # with ten times more variables than a log-mel one such step can push a few bins far above any real
        # level; above the cap the slope drops to 1/100, so exp() stays finite and the gradient still points back.
        x = x - 0.99 * torch.relu(x - self.cap)
        lin = torch.relu(torch.exp(x * self.span + self.lo) - self.floor)
        m = torch.einsum("fk,bckt->bcft", self.w, lin)
        return (torch.log(m + self.floor) - self.lo) / self.span
