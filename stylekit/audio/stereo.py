"""The content's stereo (or multi-channel) image put back on a mono result: :func:`upmix`.

Style transfer runs on one channel, the mean of the content's channels (the mid). The image is then restored
the way parametric stereo coders restore it (the "parametric stereo" of HE-AAC v2, Breebaart et al. 2005):
from the content, for every STFT cell, each channel's share of the power (the level differences, which place
a source left or right) and its phase relative to the mix (the phase differences and decorrelation, which make
a sound wide or narrow); the result's STFT is given the same, channel by channel.

Notes
-----
Both parameters are smoothed over a few bins and frames (they describe where a sound is, not its fine
structure), and each channel's long-term share in a band is added to its share in every cell, so the texture
that fills the content's pauses takes the image the content has in that band over the whole clip instead of
a random one. Written here rather than taken from a library: no maintained Python package does parametric
stereo synthesis from given parameters.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .phase import istft, stft

__all__ = ["upmix", "channel_balance"]

#: Smoothing of the image parameters: STFT bins x frames.
_SMOOTH = (3, 9)
#: Weight of each channel's long-term share of a band, added to its share in every cell.
_LONG_TERM = 0.1
#: Weight of each channel's share over the whole spectrum, for the bands where the content is (nearly) silent.
_BROADBAND = 1e-3
#: The coherence this smoothing measures between two independent noises (Hann STFT at a hop of a quarter
#: window; 0.30 at n_fft 512 to 4096): neighbouring bins and frames overlap, so the average is over fewer
#: independent cells than the 27 it spans. Coherence is rescaled so that this level reads as 0, and not clipped
#: there: a cell measured below it turns its channels apart by more than 90 degrees, so that independent
#: channels average to correlation 0 over many cells (clipped at 0, they came out correlated).
_COHERENCE_BIAS = 0.30
#: Bins that share one direction of the decorrelating phase turn (about 170 Hz at the default resolution).
_SIGN_BLOCK = 16


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """Moving average of (C, F, T) over bins and frames, same shape."""
    kf, kt = _SMOOTH
    return F.avg_pool2d(x[None], (kf, kt), stride=1, padding=(kf // 2, kt // 2), count_include_pad=False)[0]


def upmix(mono: np.ndarray, channels: np.ndarray, *, n_fft: int, hop_length: int, seed: int = 0,
          chunk: int | None = None) -> np.ndarray:
    """Give a mono signal the image of a multi-channel one.

    Parameters
    ----------
    mono : np.ndarray
        Shape (n,), the result (the same rate as ``channels``).
    channels : np.ndarray
        Shape (n_c, C), the content whose image is kept (cut or zero-padded to ``n``).
    n_fft, hop_length : int
        The STFT the image is measured and applied in.
    seed : int
        Seeds the decorrelating phases.
    chunk : int, optional
        Work on pieces of this many samples (cross-faded over ``4 * n_fft``), which bounds the memory; default
        ``256 * n_fft`` (24 s at the default 93 ms window).

    Returns
    -------
    np.ndarray
        Shape (n, C), float32. Where the content's channels are equal, every channel is ``mono``; where they
        are independent, the result's channels are too.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.sin(np.arange(4410) * 0.1).astype(np.float32)
    >>> result = upmix(y, np.stack([y, 0.5 * y], axis=1), n_fft=256, hop_length=64)
    >>> result.shape, channel_balance(result)[0].round(1)                          # the content's balance, kept
    ((4410, 2), array([0.8, 0.2]))
    """
    from .transform import chunk_spans, overlap_add

    n, c = len(mono), channels.shape[1]
    ch = np.zeros((n, c), dtype=np.float32)
    ch[:min(n, len(channels))] = channels[:n]
    chunk = chunk or 256 * n_fft
    spans = chunk_spans(n, chunk=chunk, overlap=4 * n_fft) if n > chunk else [(0, n)]
    g = torch.Generator().manual_seed(seed)
    # One direction per block of bins: a direction that changed from bin to bin would be averaged away by the
    # window's leakage between neighbouring bins when the STFT is inverted (the channels would stay correlated).
    bins = n_fft // 2 + 1
    signs = torch.randint(0, 2, (c, -(-bins // _SIGN_BLOCK), 1), generator=g).float() * 2 - 1
    signs = signs.repeat_interleave(_SIGN_BLOCK, 1)[:, :bins]
    if c >= 2:
        signs[1] = -signs[0]     # a pair turned apart exactly: their correlation is the content's
    pieces = [_upmix_piece(mono[a:b], ch[a:b], n_fft=n_fft, hop_length=hop_length, signs=signs) for a, b in spans]
    if len(pieces) == 1:
        return pieces[0]
    return np.stack([overlap_add([p[:, k] for p in pieces], spans, n) for k in range(c)], 1).astype(np.float32)


def _upmix_piece(mono: np.ndarray, ch: np.ndarray, *, n_fft: int, hop_length: int,
                 signs: torch.Tensor) -> np.ndarray:
    """:func:`upmix` of one piece: per cell, each channel's share of the power, its phase relative to the mix,
    and its coherence with the other channels. Coherence ``r`` is made by turning the channels' phases apart
    by ``arccos r`` (half each way, the direction drawn per block of bins), which keeps every cell's power."""
    n, c = len(mono), ch.shape[1]
    with torch.no_grad():
        x = torch.stack([stft(torch.from_numpy(np.ascontiguousarray(ch[:, k])), n_fft=n_fft, hop_length=hop_length)
                         for k in range(c)])                                   # (C, F, T)
        y = stft(torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)), n_fft=n_fft, hop_length=hop_length)
        raw = _smooth(x.abs() ** 2)
        # Where the content is silent its image is noise (dither): there the long-term and broadband image rule.
        reg = _LONG_TERM * raw.mean(-1, keepdim=True) + _BROADBAND * raw.mean((-1, -2), keepdim=True) + 1e-30
        power = raw + reg
        gain = torch.sqrt(c * power / power.sum(0, keepdim=True))
        mix = x.sum(0, keepdim=True)
        rel = _smooth_complex(x * mix.conj())
        rel = rel + _LONG_TERM * rel.mean(-1, keepdim=True) + _BROADBAND * rel.abs().mean((-1, -2), keepdim=True)
        rot = rel / (rel.abs() + 1e-30)
        common = torch.zeros_like(raw)
        bias = _COHERENCE_BIAS
        for k in range(c):          # mean coherence of each channel with the others, pair by pair (memory)
            for m in range(k + 1, c):
                cross = _smooth_complex(x[k] * x[m].conj()).abs()
                cross = (cross + _LONG_TERM * cross.mean(-1, keepdim=True)
                         + _BROADBAND * cross.mean((-1, -2), keepdim=True))
                coh = ((cross / torch.sqrt(power[k] * power[m]) - bias) / (1 - bias)).clamp(-1, 1)
                common[k] += coh / (c - 1)
                common[m] += coh / (c - 1)
        turn = torch.polar(torch.ones_like(common), signs * torch.arccos(common.clamp(-1, 1)) / 2)
        out = [istft(gain[k] * rot[k] * turn[k] * y, n_fft=n_fft, hop_length=hop_length, length=n) for k in range(c)]
    return torch.stack(out, 1).numpy().astype(np.float32)


def _smooth_complex(z: torch.Tensor) -> torch.Tensor:
    return torch.complex(_smooth(z.real), _smooth(z.imag))


def channel_balance(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The image of a multi-channel signal in two numbers: each channel's share of the power, and the
    correlation of the first two channels (1: mono, 0: fully wide).

    Parameters
    ----------
    x : np.ndarray
        Shape (n, C), C >= 2.

    Returns
    -------
    shares : np.ndarray
        (C,), each channel's power over the total (sums to 1).
    correlation : float

    Examples
    --------
    >>> import numpy as np
    >>> y = np.sin(np.arange(4410) * 0.1)
    >>> shares, correlation = channel_balance(np.stack([y, 0.5 * y], axis=1))      # left louder, same signal
    >>> shares.round(2), round(correlation, 3)
    (array([0.8, 0.2]), 1.0)
    """
    x = np.asarray(x, dtype=np.float64)
    p = (x ** 2).sum(0)
    a, b = x[:, 0] - x[:, 0].mean(), x[:, 1] - x[:, 1].mean()
    return p / p.sum(), float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-20))
