"""Loss modules: each holds its configuration and its targets (as buffers) and calls :mod:`.functional`.

Losses take *features* (the dict an extractor returns), so one network pass serves every layer. Targets
are computed once under ``no_grad`` and registered as buffers, so ``.to(device)`` moves them and
``state_dict()`` saves them.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import torch
from torch import nn

from ..errors import ConfigError, InputError
from . import functional as Fn

__all__ = ["ContentLoss", "GramStyleLoss", "GuidedGramStyleLoss", "MeanStdStyleLoss", "W2StyleLoss",
           "SlicedWassersteinStyleLoss", "HistogramStyleLoss", "TVLoss", "StyleTransferLoss", "STYLE_LOSSES",
           "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS", "REDUCTIONS", "LayerWeights", "check_image"]

Features = Mapping[str, torch.Tensor]


def _check_weights(weights: Mapping[str, float] | Sequence[str] | str, what: str) -> dict[str, float]:
    """``{layer: weight}``; a layer name or a list of names means equal weights that sum to 1."""
    if isinstance(weights, str):
        weights = [weights]
    if not isinstance(weights, Mapping):
        names = list(dict.fromkeys(weights)) if isinstance(weights, Sequence) else None
        if not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{what}s must be a {{layer: weight}} mapping or a list of layer names, "
                              f"got {weights!r}")
        weights = {n: 1.0 / len(names) for n in names}
    out = {}
    for k, w in weights.items():
        w = float(w)
        if not w >= 0 or w == float("inf"):
            raise ConfigError(f"{what} weight for {k!r} must be a finite number >= 0, got {w}")
        out[k] = w
    return out


def _blend_weights(n: int, blend: Sequence[float] | None) -> list[float]:
    if blend is None:
        return [1.0 / n] * n
    if len(blend) != n:
        raise ConfigError(f"got {len(blend)} blend weights for {n} styles")
    w = [float(b) for b in blend]
    if any(not b >= 0 or b == float("inf") for b in w) or sum(w) <= 0:
        raise ConfigError(f"blend weights must be >= 0 and not all zero, got {list(blend)}")
    s = sum(w)
    return [b / s for b in w]


class ContentLoss(nn.Module):
    """Feature reconstruction loss against a fixed target.

    Parameters
    ----------
    target : features ``(1 or B, C, ...)``; stored as a buffer.
    normalize : MSE (False) or squared error relative to ``||target||^2`` (True).
    mask : ``(1, 1, H, W)`` in [0, 1], any resolution: where the content counts (full weight where 1, none
        where 0); area-averaged to the target's resolution once.

    Examples
    --------
    >>> import torch
    >>> target = torch.rand(1, 4, 6, 6)
    >>> ContentLoss(target)(target), ContentLoss(target)(torch.zeros(1, 4, 6, 6)) > 0
    (tensor(0.), tensor(True))
    """

    def __init__(self, target: torch.Tensor, *, normalize: bool = False, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.normalize = normalize
        self.register_buffer("target", target.detach().clone())
        if mask is not None and target.dim() == 4:
            mask = Fn.resize_mask(mask.to(target.device, torch.float32).reshape(1, 1, *mask.shape[-2:]),
                                  target.shape[-2:])
        self.register_buffer("mask", mask)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return Fn.content_loss(input, self.target, normalize=self.normalize, mask=self.mask)


class _StyleLossBase(nn.Module):
    """Shared set-up of the style losses: styles, per-layer weights, blend and spatial masks; subclasses say
    which statistics of a style's features are its target (:meth:`_targets`) and how one layer's loss is
    computed from features and a target (:meth:`_loss`).

    Without masks the styles are blended into one target per layer. With ``masks`` (one per style, see
    :func:`stylekit.losses.functional.normalize_masks`) each style keeps its own target and is compared with
    the output's statistics over its own region, weighted by its share of the image; the masks are resized to
    each layer's resolution when the features arrive. A single mask that is white everywhere is no mask.
    """

    #: Losses whose statistics are sums over positions (and so can be accumulated tile by tile).
    moment_based = False

    def __init__(self, targets: Features | Sequence[Features], *, layer_weights: Mapping[str, float] | None = None,
                 blend: Sequence[float] | None = None, normalize: bool = False,
                 masks: torch.Tensor | Sequence[torch.Tensor] | None = None) -> None:
        super().__init__()
        styles = [targets] if isinstance(targets, Mapping) else list(targets)
        if not styles:
            raise ConfigError(f"{type(self).__name__} needs at least one style target")
        layers = list(layer_weights) if layer_weights is not None else list(styles[0])
        self.layer_weights = _check_weights(layer_weights or {k: 1.0 / len(layers) for k in layers}, "style layer")
        self.normalize = normalize
        self.n_styles = len(styles)
        bw = _blend_weights(len(styles), blend)
        self._set_masks(masks, bw)
        groups = [(str(i), [s], [1.0]) for i, s in enumerate(styles)] if self.masked else [("", styles, bw)]
        self._names: list[str] = []
        with torch.no_grad():
            for layer in layers:
                for s in styles:
                    if layer not in s:
                        raise ConfigError(f"style target has no features for layer {layer!r}")
                for tag, group, w in groups:
                    for name, value in self._targets([s[layer] for s in group], w).items():
                        self.register_buffer(f"{name}{tag}_{layer}", value)
                        if name not in self._names:
                            self._names.append(name)

    def _set_masks(self, masks, blend: list[float]) -> None:
        self.masked = False
        self._layer_masks: dict[tuple[int, int], torch.Tensor] = {}
        if masks is None:
            return
        m = torch.stack([torch.as_tensor(x).reshape(x.shape[-2:]) for x in masks])[:, None] \
            if not isinstance(masks, torch.Tensor) else masks.reshape(-1, 1, *masks.shape[-2:])
        if m.shape[0] != self.n_styles:
            raise ConfigError(f"got {m.shape[0]} style masks for {self.n_styles} styles")
        m = m.float().clamp(0, 1)
        if bool((m.flatten(1).amax(1) <= 0).any()):
            raise ConfigError("a style mask is black everywhere: its style would go nowhere")
        if self.n_styles == 1 and bool((m == 1).all()):
            return                       # white everywhere: exactly the unmasked loss
        weights, coef = Fn.normalize_masks(m, blend)
        self.masked = True
        self.register_buffer("mask_weights", weights)
        self.register_buffer("mask_coefficients", coef)

    def layer_masks(self, hw: tuple[int, int]) -> torch.Tensor:
        """The style masks' weights at a feature map's resolution ``(S, 1, h, w)`` (area averages, cached)."""
        hw = tuple(int(v) for v in hw)
        m = self._layer_masks.get(hw)
        if m is None or m.device != self.mask_weights.device:
            m = self._layer_masks[hw] = Fn.resize_mask(self.mask_weights, hw)
        return m

    def target(self, layer: str, style: int | None = None) -> dict[str, torch.Tensor]:
        """The target statistics of a layer (of one style when masked)."""
        tag = "" if style is None else str(style)
        return {n: getattr(self, f"{n}{tag}_{layer}") for n in self._names}

    def _targets(self, features: list[torch.Tensor], blend: list[float]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _loss(self, layer: str, features: torch.Tensor, target: dict[str, torch.Tensor],
              mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def layer_losses(self, features: Features) -> dict[str, torch.Tensor]:
        """Unweighted per-layer losses."""
        if not self.masked:
            return {k: self._loss(k, features[k], self.target(k), None) for k in self.layer_weights}
        out = {}
        for k in self.layer_weights:
            m = self.layer_masks(features[k].shape[-2:])
            out[k] = sum(self.mask_coefficients[i] * self._loss(k, features[k], self.target(k, i), m[i:i + 1])
                         for i in range(self.n_styles))
        return out

    def moment_losses(self, moments: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]]
                      ) -> dict[str, torch.Tensor]:
        """Per-layer losses from the output's :func:`~stylekit.losses.functional.weighted_moments`:
        ``{layer: [(mean, second)]}``, one pair per style when masked (over its mask's weights), else one."""
        if not self.moment_based:
            raise ConfigError(f"{type(self).__name__} is not a function of feature moments")
        out = {}
        for k in self.layer_weights:
            if not self.masked:
                out[k] = self._moment_loss(*moments[k][0], self.target(k))
            else:
                out[k] = sum(self.mask_coefficients[i] * self._moment_loss(*moments[k][i], self.target(k, i))
                             for i in range(self.n_styles))
        return out

    def _moment_loss(self, mean: torch.Tensor, second: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def weighted(self, features: Features) -> torch.Tensor:
        """The loss: per-layer losses weighted by ``layer_weights`` and summed (batch mean)."""
        losses = self.layer_losses(features)
        return sum(self.layer_weights[k] * v for k, v in losses.items())

    def forward(self, features: Features) -> torch.Tensor:
        return self.weighted(features)


def _as_moments(f) -> tuple[torch.Tensor, torch.Tensor]:
    """A style's ``(mean, second moment)``: given as such (tiled statistics), or computed from features."""
    return tuple(f) if isinstance(f, (tuple, list)) else Fn.weighted_moments(f)


class GramStyleLoss(_StyleLossBase):
    """Gram-matrix style loss over several layers, against one style or a blend of several.

    Parameters
    ----------
    targets : ``{layer: features}`` of one style image, or a list of such dicts for several styles. The styles
        may differ in spatial size: Grams are normalised by the number of positions.
    layer_weights : ``{layer: weight}``; default equal weights ``1 / n_layers`` over the target layers.
    blend : one weight per style, normalised to sum to 1 (default equal).
    normalize : per-layer distance relative to ``||G_target||^2`` (True) or plain MSE of Gram entries.
    masks : one mask per style (``(S, 1, H, W)`` or a list of ``(H, W)``, values in [0, 1]): guided Gram
        matrices (Gatys et al. 2017), each style matched over its own region; see :class:`GuidedGramStyleLoss`.

    Notes
    -----
    Styles are blended by averaging their Gram matrices. For the MSE this has the same minimiser as a
    weighted sum of per-style losses (the two differ by a constant), at the cost of one target per layer.
    :meth:`from_grams` builds the loss from Gram matrices computed elsewhere (for example tile by tile, see
    :mod:`stylekit.image.tiling`).

    Examples
    --------
    >>> import torch
    >>> style = {"relu1_1": torch.rand(1, 4, 6, 6), "relu2_1": torch.rand(1, 8, 3, 3)}
    >>> loss = GramStyleLoss(style, normalize=True)
    >>> loss(style), loss({k: 2 * v for k, v in style.items()})      # Grams scale by 4: error 9 relative
    (tensor(0.), tensor(9.))
    """

    moment_based = True

    @classmethod
    def from_grams(cls, grams: Features | Sequence[Features], *, layer_weights: Mapping[str, float] | None = None,
                   blend: Sequence[float] | None = None, normalize: bool = False, masks=None) -> "GramStyleLoss":
        """The same loss from precomputed ``{layer: (1, C, C)}`` Gram matrices (one dict per style)."""
        self = cls.__new__(cls)
        self._given_grams = True
        _StyleLossBase.__init__(self, grams, layer_weights=layer_weights, blend=blend, normalize=normalize,
                                masks=masks)
        return self

    def _targets(self, features, blend):
        if getattr(self, "_given_grams", False):
            grams = features
        else:
            grams = [f[1] if isinstance(f, (tuple, list)) else Fn.gram_matrix(f) for f in features]
        return {"gram": sum(w * g.float().mean(0, keepdim=True) for w, g in zip(blend, grams))}

    def _loss(self, layer, features, target, mask):
        if mask is None:
            return Fn.style_loss(features, target["gram"], normalize=self.normalize)
        return Fn.gram_loss(Fn.guided_gram(features, mask), target["gram"], normalize=self.normalize)

    def _moment_loss(self, mean, second, target):
        return Fn.gram_loss(second, target["gram"], normalize=self.normalize)

    def gram_losses(self, grams: Features) -> dict[str, torch.Tensor]:
        """Unweighted per-layer losses of already-computed Gram matrices ``{layer: (B, C, C)}`` (unmasked)."""
        return {k: Fn.gram_loss(grams[k], self.target(k)["gram"], normalize=self.normalize)
                for k in self.layer_weights}


class GuidedGramStyleLoss(GramStyleLoss):
    """Guided Gram style loss (Gatys et al. 2017): each style matched over its own region of the output.

    ``GuidedGramStyleLoss(targets, masks, ...)`` is :class:`GramStyleLoss` with ``masks`` required: one mask per
    style, ``(S, 1, H, W)`` or a list of ``(H, W)`` tensors in [0, 1] at the image's resolution (any size:
    they are area-averaged to each layer's feature map). Overlapping or partial masks are normalised by
    :func:`stylekit.losses.functional.normalize_masks`. Usable as a training loss: the masks broadcast over
    the batch.

    Examples
    --------
    >>> import torch
    >>> styles = [{"relu1_1": torch.rand(1, 4, 8, 8)}, {"relu1_1": torch.rand(1, 4, 8, 8)}]
    >>> left = torch.zeros(8, 8)
    >>> left[:, :4] = 1
    >>> loss = GuidedGramStyleLoss(styles, [left, 1 - left])      # style 1 on the left, style 2 on the right
    >>> loss({"relu1_1": torch.rand(2, 4, 8, 8)}).shape
    torch.Size([])
    """

    def __init__(self, targets: Features | Sequence[Features], masks, *, layer_weights=None, blend=None,
                 normalize: bool = False) -> None:
        if masks is None:
            raise ConfigError("GuidedGramStyleLoss needs one mask per style")
        super().__init__(targets, layer_weights=layer_weights, blend=blend, normalize=normalize, masks=masks)


class MeanStdStyleLoss(_StyleLossBase):
    """Style loss on per-channel mean and standard deviation of features (cheaper than Grams, O(C) not O(C^2)).

    Same parameters as :class:`GramStyleLoss`; blended styles average their statistics.

    Examples
    --------
    >>> import torch
    >>> style = {"relu1_1": torch.rand(1, 4, 6, 6)}
    >>> MeanStdStyleLoss(style)(style)
    tensor(0.)
    """

    moment_based = True

    def _targets(self, features, blend):
        stats = [Fn.moments_mean_std(*f) if isinstance(f, (tuple, list)) else Fn.mean_std(f) for f in features]
        return {"mean": sum(w * m.mean(0, keepdim=True) for w, (m, _) in zip(blend, stats)),
                "std": sum(w * d.mean(0, keepdim=True) for w, (_, d) in zip(blend, stats))}

    def _loss(self, layer, features, target, mask):
        return Fn.mean_std_loss(features, target["mean"], target["std"], normalize=self.normalize, mask=mask)

    def _moment_loss(self, mean, second, target):
        m, s = Fn.moments_mean_std(mean, second)
        return (Fn._relative_or_mean((m - target["mean"]).pow(2), target["mean"].expand_as(m), self.normalize)
                + Fn._relative_or_mean((s - target["std"]).pow(2), target["std"].expand_as(s), self.normalize))


#: The covariance regularisation of the W2 target (as :func:`stylekit.losses.functional.gaussian_w2`'s default).
W2_EPS = 1e-2


class W2StyleLoss(_StyleLossBase):
    """Gaussian 2-Wasserstein style loss: means and covariances of the features (as in crowsonkb's
    style-transfer-pytorch); the style side's covariance square root is computed once.

    Same parameters as :class:`GramStyleLoss`. Blended styles are fitted as their mixture (the mean and second
    moment averaged with the blend weights), so blends match what a tiled run computes.

    Examples
    --------
    >>> import torch
    >>> style = {"relu1_1": torch.rand(1, 4, 6, 6)}
    >>> float(W2StyleLoss(style)(style)) < 1e-3
    True
    """

    moment_based = True

    def _targets(self, features, blend):
        moments = [_as_moments(f) for f in features]
        mean = sum(w * m.float().mean(0, keepdim=True) for w, (m, _) in zip(blend, moments))
        second = sum(w * s.float().mean(0, keepdim=True) for w, (_, s) in zip(blend, moments))
        mean, cov = Fn.moments_mean_cov(mean, second)
        return {"mean": mean, "cov": cov, "cov_sqrt": Fn.sqrtm(Fn._regularised(cov, W2_EPS))}

    def _loss(self, layer, features, target, mask):
        mean, cov = Fn.weighted_mean_cov(features, mask)
        return Fn.w2_from_moments(mean, cov, target["mean"], target["cov"], target_cov_sqrt=target["cov_sqrt"],
                                  normalize=self.normalize)

    def _moment_loss(self, mean, second, target):
        _, cov = Fn.moments_mean_cov(mean, second)
        return Fn.w2_from_moments(mean, cov, target["mean"], target["cov"], target_cov_sqrt=target["cov_sqrt"],
                                  normalize=self.normalize)


class SlicedWassersteinStyleLoss(_StyleLossBase):
    """Sliced Wasserstein style loss (Heitz et al., CVPR 2021): the features' full distribution, compared
    along random directions that change from one evaluation to the next.

    Same parameters as :class:`GramStyleLoss`, plus ``projections`` (directions per layer; default
    ``projection_ratio`` times the layer's channels, rounded; ratio 1, as many as channels, is the paper's
    choice) and ``seed``. Draws are deterministic: evaluation ``n`` of a loss with seed ``s`` uses the
    directions of :meth:`redraw(n) <redraw>`, so a run can be repeated and resumed. The pipeline sets
    ``auto_redraw = False`` and calls :meth:`redraw` itself with a key made of its seed, scale and step.
    Blended styles are matched as their mixture (each style's positions weighted).

    Notes
    -----
    Heitz et al. draw new directions at every step. Here each key selects one of ``bank`` sets of directions
    drawn from the seed, so that the style's side (its projections, sorted: as costly as the output's) is
    computed once per set and reused, while the output still sees ``bank`` sets of directions over a run (``stylize_image`` with L-BFGS holds each set for
    ``stylekit.image.pipeline.SW_LBFGS_HOLD`` steps). A style with more than ``max_quantiles`` positions is
    kept as that many quantiles per direction. Long rows of projections are ranked from a histogram rather
    than sorted (:func:`~stylekit.losses.functional.sorted_match_loss`). The style's features are kept; a style
    image larger than the output costs memory in proportion.

    Example
    -------
    >>> import torch
    >>> style = {"relu1_1": torch.rand(1, 4, 8, 8)}
    >>> loss = SlicedWassersteinStyleLoss(style, seed=0)
    >>> float(loss(style)) == 0.0
    True
    """

    #: At most this many style positions are kept per layer (a fixed, seeded subset).
    max_target_positions = 16384
    #: The number of direction sets a loss cycles through (see the notes).
    bank = 8
    #: The style's sorted projections are kept as at most this many quantiles per direction.
    max_quantiles = 4096

    def __init__(self, targets, *, layer_weights=None, blend=None, normalize: bool = False, masks=None,
                 projections: int | None = None, projection_ratio: float = 1.0, seed: int = 0) -> None:
        if projections is None and not projection_ratio > 0:
            raise ValueError(f"projection_ratio must be > 0, got {projection_ratio}")
        super().__init__(targets, layer_weights=layer_weights, blend=blend, normalize=normalize, masks=masks)
        self.n_projections, self.seed = projections, int(seed)
        self.auto_redraw, self.calls, self.drawn = True, 0, -1
        self._sorted: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}
        for k in self.layer_weights:
            c = self.target(k, 0 if self.masked else None)["features"].shape[1]
            self.register_buffer(f"proj_{k}", torch.zeros(c, projections or max(1, round(c * projection_ratio))))
        self.redraw(0)

    def _targets(self, features, blend):
        flat = [self._subsample(Fn._flatten(f).float()[:1]) for f in features]
        if len(flat) == 1:   # one style: uniform weights (an empty buffer says so)
            return {"features": flat[0], "weights": flat[0].new_zeros(0)}
        weights = torch.cat([torch.full((f.shape[-1],), w / f.shape[-1], device=f.device) for f, w in zip(flat, blend)])
        return {"features": torch.cat(flat, -1), "weights": weights}

    def _subsample(self, f: torch.Tensor) -> torch.Tensor:
        n = f.shape[-1]
        if n <= self.max_target_positions:
            return f
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: self.max_target_positions]
        return f[..., keep.sort().values.to(f.device)]

    @torch.no_grad()
    def redraw(self, key: int) -> None:
        """Take the directions of ``key``: set ``key mod bank``, a function of ``(seed, set)`` only (drawn on
        the CPU, the same on any device)."""
        if int(key) % self.bank == self.drawn:
            return                  # these directions are in place
        self.drawn = int(key) % self.bank
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.drawn) % (2 ** 63))
        for k in self.layer_weights:
            buf = getattr(self, f"proj_{k}")
            p = torch.randn(buf.shape, generator=g)
            buf.copy_(p / p.norm(dim=0, keepdim=True))

    @torch.no_grad()
    def _style_side(self, layer: str, target: dict, n: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The style's projections on the current directions, sorted (or as quantiles; resampled to ``n``
        levels, the output's positions, when given), and their mean square (the ``normalize`` scale); computed
        once per layer, style, direction set and ``n``."""
        t, w = target["features"], target["weights"]
        key = (layer, t.data_ptr(), t.device, self.drawn)
        if n is not None and (*key, n) not in self._sorted:
            ts, scale = self._style_side(layer, target, None)
            self._sorted[(*key, n)] = Fn.resample_sorted(ts, n), scale
        if n is not None:
            return self._sorted[(*key, n)]
        if key not in self._sorted:
            tp = getattr(self, f"proj_{layer}").to(t.dtype).t() @ t[0]           # (K, M)
            if w.numel():
                ts = Fn.channel_quantiles(tp[None], min(tp.shape[-1], self.max_quantiles), weights=w)
                scale = (tp.pow(2) * w.to(tp.dtype)).sum(-1).mean() / w.sum().to(tp.dtype)
            else:
                ts = tp.sort(-1).values if tp.shape[-1] <= self.max_quantiles else \
                    Fn.channel_quantiles(tp[None], self.max_quantiles)
                scale = tp.pow(2).mean()
            self._sorted[key] = ts, (scale if self.normalize else None)
        return self._sorted[key]

    def _apply(self, fn, *args, **kwargs):
        self._sorted.clear()        # moved or cast: computed again on the new device
        return super()._apply(fn, *args, **kwargs)

    def _loss(self, layer, features, target, mask):
        # Unmasked, every output position weighs the same: the style's side is resampled once to their count.
        ts, scale = self._style_side(layer, target, features[0, 0].numel() if mask is None else None)
        return Fn.sliced_wasserstein_from_sorted(features, getattr(self, f"proj_{layer}"), ts, mask=mask,
                                                 scale=scale)

    def forward(self, features: Features) -> torch.Tensor:
        if self.auto_redraw:
            self.redraw(self.calls)
            self.calls += 1
        return self.weighted(features)


class HistogramStyleLoss(_StyleLossBase):
    """Per-channel histogram style loss (Risser et al. 2017), stable form: each channel's distribution matched
    to the style's, stored as ``levels`` quantiles (an equal-mass histogram; 256 bins as in the paper).

    Same parameters as :class:`GramStyleLoss` plus ``levels``. Blended styles are matched as their mixture.

    Examples
    --------
    >>> import torch
    >>> style = {"relu1_1": torch.rand(1, 4, 16, 16)}
    >>> float(HistogramStyleLoss(style)(style)) < 1e-6
    True
    """

    def __init__(self, targets, *, layer_weights=None, blend=None, normalize: bool = False, masks=None,
                 levels: int = 256) -> None:
        self.levels = int(levels)
        super().__init__(targets, layer_weights=layer_weights, blend=blend, normalize=normalize, masks=masks)

    def _targets(self, features, blend):
        flat = [Fn._flatten(f).float() for f in features]
        weights = torch.cat([torch.full((f.shape[-1],), w / f.shape[-1], device=f.device) for f, w in zip(flat, blend)])
        return {"quantiles": Fn.channel_quantiles(torch.cat(flat, -1)[:1], self.levels, weights=weights)}

    def _loss(self, layer, features, target, mask):
        return Fn.histogram_loss(features, target["quantiles"], mask=mask, normalize=self.normalize)


class TVLoss(nn.Module):
    """Total-variation smoothness loss of an image; ``exponent`` 2 (default) or e.g. 1.

    Examples
    --------
    >>> import torch
    >>> TVLoss()(torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])), TVLoss(exponent=1)(torch.zeros(1, 3, 4, 4))
    (tensor(9.), tensor(0.0002))
    """

    def __init__(self, *, exponent: float = 2.0) -> None:
        super().__init__()
        if not exponent > 0:
            raise ConfigError(f"TV exponent must be positive, got {exponent}")
        self.exponent = float(exponent)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return Fn.tv_loss(image, exponent=self.exponent)


#: ``style_loss`` name -> module. ``"mean_std"`` is kept as another name of ``"mean-std"``.
STYLE_LOSSES = {"gram": GramStyleLoss, "mean-std": MeanStdStyleLoss, "w2": W2StyleLoss,
                "sw": SlicedWassersteinStyleLoss, "hist": HistogramStyleLoss}
_ALIASES = {"mean_std": "mean-std"}


#: The default layers and weights of :class:`StyleTransferLoss`: those of ``stylekit image``
#: (:class:`stylekit.ImageStyleConfig`; a test keeps the two equal).
DEFAULT_CONTENT_LAYERS: dict[str, float] = {"relu4_2": 1.0}
DEFAULT_STYLE_LAYERS: dict[str, float] = {k: 0.2 for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
#: How :class:`StyleTransferLoss` reduces over the batch: the mean or the sum of the per-sample losses, or
#: none (one value per sample).
REDUCTIONS = ("mean", "sum", "none")

#: Layers as ``{layer: weight}``, or a layer name or list of names (equal weights that sum to 1).
LayerWeights: TypeAlias = Mapping[str, float] | Sequence[str] | str


_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _device_of(module: nn.Module) -> torch.device | None:
    for t in module.buffers():
        return t.device
    for t in module.parameters():
        return t.device
    return None


def check_image(x: object, *, what: str = "image", extractor: nn.Module | None = None,
                values: bool = True, in_range: bool = True) -> None:
    """Refuse what an extractor cannot take, with one line that says what to do.

    ``x`` must be a float tensor ``(B, C, H, W)``, with the channel count the extractor declares
    (``extractor.in_channels``; 3 for :class:`~stylekit.features.VGG19Features`) and on its device. With
    ``values``, NaN and infinities are refused, and with ``in_range`` also values far outside the extractor's
    ``input_range`` ([0, 1] for VGG19Features): a 0-255 image, or one already normalised by ImageNet's mean
    and std. The value checks read the tensor's minimum and maximum (one device synchronisation).

    >>> import torch
    >>> check_image(torch.rand(1, 3, 8, 8))
    >>> check_image(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    Traceback (most recent call last):
    stylekit.errors.InputError: image must be a float tensor with values in [0, 1], got torch.uint8 (convert with x.float() / 255)
    """
    if _compiling():     # checked once in eager mode; inside torch.compile the checks would split the graph
        return
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        hint = " (convert with x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise InputError(f"{what} must be a float tensor with values in [0, 1], got {x.dtype}{hint}")
    channels = getattr(extractor, "in_channels", None)
    if (x.dim() != 4 and (extractor is None or channels is not None)) or not x.numel():
        raise InputError(f"{what} must be a non-empty (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        hint = " (RGBA? keep RGB with x[:, :3])" if (channels, x.shape[1]) == (3, 4) else ""
        raise InputError(f"{what} has {x.shape[1]} channels, the extractor takes {channels}{hint}")
    device = _device_of(extractor) if extractor is not None else None
    if device is not None and x.device != device:
        raise InputError(f"{what} is on {x.device} but the loss is on {device}: move one of them "
                         f"(loss.to({str(x.device)!r}))")
    if values:
        expected = getattr(extractor, "input_range", (0.0, 1.0) if extractor is None else None)
        _check_values(x, what, expected if in_range else None)


def _check_values(x: torch.Tensor, what: str, expected: tuple[float, float] | None) -> None:
    lo, hi = (float(v) for v in torch.aminmax(x.detach().float()))
    if math.isnan(lo) or math.isnan(hi):
        raise InputError(f"{what} contains NaN")
    if math.isinf(lo) or math.isinf(hi):
        raise InputError(f"{what} contains infinite values")
    if expected is None:
        return
    # Slack for resampling overshoot and for an output that strays a little during optimisation.
    a, b = expected
    slack = 0.5 * (b - a)
    if lo >= a - slack and hi <= b + slack:
        return
    if lo >= a - slack and hi <= 255.5:
        hint = ": a 0-255 image? divide it by 255"
    elif lo < a:
        hint = ": normalised? pass the image unnormalised, the extractor applies its own mean and std"
    else:
        hint = ""
    raise InputError(f"{what} has values from {lo:.4g} to {hi:.4g}, expected [{a:g}, {b:g}]{hint}")


class StyleTransferLoss(nn.Module):
    """The Gatys et al. objective: weighted content, style and TV terms on one extractor's features.

    ``StyleTransferLoss(style=painting)`` builds its own VGG19 extractor (:class:`stylekit.features.VGG19Features`
    with the content and style layers, the original caffe weights) and sets its style target, as
    ``lpips.LPIPS(net="vgg")`` does. Call it as ``loss(image)`` or ``loss(image, content)`` (see :meth:`forward`);
    it returns ``(total, terms)``. ``terms`` holds the weighted value of each term whose weight is above zero
    (``"content"``, ``"style"``, ``"tv"``; with the default ``tv_weight=0`` there is no ``"tv"``).
    :meth:`total` is the tensor-only form, like a ``torch.nn`` loss.

    Parameters
    ----------
    extractor : a module mapping an image batch to ``{layer: features}`` with a ``layers`` attribute, e.g.
        :class:`stylekit.features.VGG19Features` built with (at least) the content and style layers. Default:
        a VGG19Features of exactly those layers, with ``weights`` and ``pooling``.
    style : a style image ``(1, 3, H, W)`` in [0, 1], or a list of them (blended equally); the same as calling
        :meth:`set_style` after construction.
    content_layers, style_layers : ``{layer: weight}``, or a list of layer names (equal weights summing to 1).
        Default: ``relu4_2``, and ``relu1_1`` ... ``relu5_1`` at 0.2 each, as ``stylekit image``.
    content_weight, style_weight, tv_weight : weights of the three terms; the defaults (1, 5, 0) are those of
        ``stylekit image``. That command multiplies the style weight of ``style_loss="sw"`` by 4.4
        (``stylekit.image.pipeline.STYLE_LOSS_SCALE``); this module takes the weights as given.
    tv_exponent : exponent of the TV term.
    normalize : use scale-free (relative) content and style distances, so the same weights work for any
        weights source, pooling and image size (default True).
    style_loss : ``"gram"`` (default), ``"mean-std"``, ``"w2"`` (Gaussian 2-Wasserstein), ``"sw"`` (sliced
        Wasserstein) or ``"hist"`` (per-channel histograms); see :data:`STYLE_LOSSES`.
    style_options : further keyword arguments of the style module (``seed`` and ``projections`` for ``"sw"``,
        ``levels`` for ``"hist"``).
    reduction : ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"``: each term and the total are
        ``(B,)``, one value per sample (each sample's loss is the loss of a batch of one).
    weights, pooling : of the extractor built when none is given: ``"caffe"`` (default) or ``"torchvision"``
        or a state_dict path, and ``"max"`` (default) or ``"avg"``.

    Notes
    -----
    Gatys et al. use unnormalised sums with a content/style weight ratio tuned per image size and network;
    the relative distances here make that ratio meaningful across sizes and weights sources.

    Inputs are checked (:func:`check_image`): a non-float tensor, a wrong channel count or device are refused
    everywhere; the style and content images are also refused when they hold NaN or values outside [0, 1]
    (0-255 images, or images normalised by a mean and std). The output (``image``) is refused when it holds NaN
    and requires no grad; its range is not checked, since an optimiser that does not clamp (L-BFGS) leaves
    it a little outside [0, 1]. An image being optimised or trained (one that requires grad) gives a NaN loss
    instead, which :func:`stylekit.optim.optimize` recovers from.

    Examples
    --------
    >>> import torch
    >>> from stylekit.losses import StyleTransferLoss
    >>> painting, photo = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    >>> loss = StyleTransferLoss(style=painting)
    >>> total, terms = loss(photo.clone().requires_grad_(), photo)
    >>> sorted(terms), total.shape
    (['content', 'style'], torch.Size([]))
    >>> StyleTransferLoss(style=painting, reduction="none").total(photo, photo).shape
    torch.Size([2])
    """

    def __init__(self, extractor: nn.Module | None = None, *, style: torch.Tensor | Sequence[torch.Tensor] | None = None,
                 content_layers: LayerWeights | None = None, style_layers: LayerWeights | None = None,
                 content_weight: float = 1.0, style_weight: float = 5.0, tv_weight: float = 0.0,
                 tv_exponent: float = 2.0, normalize: bool = True, style_loss: str = "gram",
                 style_options: Mapping[str, object] | None = None, reduction: str = "mean",
                 weights: str | os.PathLike[str] | None = None, pooling: str | None = None) -> None:
        super().__init__()
        style_loss = _ALIASES.get(style_loss, style_loss)
        if style_loss not in STYLE_LOSSES:
            raise ConfigError(f"unknown style loss {style_loss!r}: choose {', '.join(STYLE_LOSSES)}")
        if reduction not in REDUCTIONS:
            raise ConfigError(f"unknown reduction {reduction!r}: choose {', '.join(REDUCTIONS)}")
        self.style_options = dict(style_options or {})
        self.content_layers = _check_weights(content_layers or DEFAULT_CONTENT_LAYERS, "content layer")
        self.style_layers = _check_weights(style_layers or DEFAULT_STYLE_LAYERS, "style layer")
        for name, w in {"content": content_weight, "style": style_weight, "tv": tv_weight}.items():
            if not float(w) >= 0 or float(w) == float("inf"):
                raise ConfigError(f"{name} weight must be a finite number >= 0, got {w}")
        self.weights = {"content": float(content_weight), "style": float(style_weight), "tv": float(tv_weight)}
        needed = [*(self.content_layers if self.weights["content"] > 0 else ()),
                  *(self.style_layers if self.weights["style"] > 0 else ())]
        self.extractor = self._extractor(extractor, needed, weights=weights, pooling=pooling)
        self.normalize = normalize
        self.reduction = reduction
        self.style_loss_kind = style_loss
        self.tv = TVLoss(exponent=tv_exponent)
        self.content: nn.ModuleDict = nn.ModuleDict()
        self.content_mask: torch.Tensor | None = None
        self.style: nn.Module | None = None
        if style is not None:
            self.set_style(style)

    def _extractor(self, extractor: nn.Module | None, needed: list[str], *, weights, pooling) -> nn.Module:
        """The given extractor (checked to compute the needed layers), or a VGG19Features of those layers."""
        if extractor is None:
            from ..features import LAYER_NAMES, VGG19Features
            layers = sorted(dict.fromkeys([*self.content_layers, *self.style_layers]), key=LAYER_NAMES.index) \
                if all(k in LAYER_NAMES for k in [*self.content_layers, *self.style_layers]) else None
            if layers is None:
                bad = next(k for k in [*self.content_layers, *self.style_layers] if k not in LAYER_NAMES)
                raise ConfigError(f"unknown VGG19 layer {bad!r}; layers are named conv1_1 ... relu5_4 and "
                                  "pool1 ... pool5")
            return VGG19Features(layers, weights=weights if weights is not None else "caffe",
                                 pooling=pooling if pooling is not None else "max")
        if weights is not None or pooling is not None:
            raise ConfigError("weights= and pooling= configure the extractor StyleTransferLoss builds; "
                              "with your own extractor, set them on it")
        have = set(getattr(extractor, "layers", ()))
        missing = [k for k in needed if k not in have]
        if missing:
            raise ConfigError(f"the extractor does not compute layer {missing[0]!r} (it has {sorted(have)})")
        return extractor

    @torch.no_grad()
    def set_content(self, image: torch.Tensor, *, mask: torch.Tensor | None = None) -> None:
        """Compute and store the content target from an image ``(1 or B, 3, H, W)`` in [0, 1].

        ``mask`` ``(1, 1, H, W)`` in [0, 1]: where the content term applies (full weight where 1, none where 0);
        it also applies to the ``content=`` targets of :meth:`forward`.
        """
        check_image(image, what="content image", extractor=self.extractor)
        feats = self.extractor(image)
        self.content_mask = mask
        self.content = nn.ModuleDict({k: ContentLoss(feats[k], normalize=self.normalize, mask=mask)
                                      for k in self.content_layers if k in feats})

    @torch.no_grad()
    def set_style(self, images: torch.Tensor | Sequence[torch.Tensor], *, blend: Sequence[float] | None = None,
                  masks: torch.Tensor | Sequence[torch.Tensor] | None = None) -> None:
        """Compute and store the style target from one image or a list of images (sizes may differ);
        ``masks``: one per style, where each style goes (see :class:`GuidedGramStyleLoss`)."""
        if isinstance(images, torch.Tensor):
            images = [images]
        for i, img in enumerate(images):
            check_image(img, what="style image" if len(images) == 1 else f"style image {i + 1}",
                        extractor=self.extractor)
        feats = [{k: v for k, v in self.extractor(img).items() if k in self.style_layers} for img in images]
        self.set_style_features(feats, blend=blend, masks=masks)

    def set_style_features(self, features: Features | Sequence[Features], *, blend: Sequence[float] | None = None,
                           masks: torch.Tensor | Sequence[torch.Tensor] | None = None) -> None:
        """Store a style target from already-extracted features (e.g. shared across a batch job), or, for the
        moment-based losses (gram, mean-std, w2), from ``{layer: (mean, second moment)}`` statistics."""
        self.style = STYLE_LOSSES[self.style_loss_kind](features, layer_weights=self.style_layers, blend=blend,
                                                        normalize=self.normalize, masks=masks, **self.style_options)

    def forward(self, image: torch.Tensor, content: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective of an image batch ``(B, 3, H, W)``: ``(total, terms)``.

        ``content``, a ``(B, 3, H, W)`` batch, is this call's content target (how the loss serves as a training
        loss for a feed-forward stylizer); without it the target set by :meth:`set_content` is used. The style
        target (:meth:`set_style`) broadcasts over any batch size. ``total`` is differentiable; it and each
        value of ``terms`` (the terms with a weight above zero, weighted) are scalars, or ``(B,)`` with
        ``reduction="none"``.
        """
        # The output is not range-checked: L-BFGS does not clamp, so an optimised image strays outside [0, 1].
        check_image(image, extractor=self.extractor, values=not getattr(image, "requires_grad", False),
                    in_range=False)
        if content is not None:
            check_image(content, what="content", extractor=self.extractor)
            if content.shape[0] not in (1, image.shape[0]):
                raise InputError(f"content has {content.shape[0]} images for {image.shape[0]} outputs")
        if self.weights["content"] > 0 and content is None and not len(self.content):
            raise ConfigError("no content target: call set_content() or pass content=")
        if self.weights["style"] > 0 and self.style is None:
            raise ConfigError("no style target: pass style= or call set_style() first")
        feats = self.extractor(image)
        targets = None
        if content is not None and self.weights["content"] > 0:
            with torch.no_grad():
                targets = self.extractor(content)
        if self.reduction != "none":
            total, terms = self._terms(image, feats, targets)
            if self.reduction == "sum":   # every term is a batch mean of per-sample values
                n = image.shape[0]
                total, terms = total * n, {k: v * n for k, v in terms.items()}
            return total, terms
        if self.style is not None and getattr(self.style, "auto_redraw", False):
            self.style.redraw(self.style.calls)   # one draw of the sliced-Wasserstein directions for all samples
            self.style.calls += 1
        per = [self._terms(image[i:i + 1], {k: v[i:i + 1] for k, v in feats.items()},
                           None if targets is None else {k: _sample(v, i) for k, v in targets.items()},
                           sample=i, redraw=False)
               for i in range(image.shape[0])]
        return torch.stack([t for t, _ in per]), {k: torch.stack([d[k] for _, d in per]) for k in per[0][1]}

    def total(self, image: torch.Tensor, content: torch.Tensor | None = None) -> torch.Tensor:
        """The total alone, as a tensor (a scalar, or ``(B,)`` with ``reduction="none"``): the loss in the form
        of a ``torch.nn`` loss, ``loss.total(output, content)``."""
        return self.forward(image, content)[0]

    def _terms(self, image: torch.Tensor, feats: Features, targets: Features | None, *, sample: int | None = None,
               redraw: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, terms)`` of a batch (the batch mean of each term); ``sample`` picks that sample of a
        stored batch of content targets."""
        acc = torch.float64 if image.dtype == torch.float64 else torch.float32
        terms: dict[str, torch.Tensor] = {}
        if self.weights["content"] > 0:
            if targets is not None:
                mask = self.content_mask if sample is None else _sample(self.content_mask, sample)
                c = sum(w * Fn.content_loss(feats[k], targets[k], normalize=self.normalize, mask=mask)
                        for k, w in self.content_layers.items())
            elif sample is None:
                c = sum(w * self.content[k](feats[k]) for k, w in self.content_layers.items())
            else:
                c = sum(w * Fn.content_loss(feats[k], _sample(self.content[k].target, sample),
                                            normalize=self.normalize, mask=_sample(self.content[k].mask, sample))
                        for k, w in self.content_layers.items())
            terms["content"] = self.weights["content"] * c
        if self.weights["style"] > 0:
            style = self.style if redraw or not isinstance(self.style, _StyleLossBase) else self.style.weighted
            terms["style"] = self.weights["style"] * style(feats)
        if self.weights["tv"] > 0:
            terms["tv"] = self.weights["tv"] * self.tv(image).to(acc)
        return sum(terms.values(), image.new_zeros((), dtype=acc)), terms


def _sample(t: torch.Tensor | None, i: int) -> torch.Tensor | None:
    """Sample ``i`` of a batch of targets or masks, or the tensor itself when it is shared (batch of one)."""
    return t if t is None or t.shape[0] == 1 else t[i:i + 1]
