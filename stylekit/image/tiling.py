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

The same holds for every style loss that is a function of the weighted mean and second moment of a layer's
features (``gram``, ``mean-std``, ``w2``, with or without style masks: each mask's weighted sums are added up
tile by tile). ``sw`` and ``hist`` sort all positions of a layer at once and are refused.

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
from ..losses.modules import STYLE_LOSSES, GramStyleLoss, StyleTransferLoss

__all__ = ["receptive_field", "layer_stride", "halo_for", "Tile", "tile_grid", "tiled_grams", "tiled_moments",
           "TiledStyleTransferLoss"]


def receptive_field(layer: str) -> int:
    """Receptive field, in input pixels, of one position of a VGG19 layer (3x3 convolutions, 2x2 pools).

    Examples
    --------
    >>> receptive_field("conv1_1"), receptive_field("relu1_2"), receptive_field("pool1")
    (3, 5, 6)
    """
    size, jump = 1, 1
    for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):
            size += 2 * jump
        elif name.startswith("pool"):
            size += jump
            jump *= 2
    return size


def layer_stride(layer: str) -> int:
    """Input pixels per feature position of a layer: ``2 ** (pooling layers up to it)``.

    Examples
    --------
    >>> layer_stride("relu1_1"), layer_stride("relu3_1"), layer_stride("pool5")
    (1, 4, 32)
    """
    return 2 ** sum(1 for n in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1] if n.startswith("pool"))


def halo_for(layers: Sequence[str]) -> int:
    """Halo width (pixels, a multiple of the deepest stride) that makes every core position exact.

    Examples
    --------
    >>> halo_for(["relu1_1"]) <= halo_for(["relu3_1"]) <= halo_for(["relu5_1"])
    True
    """
    deepest = max(layers, key=LAYER_NAMES.index)
    stride = max(layer_stride(n) for n in layers)
    need = receptive_field(deepest) // 2 + stride
    return stride * math.ceil(need / stride)


@dataclass(frozen=True)
class Tile:
    """One tile: ``region`` is the input window (core plus halo, clipped to the image); ``core`` is the part
    of the image this tile owns. Both are ``(y0, y1, x0, x1)`` in input pixels.

    Examples
    --------
    >>> tile, last_row, last_column = tile_grid(64, 64, 32, layers=["relu2_1"])[0]
    >>> tile.core, last_row, last_column
    ((0, 32, 0, 32), False, False)
    """

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

    Examples
    --------
    >>> grid = tile_grid(64, 96, 32, layers=["relu2_1"])
    >>> len(grid), sum((t.core[1] - t.core[0]) * (t.core[3] - t.core[2]) for t, _, _ in grid) == 64 * 96
    (6, True)
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
    them), computed tile by tile in bounded memory.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> from stylekit.losses import gram_matrix
    >>> net, image = VGG19Features(["relu2_1"], winograd=False), torch.rand(1, 3, 48, 48)
    >>> torch.allclose(tiled_grams(net, image, ["relu2_1"], 24)["relu2_1"], gram_matrix(net(image)["relu2_1"]), rtol=1e-4)
    True
    """
    sums: dict[str, torch.Tensor] = {}
    counts = dict.fromkeys(layers, 0)
    for t, ly, lx in tile_grid(image.shape[-2], image.shape[-1], tile, layers=layers):
        for k, f in _core_features(extractor, _crop(image, t), t, ly, lx, layers).items():
            g = _unnormalised_gram(f)
            sums[k] = sums[k] + g if k in sums else g
            counts[k] += f.shape[-2] * f.shape[-1]
    return {k: sums[k] / counts[k] for k in layers}


@torch.no_grad()
def tiled_moments(extractor: nn.Module, image: torch.Tensor, layers: Sequence[str], tile: int
                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Means ``(1, C)`` and second moments ``(1, C, C)`` of a whole image's features (as
    :func:`stylekit.losses.weighted_moments` gives them), computed tile by tile: the style statistics of the
    moment-based losses (gram, mean-std, w2) for an image too large for memory.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> net = VGG19Features(["relu2_1"], winograd=False)
    >>> mean, second = tiled_moments(net, torch.rand(1, 3, 48, 48), ["relu2_1"], 24)["relu2_1"]
    >>> mean.shape, second.shape
    (torch.Size([1, 128]), torch.Size([1, 128, 128]))
    """
    sums: dict[str, list] = {}
    counts = dict.fromkeys(layers, 0)
    for t, ly, lx in tile_grid(image.shape[-2], image.shape[-1], tile, layers=layers):
        for k, f in _core_features(extractor, _crop(image, t), t, ly, lx, layers).items():
            s1, s2 = f.reshape(f.shape[0], f.shape[1], -1).float().sum(-1), _unnormalised_gram(f)
            sums[k] = [sums[k][0] + s1, sums[k][1] + s2] if k in sums else [s1, s2]
            counts[k] += f.shape[-2] * f.shape[-1]
    return {k: (sums[k][0] / counts[k], sums[k][1] / counts[k]) for k in layers}


def _global_core(tile: Tile, stride: int, last_y: bool, last_x: bool) -> tuple[slice, slice]:
    """The core's slice in the whole image's feature map of a layer with this stride (for per-layer masks)."""
    y0, y1, x0, x1 = tile.core
    return (slice(y0 // stride, None if last_y else y1 // stride), slice(x0 // stride, None if last_x else x1 // stride))


def _sums(f: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weight total, weighted feature sum ``(B, C)`` and weighted ``F F^T`` of one tile's core features."""
    f = f.reshape(f.shape[0], f.shape[1], -1)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    if w is None:
        return f.new_tensor(float(f.shape[-1])), f.sum(-1), _unnormalised_gram(f)
    w = w.reshape(1, 1, -1).to(f.dtype)
    return w.sum(), (f * w).sum(-1), torch.bmm(f * w, f.transpose(1, 2))


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
    """:class:`stylekit.losses.StyleTransferLoss`, evaluated exactly tile by tile.

    Same parameters as ``StyleTransferLoss`` plus ``tile`` (core size in pixels; the halo is added on top).
    ``forward(image)`` returns ``(total, terms)``; ``total`` is differentiable with respect to ``image`` and
    its gradient is the whole-image gradient. Images are ``(1, 3, H, W)``.

    Set targets with :meth:`set_content` (tile by tile) and :meth:`set_style_grams` / :meth:`set_style_moments`
    (e.g. from :func:`tiled_grams` or :func:`tiled_moments` of a large style image) or
    :meth:`set_style_features` (small style images).

    Notes
    -----
    Exact tiling needs losses that are functions of sums over positions: ``gram``, ``mean-std`` and ``w2``
    (the weighted mean and second moment, accumulated over tiles; with style masks, one pair per style over
    its mask). ``sw`` and ``hist`` sort every position of a layer at once, so they are refused.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> net = VGG19Features(["relu1_1", "relu2_1"], winograd=False).double()
    >>> args = dict(content_layers=["relu2_1"], style_layers=["relu1_1", "relu2_1"], style_weight=5.0)
    >>> plain, tiled = StyleTransferLoss(net, **args), TiledStyleTransferLoss(net, tile=16, **args)
    >>> content, style, x = (torch.rand(1, 3, 32, 40, dtype=torch.float64) for _ in range(3))
    >>> for loss in (plain, tiled):
    ...     loss.set_content(content)
    ...     loss.set_style_features(net(style))
    >>> torch.allclose(plain(x)[0], tiled(x)[0])                  # the same objective, tile by tile
    True
    """

    def __init__(self, extractor: nn.Module, *, tile: int, content_layers: Mapping[str, float] | None = None,
                 style_layers: Mapping[str, float] | None = None, content_weight: float = 1.0,
                 style_weight: float = 5.0, tv_weight: float = 0.0, tv_exponent: float = 2.0,
                 normalize: bool = True, style_loss: str = "gram", style_options: Mapping | None = None) -> None:
        super().__init__()
        # The plain loss validates the settings and holds the style target and TV term.
        self.base = StyleTransferLoss(extractor, content_layers=content_layers, style_layers=style_layers,
                                      content_weight=content_weight, style_weight=style_weight,
                                      tv_weight=tv_weight, tv_exponent=tv_exponent, normalize=normalize,
                                      style_loss=style_loss, style_options=style_options)
        if not STYLE_LOSSES[self.base.style_loss_kind].moment_based:
            raise ConfigError(f"--style-loss {self.base.style_loss_kind} cannot be tiled exactly (it sorts every "
                              "position of a layer at once): use a smaller --size, more --max-memory, or "
                              "--style-loss gram, mean-std or w2")
        if int(tile) < 1:
            raise ConfigError(f"tile size must be >= 1 pixel, got {tile}")
        self.tile = int(tile)
        self.extractor = extractor
        self.layers = list(dict.fromkeys([*self.base.content_layers, *self.base.style_layers]))
        self._content: list[dict[str, torch.Tensor]] | None = None
        self._content_norm: dict[str, torch.Tensor] = {}
        self._content_mask: torch.Tensor | None = None
        self._shape: tuple[int, int] | None = None
        self._terms: dict[str, torch.Tensor] = {}

    @property
    def weights(self) -> dict[str, float]:
        return self.base.weights

    def grid(self, height: int, width: int) -> list[tuple[Tile, bool, bool]]:
        return tile_grid(height, width, self.tile, layers=self.layers)

    @torch.no_grad()
    def set_content(self, image: torch.Tensor, *, mask: torch.Tensor | None = None) -> None:
        """Store the content target of a ``(1, 3, H, W)`` image, tile by tile (only the content layers);
        ``mask`` ``(1, 1, H, W)``: where the content term applies."""
        layers = list(self.base.content_layers)
        self._shape = tuple(image.shape[-2:])
        self._content_mask = mask
        self._content = [_core_features(self.extractor, _crop(image, t[0]), *t, layers=layers)
                         for t in self.grid(*self._shape)]
        self._content_norm = {k: sum(c[k].float().pow(2).sum() for c in self._content) for k in layers}

    def set_style_features(self, features, *, blend: Sequence[float] | None = None, masks=None) -> None:
        self.base.set_style_features(features, blend=blend, masks=masks)

    def set_style_moments(self, moments, *, blend: Sequence[float] | None = None, masks=None) -> None:
        """Store the style target from ``{layer: (mean (1, C), second moment (1, C, C))}`` (one dict per style)."""
        self.base.set_style_features(moments, blend=blend, masks=masks)

    def set_style_grams(self, grams: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]], *,
                        blend: Sequence[float] | None = None, masks=None) -> None:
        """Store the (Gram) style target from Gram matrices ``{layer: (1, C, C)}`` (one dict per style)."""
        self.base.style = GramStyleLoss.from_grams(grams, layer_weights=self.base.style_layers, blend=blend,
                                                   normalize=self.base.normalize, masks=masks)

    def _masks(self, layer: str, hw: tuple[int, int]) -> torch.Tensor | None:
        """The style masks of ``layer`` over the whole image ``(S, 1, h, w)``, or None when unmasked."""
        style = self.base.style
        if not style.masked:
            return None
        s = layer_stride(layer)
        return style.layer_masks((hw[0] // s, hw[1] // s))

    def _content_weights(self, layer: str, hw: tuple[int, int]) -> torch.Tensor | None:
        if self._content_mask is None:
            return None
        s = layer_stride(layer)
        return Fn.resize_mask(self._content_mask.to(torch.float32), (hw[0] // s, hw[1] // s))

    def _tile_terms(self, feats, i: int, t, ly: bool, lx: bool, masks: dict, cmasks: dict, acc) -> tuple[dict, dict]:
        """One tile's share: ``{layer: [(weight, sum, FF^T) per style group]}`` and ``{layer: content error}``."""
        style, content = {}, {}
        for k, m in masks.items():
            sl = _global_core(t, layer_stride(k), ly, lx)
            style[k] = [_sums(feats[k], None)] if m is None else [_sums(feats[k], m[g, 0][sl]) for g in range(m.shape[0])]
        for k, m in cmasks.items():
            sq = (feats[k] - self._content[i][k]).to(acc).pow(2)
            if m is not None:
                sq = sq * m[0, 0][_global_core(t, layer_stride(k), ly, lx)].to(acc)
            content[k] = sq.sum()
        return style, content

    def _style_gradients(self, sums: dict) -> tuple[torch.Tensor, dict]:
        """The style term from the accumulated sums, and its gradient with respect to each group's sums."""
        base, w = self.base, self.base.weights
        moments = {k: [((s1 / s0).detach().requires_grad_(True), (s2 / s0).detach().requires_grad_(True))
                       for s0, s1, s2 in groups] for k, groups in sums.items()}
        leaves = [x for k in moments for pair in moments[k] for x in pair]
        with torch.enable_grad():
            losses = base.style.moment_losses(moments)
            style = w["style"] * sum(base.style.layer_weights[k] * v for k, v in losses.items())
            grads = torch.autograd.grad(style, leaves, allow_unused=True)
        it = iter(grads)
        d = {}
        for k, groups in sums.items():
            d[k] = []
            for s0, s1, s2 in groups:
                g1, g2 = next(it), next(it)
                d[k].append((None if g1 is None else g1 / s0, None if g2 is None else g2 / s0))
        return style.detach(), d

    def _check(self, image: torch.Tensor) -> None:
        w = self.base.weights
        if image.dim() != 4 or image.shape[0] != 1:
            raise ConfigError(f"tiled evaluation takes one (1, 3, H, W) image, got {tuple(image.shape)}")
        if w["content"] > 0 and (self._content is None or tuple(image.shape[-2:]) != self._shape):
            raise ConfigError("no content target of this size: call set_content() with an image of the same size")
        if w["style"] > 0 and not getattr(self.base.style, "moment_based", False):
            raise ConfigError("tiled evaluation needs a style target: call set_style_grams(), set_style_moments() "
                              "or set_style_features()")

    def _value_and_grad(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(image)
        base, w = self.base, self.base.weights
        image = image.detach()
        hw = tuple(image.shape[-2:])
        grid = self.grid(*hw)
        masks = {k: self._masks(k, hw) for k in base.style_layers} if w["style"] > 0 else {}
        cmasks = {k: self._content_weights(k, hw) for k in base.content_layers} if w["content"] > 0 else {}
        layers = list(dict.fromkeys([*masks, *cmasks]))
        acc = torch.float64 if image.dtype == torch.float64 else torch.float32

        # Pass 1: the style statistics and the content error, no graph kept.
        sums: dict[str, list] = {}
        content_sq = {k: image.new_zeros((), dtype=acc) for k in cmasks}
        with torch.no_grad():
            for i, (t, ly, lx) in enumerate(grid):
                feats = _core_features(self.extractor, _crop(image, t), t, ly, lx, layers)
                style, content = self._tile_terms(feats, i, t, ly, lx, masks, cmasks, acc)
                for k, groups in style.items():
                    sums[k] = [tuple(a + b for a, b in zip(old, new)) for old, new in zip(sums[k], groups)] \
                        if k in sums else groups
                for k, v in content.items():
                    content_sq[k] += v

        terms: dict[str, torch.Tensor] = {}
        d_sums: dict = {}
        if masks:
            terms["style"], d_sums = self._style_gradients(sums)
        content_scale = {}
        if cmasks:
            denom = {k: (self._content_norm[k].clamp_min(torch.finfo(acc).tiny) if base.normalize
                         else float(self._content[0][k].shape[1] * sum(c[k][0, 0].numel() for c in self._content)))
                     for k in cmasks}
            content_scale = {k: w["content"] * base.content_layers[k] / denom[k] for k in cmasks}
            terms["content"] = sum(content_scale[k] * content_sq[k] for k in cmasks)

        grad = self._pass2(image, grid, layers, masks, cmasks, d_sums, content_scale, acc)
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

    def _pass2(self, image, grid, layers, masks, cmasks, d_sums, content_scale, acc) -> torch.Tensor:
        """Per tile, back-propagate the surrogate whose gradient is this tile's share of the total."""
        grad = torch.zeros_like(image)
        for i, (t, ly, lx) in enumerate(grid):
            ry0, ry1, rx0, rx1 = t.region
            region = _crop(image, t).clone().requires_grad_(True)
            with torch.enable_grad():
                feats = _core_features(self.extractor, region, t, ly, lx, layers)
                style, content = self._tile_terms(feats, i, t, ly, lx, masks, cmasks, acc)
                surrogate = region.new_zeros((), dtype=acc)
                for k, groups in style.items():
                    for (_, s1, s2), (d1, d2) in zip(groups, d_sums[k]):
                        if d1 is not None:
                            surrogate = surrogate + (d1 * s1).sum()
                        if d2 is not None:
                            surrogate = surrogate + (d2 * s2).sum()
                for k, v in content.items():
                    surrogate = surrogate + content_scale[k] * v
                (g,) = torch.autograd.grad(surrogate, region)
            grad[..., ry0:ry1, rx0:rx1] += g
        return grad

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = _Objective.apply(image, self)
        return total, dict(self._terms)
