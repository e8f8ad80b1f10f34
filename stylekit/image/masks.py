"""Spatial masks of an image run: where each style goes (``style_masks``) and where the content is kept
(``content_mask``), read from image files or given as tensors, checked, and brought to the content's size.

The losses take them from there (:class:`stylekit.losses.GuidedGramStyleLoss` and the other style modules):
each scale gets the masks resized to its size, and each layer its own area-averaged copy.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .config import ImageStyleConfig
from .io import load_image

__all__ = ["load_masks", "as_mask"]

#: A mask's aspect ratio may differ from the content's by this much (rounding of sizes) without --mask-resize.
ASPECT_TOLERANCE = 0.01
_LUMA = (0.299, 0.587, 0.114)


def as_mask(x: torch.Tensor, what: str = "mask") -> torch.Tensor:
    """A mask tensor ``(H, W)``, ``(1, H, W)``, ``(1, 1, H, W)`` or RGB ``(1, 3, H, W)`` as ``(1, 1, H, W)``
    float32 in [0, 1] (RGB is reduced to its luma).

    Examples
    --------
    >>> import torch
    >>> as_mask(torch.ones(4, 6)).shape, as_mask(torch.ones(1, 3, 4, 6)).shape
    (torch.Size([1, 1, 4, 6]), torch.Size([1, 1, 4, 6]))
    """
    t = x.detach().float().cpu()
    t = t.reshape(1, *t.shape[-3:]) if t.dim() >= 3 else t.reshape(1, 1, *t.shape[-2:])
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ConfigError(f"{what} must be an (H, W), (1, 1, H, W) or (1, 3, H, W) tensor, got {tuple(x.shape)}")
    if t.shape[1] == 3:
        t = sum(w * t[:, i:i + 1] for i, w in enumerate(_LUMA))
    return t.clamp(0, 1)


def _fit(mask: torch.Tensor, hw: tuple[int, int], shape: tuple[int, int], stretch: bool, name: str) -> torch.Tensor:
    """The mask at the size ``hw``, refusing (unless ``stretch``) an aspect ratio more than 1% off that of
    the content file's ``shape``."""
    mh, mw = mask.shape[-2:]
    h, w = shape
    off = (mw / mh) / (w / h) - 1
    if not stretch and abs(off) > ASPECT_TOLERANCE:
        raise ConfigError(f"{name}: a {mw}x{mh} mask does not have the content's aspect ratio ({w}x{h}, "
                          f"{100 * off:+.1f}%); give a mask of the content's shape, or --mask-resize stretch")
    if (mh, mw) == tuple(hw):
        return mask
    return F.interpolate(mask, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _read(source, name: str) -> torch.Tensor:
    return as_mask(source, name) if isinstance(source, torch.Tensor) else as_mask(load_image(source), name)


def load_masks(cfg: ImageStyleConfig, hw: tuple[int, int], n_styles: int, *, shape: tuple[int, int] | None = None,
               style_masks: Sequence | None = None, content_mask=None
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The style masks ``(S, 1, H, W)`` and the content mask ``(1, 1, H, W)`` at the content's size ``hw``
    (``shape``: the content file's own size, whose aspect ratio the masks must have; default ``hw``).

    Sources are the config's paths, or the tensors given here (for library users). Raises
    :class:`ConfigError` for a count that differs from the number of styles, a style mask that is black
    everywhere, or an aspect ratio more than 1% from the content's (unless ``mask_resize="stretch"``), and
    :class:`~stylekit.errors.InputError` for a file that is not an image.

    Examples
    --------
    >>> import torch
    >>> from stylekit.image.config import ImageStyleConfig
    >>> left = torch.zeros(24, 32)
    >>> left[:, :16] = 1
    >>> styles, content = load_masks(ImageStyleConfig(), (24, 32), 2, style_masks=[left, 1 - left])
    >>> styles.shape, content
    (torch.Size([2, 1, 24, 32]), None)
    """
    stretch = cfg.mask_resize == "stretch"
    shape = tuple(shape or hw)
    sources = style_masks if style_masks is not None else cfg.style_masks
    style = None
    if sources is not None:
        sources = [sources] if isinstance(sources, (str, torch.Tensor)) else list(sources)
        if len(sources) != n_styles:
            raise ConfigError(f"--style-mask given {len(sources)} time(s) for {n_styles} style image(s): "
                              "give one mask per style, in style order")
        masks = []
        for i, src in enumerate(sources):
            name = str(src) if not isinstance(src, torch.Tensor) else f"style mask {i + 1}"
            m = _fit(_read(src, name), hw, shape, stretch, name)
            if float(m.max()) <= 0:
                raise ConfigError(f"{name}: the style mask is black everywhere, so its style would go nowhere")
            masks.append(m)
        style = torch.cat(masks)
    source = content_mask if content_mask is not None else cfg.content_mask
    content = None
    if source is not None:
        name = str(source) if not isinstance(source, torch.Tensor) else "content mask"
        content = _fit(_read(source, name), hw, shape, stretch, name)
    return style, content
