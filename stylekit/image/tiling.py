"""Exact tiled evaluation of the style-transfer objective, so that outputs of any size fit in bounded memory.

A network pass over a 4096 x 4096 image keeps gigabytes of activations for the backward pass. Here the image
is cut into tiles; each tile is extended by a *halo* at least as wide as the receptive field of the deepest
layer, and only the tile's own (core) feature positions are used. Because every core position sees exactly
the pixels it sees in the whole image, the tiles' features are the whole image's features, cut into pieces:

- the global Gram matrix of a layer is the sum of the cores' ``F F^T`` divided by the total number of
  positions (pass 1, no gradient);
- the style loss is a function of those global Grams, so its gradient with respect to each Gram,
  ``dL/dG``, is known after pass 1;
- pass 2 runs each tile again with autograd and back-propagates the surrogate ``<dL/dG, F_core F_core^T>/N``
  plus the tile's share of the content loss (which is local); the tiles' input gradients, halos included,
  add up to the exact gradient of the whole-image objective.

So each evaluation costs two forward passes and one backward pass per tile (plus the halo overlap) instead
of one of each, and memory is bounded by the tile size. The result equals the untiled objective and gradient
up to floating-point rounding (tests/image/test_tiling.py checks this).

Tile origins are multiples of the network's total stride (``2 ** pools``), so pooling windows line up with
the whole image's.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..features.layers import LAYER_NAMES
from ..losses import functional as Fn
from ..losses.modules import GramStyleLoss, StyleTransferLoss

__all__ = ["receptive_field", "layer_stride", "halo_for", "Tile", "tile_grid", "tiled_grams",
           "TiledStyleTransferLoss"]


def receptive_field(layer: str) -> int:
    """Receptive field, in input pixels, of one position of a VGG19 layer (3x3 convolutions, 2x2 pools)."""
    size, jump = 1, 1
    for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):
            size += 2 * jump
        elif name.startswith("pool"):
            size += jump
            jump *= 2
    return size


def layer_stride(layer: str) -> int:
    """Input pixels per feature position of a layer: ``2 ** (pooling layers up to it)``."""
    return 2 ** sum(1 for n in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1] if n.startswith("pool"))


def halo_for(layers: Sequence[str]) -> int:
    """Halo width (pixels, a multiple of the deepest stride) that makes every core position exact."""
    deepest = max(layers, key=LAYER_NAMES.index)
    stride = max(layer_stride(n) for n in layers)
    need = receptive_field(deepest) // 2 + stride
    return stride * math.ceil(need / stride)


@dataclass(frozen=True)
class Tile:
    """One tile: ``region`` is the input window (core plus halo, clipped to the image); ``core`` is the part
    of the image this tile owns. Both are ``(y0, y1, x0, x1)`` in input pixels."""

    region: tuple[int, int, int, int]
    core: tuple[int, int, int, int]

    def feature_core(self, stride: int, last_y: bool, last_x: bool) -> tuple[slice, slice]:
        """The core's slice in the region's feature map of a layer with this stride."""
        ry0, _, rx0, _ = self.region
        y0, y1, x0, x1 = self.core
        return (slice((y0 - ry0) // stride, None if last_y else (y1 - ry0) // stride),
                slice((x0 - rx0) // stride, None if last_x else (x1 - rx0) // stride))


def tile_grid(height: int, width: int, tile: int, *, layers: Sequence[str]) -> list[tuple[Tile, bool, bool]]:
    """Cut an image into tiles of (at most) ``tile`` pixels a side, with the halo ``layers`` need.

    Returns ``(tile, is_last_row, is_last_column)`` triples; the cores cover the image exactly once.
    """
    stride = max(layer_stride(n) for n in layers)
    halo = halo_for(layers)
    tile = max(stride, tile // stride * stride)
    out = []
    ys, xs = list(range(0, height, tile)), list(range(0, width, tile))
    for y0 in ys:
        y1 = min(height, y0 + tile)
        for x0 in xs:
            x1 = min(width, x0 + tile)
            region = (max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo))
            out.append((Tile(region, (y0, y1, x0, x1)), y1 == height, x1 == width))
    return out


def _crop(image: torch.Tensor, tile: Tile) -> torch.Tensor:
    ry0, ry1, rx0, rx1 = tile.region
    return image[..., ry0:ry1, rx0:rx1]


def _core_features(extractor: nn.Module, region: torch.Tensor, tile: Tile, last_y: bool, last_x: bool,
                   layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Features of the core of ``tile`` from its ``region`` (the image cropped by :func:`_crop`)."""
    feats = extractor(region)
    out = {}
    for k in layers:
        sy, sx = tile.feature_core(layer_stride(k), last_y, last_x)
        out[k] = feats[k][..., sy, sx]
    return out


def _unnormalised_gram(f: torch.Tensor) -> torch.Tensor:
    f = f.reshape(f.shape[0], f.shape[1], -1)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    return torch.bmm(f, f.transpose(1, 2))


@torch.no_grad()
def tiled_grams(extractor: nn.Module, image: torch.Tensor, layers: Sequence[str], tile: int) -> dict[str, torch.Tensor]:
    """Gram matrices ``{layer: (B, C, C)}`` of a whole image (as :func:`stylekit.losses.gram_matrix` gives
    them), computed tile by tile in bounded memory."""
    sums: dict[str, torch.Tensor] = {}
    counts = dict.fromkeys(layers, 0)
    for t, ly, lx in tile_grid(image.shape[-2], image.shape[-1], tile, layers=layers):
        for k, f in _core_features(extractor, _crop(image, t), t, ly, lx, layers).items():
            g = _unnormalised_gram(f)
            sums[k] = sums[k] + g if k in sums else g
            counts[k] += f.shape[-2] * f.shape[-1]
    return {k: sums[k] / counts[k] for k in layers}


class _Objective(torch.autograd.Function):
    """Returns the tiled objective's value; its backward hands out the gradient computed in the forward."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, owner: "TiledStyleTransferLoss") -> torch.Tensor:
        total, grad = owner._value_and_grad(image)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None


class TiledStyleTransferLoss(nn.Module):
    """:class:`stylekit.losses.StyleTransferLoss` (Gram style loss), evaluated exactly tile by tile.

    Same parameters as ``StyleTransferLoss`` plus ``tile`` (core size in pixels; the halo is added on top).
    ``forward(image)`` returns ``(total, terms)``; ``total`` is differentiable with respect to ``image`` and
    its gradient is the whole-image gradient. Images are ``(1, 3, H, W)``.

    Set targets with :meth:`set_content` (tile by tile) and :meth:`set_style_grams` (e.g. from
    :func:`tiled_grams` of a large style image) or :meth:`set_style_features` (small style images).
    """

    def __init__(self, extractor: nn.Module, *, tile: int, content_layers: Mapping[str, float] | None = None,
                 style_layers: Mapping[str, float] | None = None, content_weight: float = 1.0,
                 style_weight: float = 10.0, tv_weight: float = 0.0, tv_exponent: float = 2.0,
                 normalize: bool = True) -> None:
        super().__init__()
        # The plain loss validates the settings and holds the style target and TV term.
        self.base = StyleTransferLoss(extractor, content_layers=content_layers, style_layers=style_layers,
                                      content_weight=content_weight, style_weight=style_weight,
                                      tv_weight=tv_weight, tv_exponent=tv_exponent, normalize=normalize)
        if int(tile) < 1:
            raise ConfigError(f"tile size must be >= 1 pixel, got {tile}")
        self.tile = int(tile)
        self.extractor = extractor
        self.layers = list(dict.fromkeys([*self.base.content_layers, *self.base.style_layers]))
        self._content: list[dict[str, torch.Tensor]] | None = None
        self._content_norm: dict[str, torch.Tensor] = {}
        self._shape: tuple[int, int] | None = None
        self._terms: dict[str, torch.Tensor] = {}

    @property
    def weights(self) -> dict[str, float]:
        return self.base.weights

    def grid(self, height: int, width: int) -> list[tuple[Tile, bool, bool]]:
        return tile_grid(height, width, self.tile, layers=self.layers)

    @torch.no_grad()
    def set_content(self, image: torch.Tensor) -> None:
        """Store the content target of a ``(1, 3, H, W)`` image, tile by tile (only the content layers)."""
        layers = list(self.base.content_layers)
        self._shape = tuple(image.shape[-2:])
        self._content = [_core_features(self.extractor, _crop(image, t[0]), *t, layers=layers)
                         for t in self.grid(*self._shape)]
        self._content_norm = {k: sum(c[k].float().pow(2).sum() for c in self._content) for k in layers}

    def set_style_features(self, features, *, blend: Sequence[float] | None = None) -> None:
        self.base.set_style_features(features, blend=blend)

    def set_style_grams(self, grams: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]], *,
                        blend: Sequence[float] | None = None) -> None:
        """Store the style target from Gram matrices ``{layer: (1, C, C)}`` (one dict per style)."""
        self.base.style = GramStyleLoss.from_grams(grams, layer_weights=self.base.style_layers, blend=blend,
                                                   normalize=self.base.normalize)

    def _value_and_grad(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base, w = self.base, self.base.weights
        if image.dim() != 4 or image.shape[0] != 1:
            raise ConfigError(f"tiled evaluation takes one (1, 3, H, W) image, got {tuple(image.shape)}")
        use_content, use_style = w["content"] > 0, w["style"] > 0
        if use_content and (self._content is None or tuple(image.shape[-2:]) != self._shape):
            raise ConfigError("no content target of this size: call set_content() with an image of the same size")
        if use_style and not isinstance(base.style, GramStyleLoss):
            raise ConfigError("tiled evaluation needs a Gram style target: call set_style_grams() or "
                              "set_style_features()")
        image = image.detach()
        grid = self.grid(*image.shape[-2:])
        style_layers = list(base.style_layers) if use_style else []
        content_layers = list(base.content_layers) if use_content else []
        layers = list(dict.fromkeys(style_layers + content_layers))
        acc = torch.float64 if image.dtype == torch.float64 else torch.float32

        # Pass 1: global Gram matrices and the content error, no graph kept.
        sums: dict[str, torch.Tensor] = {}
        counts = dict.fromkeys(style_layers, 0)
        content_sq = {k: image.new_zeros((), dtype=acc) for k in content_layers}
        with torch.no_grad():
            for i, (t, ly, lx) in enumerate(grid):
                feats = _core_features(self.extractor, _crop(image, t), t, ly, lx, layers)
                for k in style_layers:
                    g = _unnormalised_gram(feats[k])
                    sums[k] = sums[k] + g if k in sums else g
                    counts[k] += feats[k].shape[-2] * feats[k].shape[-1]
                for k in content_layers:
                    content_sq[k] += (feats[k] - self._content[i][k]).to(acc).pow(2).sum()

        terms: dict[str, torch.Tensor] = {}
        d_gram: dict[str, torch.Tensor] = {}
        if use_style:
            grams = {k: (sums[k] / counts[k]).requires_grad_(True) for k in style_layers}
            with torch.enable_grad():
                style = w["style"] * sum(base.style.layer_weights[k] * v for k, v in base.style.gram_losses(grams).items())
                gs = torch.autograd.grad(style, [grams[k] for k in style_layers])
            d_gram = {k: g / counts[k] for k, g in zip(style_layers, gs)}  # d loss / d (unnormalised sum)
            terms["style"] = style.detach()
        content_scale = {}
        if use_content:
            denom = {k: (self._content_norm[k].clamp_min(torch.finfo(acc).tiny) if base.normalize
                         else float(self._content[0][k].shape[1] * sum(c[k][0, 0].numel() for c in self._content)))
                     for k in content_layers}
            content_scale = {k: w["content"] * base.content_layers[k] / denom[k] for k in content_layers}
            terms["content"] = sum(content_scale[k] * content_sq[k] for k in content_layers)

        # Pass 2: per tile, back-propagate the surrogate whose gradient is this tile's share of the total.
        grad = torch.zeros_like(image)
        for i, (t, ly, lx) in enumerate(grid):
            ry0, ry1, rx0, rx1 = t.region
            region = _crop(image, t).clone().requires_grad_(True)
            with torch.enable_grad():
                feats = _core_features(self.extractor, region, t, ly, lx, layers)
                surrogate = region.new_zeros((), dtype=acc)
                for k in style_layers:
                    surrogate = surrogate + (d_gram[k] * _unnormalised_gram(feats[k])).sum()
                for k in content_layers:
                    surrogate = surrogate + content_scale[k] * (feats[k] - self._content[i][k]).to(acc).pow(2).sum()
                (g,) = torch.autograd.grad(surrogate, region)
            grad[..., ry0:ry1, rx0:rx1] += g

        if w["tv"] > 0:
            with torch.enable_grad():
                x = image.clone().requires_grad_(True)
                tv = w["tv"] * base.tv(x).to(acc)
                (g,) = torch.autograd.grad(tv, x)
            grad += g
            terms["tv"] = tv.detach()
        self._terms = terms
        total = sum(terms.values(), image.new_zeros((), dtype=acc))
        return total, grad

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = _Objective.apply(image, self)
        return total, dict(self._terms)
