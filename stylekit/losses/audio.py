"""Loss terms of audio style transfer, on spectrograms and on their feature maps.

- :class:`BandStatsLoss`: the style's per-band mean, std and band-band correlation of the log spectrogram
  (:func:`band_statistics`), the classic sound-texture statistics.
- :class:`EnvelopeLoss`: keeps the shape of the content's loudness contour (:func:`log_energy`).
- :class:`RhythmLoss`: the style's feature autocorrelation over time (:func:`autocorrelation`).
- :class:`RowStatsLoss`: the style's per-frequency-row mean and std over time of image-network feature maps
  (:func:`row_statistics`), which make VGG19's style term know where in frequency its features are.
- :class:`SpeechEnvelopeLoss`: keeps the content's words, the short-time shape of its speech-band envelopes
  (:func:`speech_bands`, :func:`band_envelopes`, :func:`segment_correlation`).

They live beside the image losses so that every loss term of stylekit has one home; only torch is imported.
Spectrograms are on the network scale of :func:`stylekit.audio.transform.to_network`, shape (B, 1, n_bins, T).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["autocorrelation", "RhythmLoss", "EnvelopeLoss", "log_energy", "band_statistics", "BandStatsLoss",
           "speech_bands", "band_envelopes", "segment_correlation", "SpeechEnvelopeLoss", "row_statistics",
           "RowStatsLoss"]


def autocorrelation(features: torch.Tensor, *, max_lag: int) -> torch.Tensor:
    """Normalised autocorrelation of each channel over time.

    Parameters
    ----------
    features : torch.Tensor
        (B, C, T) or (B, C, H, W) (flattened over H, W is *not* meaningful; time must be the last axis and
        H is averaged first).
    max_lag : int
        Largest lag in frames (clipped to T - 1).

    Returns
    -------
    torch.Tensor
        (B, C, L) with L = min(max_lag, T - 1): the correlation coefficient of each channel with itself
        shifted by 1..L frames (mean removed, unbiased per lag, divided by the lag-0 value).

    Examples
    --------
    >>> import torch
    >>> beat = torch.tensor([1.0, 0.0, 0.0, 0.0] * 8).reshape(1, 1, 32)         # one beat every 4 frames
    >>> ac = autocorrelation(beat, max_lag=4)[0, 0]
    >>> int(ac.argmax()) + 1                                                   # the strongest lag
    4
    """
    f = features.float()
    if f.dim() == 4:
        f = f.mean(dim=2)
    t = f.shape[-1]
    lag = min(int(max_lag), t - 1)
    f = f - f.mean(dim=-1, keepdim=True)
    n = 1 << (2 * t - 1).bit_length()
    spec = torch.fft.rfft(f, n=n)
    ac = torch.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n)[..., : lag + 1]
    ac = ac / torch.arange(t, t - lag - 1, -1, dtype=f.dtype, device=f.device)
    return ac[..., 1:] / (ac[..., :1] + 1e-8)


class RhythmLoss(nn.Module):
    """Autocorrelation ("rhythm") loss of Antognini et al. (2019) on feature maps.

    Parameters
    ----------
    targets : dict or list of dict
        ``{layer: features (B, C, T)}`` of one or several styles (blended by averaging).
    max_lag : int
        Largest lag in frames compared.
    blend : sequence of float, optional
        Weights of the styles.

    Forward: ``features -> scalar``, the mean over layers of the mean squared difference of the normalised
    autocorrelations (lags 1..max_lag, truncated to the shorter signal).

    Notes
    -----
    Antognini et al. compare autocorrelations of the full feature maps; this uses the correlation coefficient
    (lag-0 normalised) so the term is independent of the feature scale, which the Gram term already matches.

    Examples
    --------
    >>> import torch
    >>> style = {"conv_w3": torch.rand(1, 8, 40)}
    >>> RhythmLoss(style, max_lag=10)(style)
    tensor(0.)
    """

    def __init__(self, targets: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]], *,
                 max_lag: int, blend: Sequence[float] | None = None) -> None:
        super().__init__()
        styles = [targets] if isinstance(targets, Mapping) else list(targets)
        bw = [1.0 / len(styles)] * len(styles) if blend is None else [float(b) / sum(blend) for b in blend]
        self.max_lag = int(max_lag)
        # A layer shorter than 2 frames in some style has no lag to compare; it is left out.
        self.layers = tuple(k for k in styles[0] if min(s[k].shape[-1] for s in styles) >= 2)
        if not self.layers:
            raise ConfigError("the style is too short for the rhythm term (need at least 2 frames per layer)")
        with torch.no_grad():
            for k in self.layers:
                acs = [autocorrelation(s[k], max_lag=max_lag).mean(0, keepdim=True) for s in styles]
                lag = min(a.shape[-1] for a in acs)
                self.register_buffer(f"ac_{k}", sum(w * a[..., :lag] for w, a in zip(bw, acs)))

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total, n = features[self.layers[0]].new_zeros(()), 0
        for k in self.layers:
            target = getattr(self, f"ac_{k}")
            if features[k].shape[-1] < 2:
                continue
            ac = autocorrelation(features[k], max_lag=target.shape[-1])
            lag = min(ac.shape[-1], target.shape[-1])
            total = total + ((ac[..., :lag] - target[..., :lag]) ** 2).mean()
            n += 1
        return total / max(n, 1)


def log_energy(z: torch.Tensor, *, span: float, offset: float) -> torch.Tensor:
    """Frame log-energy of a network-scale spectrogram.

    Parameters
    ----------
    z : torch.Tensor
        (B, 1, n_bins, T) or (B, n_bins, T) on the network scale (``log_magnitude = z * span + offset``).

    Returns
    -------
    torch.Tensor
        (B, T): ``log(sum_f magnitude_f ** 2)``, the frame energy in nepers x 2 (differentiable).

    Examples
    --------
    >>> import torch
    >>> log_energy(torch.zeros(1, 4, 3), span=1.0, offset=0.0)          # 4 bins of magnitude 1: log 4
    tensor([[1.3863, 1.3863, 1.3863]])
    """
    if z.dim() == 4:
        z = z[:, 0]
    return torch.logsumexp(2 * (z * span + offset), dim=1)


class EnvelopeLoss(nn.Module):
    """Keeps the *shape* of the content's loudness contour: ``1 - corr(E(x), E(content))`` over frames.

    Parameters
    ----------
    target : torch.Tensor
        (1, 1, n_bins, T), the content on the network scale.
    span, offset : float
        The network-scale mapping (see :func:`stylekit.audio.transform.to_network`).
    smooth : int
        Frames of the moving average applied to both envelopes before correlating.

    Notes
    -----
    Not in the papers. The feature content loss alone either keeps the content's full dynamic range (its
    silent gaps, which fights every texture statistic) or, with a strong style weight, loses the word
    rhythm. A correlation is scale-free, so this term keeps *when* the content is loud or quiet while
    letting the style decide *how much* the level swings.

    Examples
    --------
    >>> import torch
    >>> content = torch.rand(1, 1, 16, 40)
    >>> loss = EnvelopeLoss(content, span=10.0, offset=-11.5)
    >>> float(loss(content)) < 1e-5, float(loss(content.flip(-1))) > 0        # the same contour; another one
    (True, True)
    """

    def __init__(self, target: torch.Tensor, *, span: float, offset: float, smooth: int = 3) -> None:
        super().__init__()
        self.span, self.offset, self.smooth = float(span), float(offset), int(smooth)
        with torch.no_grad():
            self.register_buffer("target", self._centred(target))

    def _centred(self, z: torch.Tensor) -> torch.Tensor:
        e = log_energy(z, span=self.span, offset=self.offset)
        if self.smooth > 1:
            e = F.avg_pool1d(e[:, None], self.smooth, stride=1, padding=self.smooth // 2,
                             count_include_pad=False)[:, 0]
        e = e - e.mean(dim=-1, keepdim=True)
        return e / (e.norm(dim=-1, keepdim=True) + 1e-8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        e = self._centred(z)
        return (1 - (e * self.target).sum(dim=-1)).mean()


def band_statistics(z: torch.Tensor, *, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Texture statistics of a spectrogram: per-band mean and std over time, and band-band correlations.

    Parameters
    ----------
    z : torch.Tensor
        (B, 1, n_bins, T) or (B, n_bins, T), network scale. The overall level (mean over bands and time) is
        removed first, so the statistics describe the spectral shape and its fluctuation, not the loudness.

    Returns
    -------
    mean, std : torch.Tensor
        (B, n_bins) each.
    corr : torch.Tensor
        (B, n_bins * (n_bins - 1) / 2), the upper triangle of the band correlation matrix.

    Examples
    --------
    >>> import torch
    >>> mean, std, corr = band_statistics(torch.rand(2, 1, 8, 50))
    >>> mean.shape, std.shape, corr.shape                                   # 8 bands: 28 pairs
    (torch.Size([2, 8]), torch.Size([2, 8]), torch.Size([2, 28]))
    """
    if z.dim() == 4:
        z = z[:, 0]
    z = z.float()
    z = z - z.mean(dim=(1, 2), keepdim=True)
    mean = z.mean(dim=-1)
    c = z - mean[..., None]
    std = (c.pow(2).mean(dim=-1) + eps).sqrt()
    u = c / std[..., None]
    corr = u @ u.transpose(1, 2) / z.shape[-1]
    i, j = torch.triu_indices(z.shape[1], z.shape[1], 1, device=z.device)
    return mean, std, corr[:, i, j]


class BandStatsLoss(nn.Module):
    """Matches the style's band statistics (:func:`band_statistics`), each normalised by its content distance.

    Parameters
    ----------
    targets : list of torch.Tensor
        Style spectrograms (1, 1, n_bins, T_i) on the network scale (e.g. the chunks of several styles).
    blend : sequence of float, optional
        Weight of each target (statistics are averaged with these weights).

    Forward: ``z -> scalar``, ``mean_k ||T_k(z) - T_k(style)||^2 / ||T_k(content) - T_k(style)||^2`` over the
    three statistics k, so the term is 1 at the content and 0 at the style's statistics whatever the
    material. Call :meth:`set_content` before use.

    Notes
    -----
    These are the classic sound-texture statistics (marginal moments and cross-band correlations of McDermott
    & Simoncelli 2011) on the log spectrogram, and the same kind of statistics as the texture measure used to
    judge results (so that measure is partly satisfied by construction; docs/audio.md reports it with this
    term switched off too). They are matched explicitly because Gram matrices of the random features move
    them little (docs/audio.md); a plain Gram of the spectrogram itself, normalised by the
    style's Gram as the shared loss does, is ill-conditioned for near-stationary styles (a sustained chord has
    almost no variance to divide by), which is why this term normalises by the content-style distance.

    Examples
    --------
    >>> import torch
    >>> style, content = torch.rand(1, 1, 8, 50), torch.rand(1, 1, 8, 60)
    >>> loss = BandStatsLoss([style])
    >>> loss.set_content(content)
    >>> float(loss(style)) < 1e-6, round(float(loss(content)), 4)           # the content is at distance 1
    (True, 1.0)
    """

    def __init__(self, targets: Sequence[torch.Tensor], *, blend: Sequence[float] | None = None) -> None:
        super().__init__()
        bw = [1.0 / len(targets)] * len(targets) if blend is None else [float(b) / sum(blend) for b in blend]
        with torch.no_grad():
            stats = [band_statistics(t) for t in targets]
            for k, name in enumerate(("mean", "std", "corr")):
                self.register_buffer(f"style_{name}", sum(w * s[k].mean(0, keepdim=True) for w, s in zip(bw, stats)))
                self.register_buffer(f"scale_{name}", torch.ones(()))

    def targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.style_mean, self.style_std, self.style_corr

    @torch.no_grad()
    def set_content(self, z: torch.Tensor) -> None:
        """Use ``z`` (the content) to set each statistic's normaliser ``||T(content) - T(style)||^2``."""
        for name, s, t in zip(("mean", "std", "corr"), band_statistics(z), self.targets()):
            getattr(self, f"scale_{name}").fill_(max(float((s - t).pow(2).sum(-1).mean()), 1e-8))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for name, s, t in zip(("mean", "std", "corr"), band_statistics(z), self.targets()):
            total = total + (s - t).pow(2).sum(-1).mean() / getattr(self, f"scale_{name}")
        return total / 3


def speech_bands(frequencies: torch.Tensor, *, low: float = 150.0, n_bands: int = 15) -> torch.Tensor:
    """One-third-octave bands over the speech range, as a 0/1 matrix over the rows of a spectrogram.

    Parameters
    ----------
    frequencies : torch.Tensor
        (n_bins,), the centre frequency in Hz of each row of the spectrogram (STFT bins or mel bands).
    low, n_bands : float, int
        Centre of the lowest band and the number of bands. The defaults are those of STOI (Taal et al. 2011):
        15 bands centred at 150 Hz to 3.8 kHz, edges 133 Hz to 4.3 kHz.

    Returns
    -------
    torch.Tensor
        (K, n_bins), float32: row k is 1 on the rows whose centre lies in band k. Bands that no row falls in
        (above the Nyquist frequency, or too narrow for the resolution) are left out, so K <= n_bands.

    Examples
    --------
    >>> import torch
    >>> bands = speech_bands(torch.linspace(0, 8000, 257))                  # the rows of a 512-point STFT at 16 kHz
    >>> bands.shape
    torch.Size([15, 257])
    """
    f = torch.as_tensor(frequencies, dtype=torch.float64)
    centres = low * 2.0 ** (torch.arange(n_bands, dtype=torch.float64) / 3)
    lo, hi = centres * 2.0 ** (-1 / 6), centres * 2.0 ** (1 / 6)
    m = ((f[None] >= lo[:, None]) & (f[None] < hi[:, None])).float()
    return m[m.sum(1) > 0]


def band_envelopes(z: torch.Tensor, *, basis: torch.Tensor, span: float, offset: float) -> torch.Tensor:
    """Amplitude envelopes of a network-scale spectrogram in the bands of ``basis``.

    Parameters
    ----------
    z : torch.Tensor
        (B, 1, n_bins, T) or (B, n_bins, T), network scale (``log_magnitude = z * span + offset``).
    basis : torch.Tensor
        (K, n_bins), e.g. :func:`speech_bands`.

    Returns
    -------
    torch.Tensor
        (B, K, T): ``sqrt(sum over the band's rows of magnitude ** 2)``, as STOI computes its envelopes.

    Examples
    --------
    >>> import torch
    >>> basis = torch.eye(4)[:2]                                         # two bands, one row each
    >>> band_envelopes(torch.zeros(1, 4, 3), basis=basis, span=1.0, offset=0.0)    # magnitude 1 everywhere
    tensor([[[1., 1., 1.],
             [1., 1., 1.]]])
    """
    if z.dim() == 4:
        z = z[:, 0]
    power = torch.exp(2 * (z * span + offset))
    return torch.sqrt(torch.einsum("kf,bft->bkt", basis.to(power.dtype), power) + 1e-20)


def segment_correlation(x: torch.Tensor, y: torch.Tensor, *, length: int, step: int = 1) -> torch.Tensor:
    """Pearson correlation of ``x`` and ``y`` over every segment of ``length`` frames along the last axis.

    ``x`` and ``y`` have the same shape (..., T); the result is (..., S), S = 1 + (T - length) // step. A
    segment where either is constant correlates 0.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(10.0)
    >>> segment_correlation(x, 2 * x + 1, length=5, step=5), segment_correlation(x, -x, length=10)
    (tensor([1.0000, 1.0000]), tensor([-1.0000]))
    """
    xs = x.unfold(-1, length, step)
    ys = y.unfold(-1, length, step)
    xs = xs - xs.mean(-1, keepdim=True)
    ys = ys - ys.mean(-1, keepdim=True)
    num = (xs * ys).sum(-1)
    return num / ((xs.pow(2).sum(-1) * ys.pow(2).sum(-1)).sqrt() + 1e-12)


class SpeechEnvelopeLoss(nn.Module):
    """Keeps the words of the content: ``1 - mean correlation`` of its speech-band envelopes, segment by segment.

    Parameters
    ----------
    target : torch.Tensor
        (1, 1, n_bins, T), the content on the network scale.
    basis : torch.Tensor
        (K, n_bins), the speech bands (:func:`speech_bands`).
    span, offset : float
        The network-scale mapping (see :func:`stylekit.audio.transform.to_network`).
    segment : int
        Frames per segment (STOI's 384 ms).
    dynamic_range : float
        Frames more than this many dB below the content's loudest frame are left out (as STOI leaves out
        silent frames), so the texture may fill the pauses.

    Forward: ``z -> scalar`` in [0, 2]: 0 when every band envelope of ``z`` follows the content's in every
    segment up to an offset and a gain.

    Notes
    -----
    Not in the style-transfer papers. Intelligibility rests on the slow envelopes of about a dozen speech bands
    (what a channel vocoder keeps and what STOI measures); the feature content loss keeps the whole spectrogram
    instead, which fights every texture statistic. A correlation per band and segment is blind to the band's
    level and to how far it swings, so the style keeps deciding the spectral shape (the per-band mean) and
    the fine structure inside each band (partials or noise), and only *when* each band rises and falls is
    the content's.

    Examples
    --------
    >>> import torch
    >>> basis = speech_bands(torch.linspace(0, 8000, 64))
    >>> content = torch.rand(1, 1, 64, 80)
    >>> loss = SpeechEnvelopeLoss(content, basis=basis, span=10.0, offset=-11.5, segment=20)
    >>> float(loss(content)) < 1e-4                                         # the words of the content, kept
    True
    """

    def __init__(self, target: torch.Tensor, *, basis: torch.Tensor, span: float, offset: float, segment: int,
                 dynamic_range: float = 40.0) -> None:
        super().__init__()
        self.span, self.offset = float(span), float(offset)
        with torch.no_grad():
            energy = log_energy(target, span=self.span, offset=self.offset)[0]     # nepers x 2
            keep = energy >= energy.max() - dynamic_range * math.log(10) / 10
            active = torch.nonzero(keep).flatten()
            self.register_buffer("basis", basis.float())
            self.register_buffer("active", active)
            self.segment = int(max(2, min(segment, len(active))))
            self.register_buffer("target", self._envelopes(target))

    def _envelopes(self, z: torch.Tensor) -> torch.Tensor:
        e = band_envelopes(z, basis=self.basis, span=self.span, offset=self.offset).index_select(-1, self.active)
        return e / (e.mean(-1, keepdim=True) + 1e-20)    # each band at mean 1: the correlation's floor is scale-free

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.active.numel() < 2:
            return z.new_zeros(())
        r = segment_correlation(self._envelopes(z), self.target.expand(z.shape[0], -1, -1), length=self.segment)
        return (1 - r).mean()


def row_statistics(features: torch.Tensor, *, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over time (the last axis) of every channel in every frequency row of a feature map.

    Parameters
    ----------
    features : torch.Tensor
        (B, C, H, W) with H the frequency axis and W time (an image network on a spectrogram).

    Returns
    -------
    mean, std : torch.Tensor
        (B, C, H) each.

    Examples
    --------
    >>> import torch
    >>> f = torch.tensor([[[[1.0, 3.0], [2.0, 2.0]]]])                      # 1 channel, 2 rows, 2 frames
    >>> [t.flatten().tolist() for t in row_statistics(f, eps=0.0)]
    [[2.0, 2.0], [1.0, 0.0]]
    """
    f = features.float()
    mean = f.mean(dim=-1)
    std = ((f - mean[..., None]).pow(2).mean(dim=-1) + eps).sqrt()
    return mean, std


class RowStatsLoss(nn.Module):
    """Matches the style's per-row feature statistics (:func:`row_statistics`) on some layers, each normalised
    by its content distance.

    Parameters
    ----------
    targets : list of dict
        ``{layer: (1, C, H, W)}`` feature maps of the style chunks (H the frequency axis).
    layers : sequence of str
        The layers compared (rows must agree between style and result: the same number of frequency bins).
    blend : sequence of float, optional
        Weight of each target.

    Forward: ``features -> scalar``, the mean over layers and the two statistics of
    ``||S(x) - S(style)||^2 / ||S(content) - S(style)||^2``: 1 at the content, 0 at the style. Call
    :meth:`set_content` (with the content's features) before use.

    Notes
    -----
    A Gram matrix of an image network sums over every position, so it cannot tell a partial at 200 Hz from one
    at 5 kHz, and on spectrograms it outweighs every frequency-aware term (docs/audio.md). The mean and std of
    each channel over time, row by row, are the features' counterpart of the per-band mean and std of
    :class:`BandStatsLoss` (McDermott & Simoncelli 2011): they say which local patterns occur at which
    frequency and how much they fluctuate, which is what sets the timbre of a sound texture.

    Examples
    --------
    >>> import torch
    >>> style, content = {"a": torch.rand(1, 4, 6, 30)}, {"a": torch.rand(1, 4, 6, 20) * 2}
    >>> loss = RowStatsLoss([style], layers=["a"])
    >>> loss.set_content(content)
    >>> float(loss(style)) < 1e-6, round(float(loss(content)), 4)           # the content is at distance 1
    (True, 1.0)
    """

    def __init__(self, targets: Sequence[Mapping[str, torch.Tensor]], *, layers: Sequence[str],
                 blend: Sequence[float] | None = None) -> None:
        super().__init__()
        bw = [1.0 / len(targets)] * len(targets) if blend is None else [float(b) / sum(blend) for b in blend]
        self.layers = tuple(layers)
        if not self.layers:
            raise ConfigError("RowStatsLoss needs at least one layer")
        with torch.no_grad():
            for k in self.layers:
                stats = [row_statistics(t[k]) for t in targets]
                for i, name in enumerate(("mean", "std")):
                    self.register_buffer(f"style_{k}_{name}", sum(w * s[i].mean(0, keepdim=True)
                                                                  for w, s in zip(bw, stats)))
                    self.register_buffer(f"scale_{k}_{name}", torch.ones(()))

    @torch.no_grad()
    def set_content(self, features: Mapping[str, torch.Tensor]) -> None:
        """Use the content's ``features`` to set each normaliser ``||S(content) - S(style)||^2``."""
        for k in self.layers:
            for name, s in zip(("mean", "std"), row_statistics(features[k])):
                d = float((s - getattr(self, f"style_{k}_{name}")).pow(2).sum((1, 2)).mean())
                getattr(self, f"scale_{k}_{name}").fill_(max(d, 1e-8))

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for k in self.layers:
            for name, s in zip(("mean", "std"), row_statistics(features[k])):
                d = (s - getattr(self, f"style_{k}_{name}")).pow(2).sum((1, 2)).mean()
                total = total + d / getattr(self, f"scale_{k}_{name}")
        return total / (2 * len(self.layers))
