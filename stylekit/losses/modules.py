"""Loss modules: each holds its configuration and its targets (as buffers) and calls :mod:`.functional`.

Losses take *features* (the dict an extractor returns), so one network pass serves every layer. Targets
are computed once under ``no_grad`` and registered as buffers, so ``.to(device)`` moves them and
``state_dict()`` saves them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from . import functional as Fn

__all__ = ["ContentLoss", "GramStyleLoss", "MeanStdStyleLoss", "TVLoss", "StyleTransferLoss"]

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
    """

    def __init__(self, target: torch.Tensor, *, normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.register_buffer("target", target.detach().clone())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return Fn.content_loss(input, self.target, normalize=self.normalize)


class _StyleLossBase(nn.Module):
    """Shared set-up of the style losses: styles, per-layer weights and blend; subclasses say which
    statistics of a style's features are its target (:meth:`_targets`) and how a layer's loss is computed."""

    def __init__(self, targets: Features | Sequence[Features], *, layer_weights: Mapping[str, float] | None = None,
                 blend: Sequence[float] | None = None, normalize: bool = False) -> None:
        super().__init__()
        styles = [targets] if isinstance(targets, Mapping) else list(targets)
        if not styles:
            raise ConfigError(f"{type(self).__name__} needs at least one style target")
        layers = list(layer_weights) if layer_weights is not None else list(styles[0])
        self.layer_weights = _check_weights(layer_weights or {k: 1.0 / len(layers) for k in layers}, "style layer")
        self.normalize = normalize
        bw = _blend_weights(len(styles), blend)
        with torch.no_grad():
            for layer in layers:
                for s in styles:
                    if layer not in s:
                        raise ConfigError(f"style target has no features for layer {layer!r}")
                for name, value in self._targets([s[layer] for s in styles], bw).items():
                    self.register_buffer(f"{name}_{layer}", value)

    def _targets(self, features: list[torch.Tensor], blend: list[float]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def layer_losses(self, features: Features) -> dict[str, torch.Tensor]:
        """Unweighted per-layer losses."""
        raise NotImplementedError

    def forward(self, features: Features) -> torch.Tensor:
        losses = self.layer_losses(features)
        return sum(self.layer_weights[k] * v for k, v in losses.items())


class GramStyleLoss(_StyleLossBase):
    """Gram-matrix style loss over several layers, against one style or a blend of several.

    Parameters
    ----------
    targets : ``{layer: features}`` of one style image, or a list of such dicts for several styles. The styles
        may differ in spatial size: Grams are normalised by the number of positions.
    layer_weights : ``{layer: weight}``; default equal weights ``1 / n_layers`` over the target layers.
    blend : one weight per style, normalised to sum to 1 (default equal).
    normalize : per-layer distance relative to ``||G_target||^2`` (True) or plain MSE of Gram entries.

    Notes
    -----
    Styles are blended by averaging their Gram matrices. For the MSE this has the same minimiser as a
    weighted sum of per-style losses (the two differ by a constant), at the cost of one target per layer.
    :meth:`from_grams` builds the loss from Gram matrices computed elsewhere (for example tile by tile, see
    :mod:`stylekit.image.tiling`).
    """

    @classmethod
    def from_grams(cls, grams: Features | Sequence[Features], *, layer_weights: Mapping[str, float] | None = None,
                   blend: Sequence[float] | None = None, normalize: bool = False) -> "GramStyleLoss":
        """The same loss from precomputed ``{layer: (1, C, C)}`` Gram matrices (one dict per style)."""
        self = cls.__new__(cls)
        self._given_grams = True
        _StyleLossBase.__init__(self, grams, layer_weights=layer_weights, blend=blend, normalize=normalize)
        return self

    def _targets(self, features, blend):
        grams = features if getattr(self, "_given_grams", False) else [Fn.gram_matrix(f) for f in features]
        return {"gram": sum(w * g.float().mean(0, keepdim=True) for w, g in zip(blend, grams))}

    def target(self, layer: str) -> torch.Tensor:
        return getattr(self, f"gram_{layer}")

    def layer_losses(self, features: Features) -> dict[str, torch.Tensor]:
        return {k: Fn.style_loss(features[k], self.target(k), normalize=self.normalize) for k in self.layer_weights}

    def gram_losses(self, grams: Features) -> dict[str, torch.Tensor]:
        """Unweighted per-layer losses of already-computed Gram matrices ``{layer: (B, C, C)}``."""
        return {k: Fn.gram_loss(grams[k], self.target(k), normalize=self.normalize) for k in self.layer_weights}


class MeanStdStyleLoss(_StyleLossBase):
    """Style loss on per-channel mean and standard deviation of features (cheaper than Grams, O(C) not O(C^2)).

    Same parameters as :class:`GramStyleLoss`; blended styles average their statistics.
    """

    def _targets(self, features, blend):
        stats = [Fn.mean_std(f) for f in features]
        return {"mean": sum(w * m.mean(0, keepdim=True) for w, (m, _) in zip(blend, stats)),
                "std": sum(w * d.mean(0, keepdim=True) for w, (_, d) in zip(blend, stats))}

    def layer_losses(self, features: Features) -> dict[str, torch.Tensor]:
        return {k: Fn.mean_std_loss(features[k], getattr(self, f"mean_{k}"), getattr(self, f"std_{k}"),
                                    normalize=self.normalize) for k in self.layer_weights}


class TVLoss(nn.Module):
    """Total-variation smoothness loss of an image; ``exponent`` 2 (default) or e.g. 1."""

    def __init__(self, *, exponent: float = 2.0) -> None:
        super().__init__()
        if not exponent > 0:
            raise ConfigError(f"TV exponent must be positive, got {exponent}")
        self.exponent = float(exponent)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return Fn.tv_loss(image, exponent=self.exponent)


STYLE_LOSSES = {"gram": GramStyleLoss, "mean_std": MeanStdStyleLoss}


class StyleTransferLoss(nn.Module):
    """The Gatys et al. objective: weighted content, style and TV terms on one extractor's features.

    Call it as ``loss(image)`` or ``loss(image, content=batch)`` (see :meth:`forward`); it returns
    ``(total, terms)``. ``terms`` holds the weighted scalar of each term whose weight is above zero
    (``"content"``, ``"style"``, ``"tv"``; with the default ``tv_weight=0`` there is no ``"tv"``).

    Parameters
    ----------
    extractor : a module mapping an image batch to ``{layer: features}`` with a ``layers`` attribute, e.g.
        :class:`stylekit.features.VGG19Features` built with (at least) the content and style layers.
    content_layers, style_layers : ``{layer: weight}``, or a list of layer names (equal weights summing to 1).
    content_weight, style_weight, tv_weight : weights of the three terms.
    tv_exponent : exponent of the TV term.
    normalize : use scale-free (relative) content and style distances, so the same weights work for any
        weights source, pooling and image size (default True).
    style_loss : ``"gram"`` (default) or ``"mean_std"``.

    Notes
    -----
    Gatys et al. use unnormalised sums with a content/style weight ratio tuned per image size and network;
    the relative distances here make that ratio meaningful across sizes and weights sources.
    """

    def __init__(self, extractor: nn.Module, *, content_layers: Mapping[str, float] | None = None,
                 style_layers: Mapping[str, float] | None = None, content_weight: float = 1.0,
                 style_weight: float = 10.0, tv_weight: float = 0.0, tv_exponent: float = 2.0,
                 normalize: bool = True, style_loss: str = "gram") -> None:
        super().__init__()
        if style_loss not in STYLE_LOSSES:
            raise ConfigError(f"style_loss must be one of {', '.join(STYLE_LOSSES)}, got {style_loss!r}")
        self.extractor = extractor
        self.content_layers = _check_weights(content_layers or {"relu4_2": 1.0}, "content layer")
        self.style_layers = _check_weights(
            style_layers or {k: 0.2 for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}, "style layer")
        for name, w in {"content": content_weight, "style": style_weight, "tv": tv_weight}.items():
            if not float(w) >= 0 or float(w) == float("inf"):
                raise ConfigError(f"{name} weight must be a finite number >= 0, got {w}")
        have = set(getattr(extractor, "layers", ()))
        needed = [*(self.content_layers if float(content_weight) > 0 else ()),
                  *(self.style_layers if float(style_weight) > 0 else ())]
        missing = [k for k in needed if k not in have]
        if missing:
            raise ConfigError(f"the extractor does not compute layer {missing[0]!r} (it has {sorted(have)})")
        self.weights = {"content": float(content_weight), "style": float(style_weight), "tv": float(tv_weight)}
        self.normalize = normalize
        self.style_loss_kind = style_loss
        self.tv = TVLoss(exponent=tv_exponent)
        self.content: nn.ModuleDict = nn.ModuleDict()
        self.style: nn.Module | None = None

    @torch.no_grad()
    def set_content(self, image: torch.Tensor) -> None:
        """Compute and store the content target from an image ``(1 or B, 3, H, W)`` in [0, 1]."""
        feats = self.extractor(image)
        self.content = nn.ModuleDict({k: ContentLoss(feats[k], normalize=self.normalize)
                                      for k in self.content_layers if k in feats})

    @torch.no_grad()
    def set_style(self, images: torch.Tensor | Sequence[torch.Tensor], *, blend: Sequence[float] | None = None) -> None:
        """Compute and store the style target from one image or a list of images (sizes may differ)."""
        if isinstance(images, torch.Tensor):
            images = [images]
        feats = [{k: v for k, v in self.extractor(img).items() if k in self.style_layers} for img in images]
        self.set_style_features(feats, blend=blend)

    def set_style_features(self, features: Features | Sequence[Features], *, blend: Sequence[float] | None = None) -> None:
        """Store a style target from already-extracted features (e.g. shared across a batch job)."""
        self.style = STYLE_LOSSES[self.style_loss_kind](features, layer_weights=self.style_layers, blend=blend,
                                                        normalize=self.normalize)

    def forward(self, image: torch.Tensor, *, content: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective of an image batch ``(B, 3, H, W)``: ``(total, terms)``.

        ``content``, a ``(B, 3, H, W)`` batch, is this call's content target (how the loss serves as a training
        loss for a feed-forward stylizer); without it the target set by :meth:`set_content` is used. The style
        target (:meth:`set_style`) broadcasts over any batch size. ``total`` is a differentiable scalar;
        ``terms`` maps each term with a weight above zero to its weighted value.
        """
        feats = self.extractor(image)
        acc = torch.float64 if image.dtype == torch.float64 else torch.float32
        zero = image.new_zeros((), dtype=acc)
        terms: dict[str, torch.Tensor] = {}
        if self.weights["content"] > 0:
            if content is not None:
                with torch.no_grad():
                    targets = self.extractor(content)
                c = sum(w * Fn.content_loss(feats[k], targets[k], normalize=self.normalize)
                        for k, w in self.content_layers.items())
            elif len(self.content):
                c = sum(w * self.content[k](feats[k]) for k, w in self.content_layers.items())
            else:
                raise ConfigError("no content target: call set_content() or pass content=")
            terms["content"] = self.weights["content"] * c
        if self.weights["style"] > 0:
            if self.style is None:
                raise ConfigError("no style target: call set_style() first")
            terms["style"] = self.weights["style"] * self.style(feats)
        if self.weights["tv"] > 0:
            terms["tv"] = self.weights["tv"] * self.tv(image).to(acc)
        total = sum(terms.values(), zero)
        return total, terms
