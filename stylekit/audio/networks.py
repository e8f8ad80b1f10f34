"""Feature networks for spectrograms (the audio loss terms are in :mod:`stylekit.losses.audio`).

Two extractors, both usable by :class:`stylekit.losses.StyleTransferLoss` (a module returning
``{layer: features}`` with a ``layers`` attribute):

- :class:`RandomConvBank` (``"random"``): frozen, seeded random 1-D convolutions over time with the frequency
  bins as input channels, several widths side by side (Ulyanov & Lebedev 2016; Antognini et al. 2019).
- :func:`spectrogram_vgg19` (``"vgg19"``): VGG19 seeing the spectrogram as a grey image, through the shared
  :class:`stylekit.features.MonoAdapter` (frequency = height, time = width).

Both take the spectrogram on the network scale of :func:`stylekit.audio.transform.to_network`, shape
(B, 1, n_bins, T).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .config import NETWORKS

__all__ = ["RandomConvBank", "spectrogram_vgg19", "FrequencyBands", "NETWORKS", "VGG19_CONTENT_LAYERS",
           "VGG19_STYLE_LAYERS", "VGG19_ROW_LAYERS", "banded_layers"]

VGG19_CONTENT_LAYERS = {"relu4_2": 1.0}
VGG19_STYLE_LAYERS = {k: 0.2 for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
# the shallow style layers, whose rows still resolve frequency (224, 112 and 56 rows for 224 mel bands)
VGG19_ROW_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


class RandomConvBank(nn.Module):
    """A bank of wide random 1-D convolutions over time (frequency bins as channels), one ReLU layer deep.

    Parameters
    ----------
    n_bins : int
        Input channels (mel bands or STFT bins).
    widths : sequence of int
        Filter widths in frames; one layer ``"conv_w{width}"`` per width.
    channels : int
        Filters per width.
    seed : int
        Seed of the weights (the bank is a pure function of its arguments).

    Forward
    -------
    x : torch.Tensor
        (B, 1, n_bins, T) or (B, n_bins, T), the spectrogram on the network scale (about [0, 1]).
    returns : dict
        ``{"conv_w{w}": (B, channels, T - w + 1)}`` ("valid" convolution: no padding artefacts in the
        statistics), ReLU-activated.

    Notes
    -----
    Ulyanov & Lebedev (2016) used one layer of 4096 filters of width 11; Antognini et al. (2019) showed that
    several widths, each with fewer filters, capture both fine and coarse time structure better. The pipeline
    uses widths 3, 7, 15 and 31 frames (70 ms to 720 ms at hop 512) with 128 filters each (fewer filters move
    the band statistics less, more cost time without scoring better; docs/audio.md). Weights are He-normal
    (std ``sqrt(2 / (n_bins * w))``) so every layer's activations have a similar scale; the biases are zero.

    Examples
    --------
    >>> import torch
    >>> bank = RandomConvBank(32, widths=(3, 7), channels=8)
    >>> {k: tuple(v.shape) for k, v in bank(torch.rand(1, 1, 32, 50)).items()}      # (B, channels, T - w + 1)
    {'conv_w3': (1, 8, 48), 'conv_w7': (1, 8, 44)}
    """

    def __init__(self, n_bins: int, *, widths: Sequence[int] = (3, 7, 15, 31), channels: int = 128,
                 seed: int = 0) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or any(w < 1 for w in widths) or len(set(widths)) != len(widths):
            raise ConfigError(f"widths must be distinct positive integers, got {widths}")
        if channels < 1 or n_bins < 1:
            raise ConfigError(f"channels and n_bins must be positive, got {channels}, {n_bins}")
        self.n_bins, self.widths, self.channels, self.seed = int(n_bins), widths, int(channels), int(seed)
        g = torch.Generator().manual_seed(int(seed))
        for w in widths:
            weight = torch.randn(channels, n_bins, w, generator=g) * (2.0 / (n_bins * w)) ** 0.5
            self.register_buffer(f"weight_w{w}", weight)
        self.layers = tuple(f"conv_w{w}" for w in widths)
        self.requires_grad_(False)

    @property
    def min_frames(self) -> int:
        """Shortest input (frames) the widest filter accepts."""
        return max(self.widths)

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, widths={self.widths}, channels={self.channels}, seed={self.seed}"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() == 4:
            if x.shape[1] != 1:
                raise ConfigError(f"expected (B, 1, n_bins, T), got {tuple(x.shape)}")
            x = x[:, 0]
        if x.dim() != 3 or x.shape[1] != self.n_bins:
            raise ConfigError(f"expected (B, {self.n_bins}, T) spectrograms, got {tuple(x.shape)}")
        if x.shape[-1] < self.min_frames:
            raise ConfigError(f"spectrogram has {x.shape[-1]} frames, the widest filter needs {self.min_frames}")
        return {f"conv_w{w}": F.relu(F.conv1d(x, getattr(self, f"weight_w{w}").to(x.dtype))) for w in self.widths}


def spectrogram_vgg19(layers: Sequence[str], *, weights: str = "caffe", pooling: str = "max") -> nn.Module:
    """VGG19 features of a spectrogram seen as a 1-channel image.

    Returns ``MonoAdapter(VGG19Features(layers))``: input (B, 1, n_bins, T) in about [0, 1] (the network
    scale), fed as grey RGB; output ``{layer: (B, C, H', W')}``.

    Notes
    -----
    The user's design. VGG19 was trained on photographs, where the two image axes are interchangeable; on a
    spectrogram they are not (a shift in frequency changes the sound), so its features are a weaker prior for
    audio than for images, and it needs at least 16 frequency bins and frames per pooling stage. The pipeline
    therefore takes its Grams per frequency band (:class:`FrequencyBands`) and matches the per-row statistics of
    ``VGG19_ROW_LAYERS`` (:class:`stylekit.losses.audio.RowStatsLoss`).

    Examples
    --------
    >>> import torch
    >>> spectrogram_vgg19(["relu1_1"])(torch.rand(1, 1, 32, 50))["relu1_1"].shape
    torch.Size([1, 64, 32, 50])
    """
    from ..features import MonoAdapter, VGG19Features

    return MonoAdapter(VGG19Features(list(layers), weights=weights, pooling=pooling))


class FrequencyBands(nn.Module):
    """Adds each of some layers cut into horizontal strips (frequency bands) as layers of its own.

    Parameters
    ----------
    inner : nn.Module
        An extractor of (B, C, H, W) feature maps with H the frequency axis (e.g. :func:`spectrogram_vgg19`).
    banded : sequence of str
        The layers to cut.
    n_bands : int
        Strips per layer, of (nearly) equal height; layer ``"relu1_1"`` gives ``"relu1_1@0"`` (lowest
        frequencies) ... ``"relu1_1@{n_bands - 1}"``.

    Notes
    -----
    A Gram matrix sums over every position, so an image network's style term cannot tell a partial at 200 Hz
    from one at 5 kHz: the style's texture ends up anywhere on the frequency axis. A Gram per band keeps the
    statistics where they are in frequency (the audio counterpart of the spatial guidance of Gatys et al. 2017).

    Examples
    --------
    >>> import torch
    >>> net = FrequencyBands(spectrogram_vgg19(["relu1_1"]), ["relu1_1"], n_bands=2)
    >>> sorted(net(torch.rand(1, 1, 32, 50)))
    ['relu1_1', 'relu1_1@0', 'relu1_1@1']
    """

    def __init__(self, inner: nn.Module, banded: Sequence[str], *, n_bands: int = 4) -> None:
        super().__init__()
        if n_bands < 1:
            raise ConfigError(f"n_bands must be >= 1, got {n_bands}")
        self.inner, self.banded, self.n_bands = inner, tuple(banded), int(n_bands)
        self.layers = tuple(inner.layers) + banded_layers(self.banded, n_bands=self.n_bands)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = dict(self.inner(x))
        for name in self.banded:
            h = f[name].shape[2]
            edges = [round(k * h / self.n_bands) for k in range(self.n_bands + 1)]
            for k in range(self.n_bands):
                a, b = edges[k], max(edges[k + 1], edges[k] + 1)
                f[f"{name}@{k}"] = f[name][:, :, min(a, h - 1):min(b, h)]
        return f


def banded_layers(layers: Sequence[str], *, n_bands: int) -> tuple[str, ...]:
    """The names :class:`FrequencyBands` gives the strips of ``layers``.

    Examples
    --------
    >>> banded_layers(["relu1_1"], n_bands=2)
    ('relu1_1@0', 'relu1_1@1')
    """
    return tuple(f"{name}@{k}" for name in layers for k in range(n_bands))
