"""Loss terms of audio style transfer, on spectrograms and on their feature maps.

- :class:`BandStatsLoss`: the style's per-band mean, std and band-band correlation of the log spectrogram
  (:func:`band_statistics`), the classic sound-texture statistics.
- :class:`EnvelopeLoss`: keeps the shape of the content's loudness contour (:func:`log_energy`).
- :class:`RhythmLoss`: the style's feature autocorrelation over time (:func:`autocorrelation`).

They live beside the image losses so that every loss term of stylekit has one home; only torch is imported.
Spectrograms are on the network scale of :func:`stylekit.audio.transform.to_network`, shape (B, 1, n_bins, T).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["autocorrelation", "RhythmLoss", "EnvelopeLoss", "log_energy", "band_statistics", "BandStatsLoss"]


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
