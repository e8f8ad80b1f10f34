"""The temporal term of Ruder, Dosovitskiy & Brox, *Artistic style transfer for videos* (GCPR 2016).

Frame ``i`` is optimised from the previous result warped into it, ``w``, and a term ties it to ``w`` where the
flow is reliable (mask ``c``, :func:`stylekit.video.flow.reliable`):

    L_temporal(x) = 1/D * sum_k c_k (x_k - w_k)^2,   D = C * H * W.

:func:`temporal_loss` is that function; :class:`TemporalTerm` adds it, weighted, to any criterion of the image
pipeline (``stylize_image(..., wrap_criterion=TemporalTerm(...))``), at each scale's size.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["warp", "temporal_loss", "TemporalTerm", "flow_tensor"]


def flow_tensor(flow: np.ndarray | torch.Tensor) -> torch.Tensor:
    """An ``(H, W, 2)`` flow (numpy, as from :func:`~stylekit.video.flow.optical_flow`) as ``(1, 2, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> flow_tensor(np.zeros((16, 24, 2), np.float32)).shape
    torch.Size([1, 2, 16, 24])
    """
    f = torch.as_tensor(np.ascontiguousarray(flow) if isinstance(flow, np.ndarray) else flow, dtype=torch.float32)
    return f.permute(2, 0, 1)[None] if f.dim() == 3 else f


def warp(image: torch.Tensor, flow: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``image`` sampled at ``p + flow(p)``: ``out(p) = image(p + flow(p))``, bicubic, the border repeated.

    Parameters
    ----------
    image : ``(N, C, H, W)``.
    flow : ``(N or 1, 2, H, W)`` tensor or ``(H, W, 2)`` array of ``(dx, dy)`` in pixels.

    Returns
    -------
    ``(N, C, H, W)``, like ``image`` (bicubic may overshoot its range slightly). With the flow from frame ``i``
    to frame ``i - 1`` this carries frame ``i - 1``'s pixels to where they are in frame ``i``.

    Notes
    -----
    Bicubic rather than Ruder et al.'s bilinear: the result is warped again at every frame, and each bilinear
    resampling at a fractional shift blurs it a little more; the warm iterations then start, and the temporal
    term pulls, towards a softer picture.

    Examples
    --------
    >>> import torch
    >>> image = torch.rand(1, 3, 8, 8)
    >>> torch.allclose(warp(image, torch.zeros(1, 2, 8, 8)), image, atol=1e-5)     # no motion, no change
    True
    """
    f = flow_tensor(flow).to(image)
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype, device=image.device),
                            torch.arange(w, dtype=image.dtype, device=image.device), indexing="ij")
    # grid_sample wants positions in [-1, 1], with align_corners=True mapping -1 and 1 to the edge pixels' centres
    gx = (xs + f[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + f[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], -1).expand(n, h, w, 2)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=True)


def temporal_loss(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1/D * sum(mask * (x - target)^2)``, ``D`` the number of elements of ``x``.

    ``x`` and ``target`` are ``(N, C, H, W)``; ``mask`` broadcasts to them (``(N or 1, 1, H, W)``, in [0, 1]).

    Examples
    --------
    >>> import torch
    >>> x, target = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    >>> temporal_loss(x, target, torch.ones(1, 1, 2, 2)), temporal_loss(x, target, torch.zeros(1, 1, 2, 2))
    (tensor(1.), tensor(0.))
    """
    return (mask * (x - target) ** 2).sum() / x.numel()


class TemporalTerm:
    """Adds ``weight * temporal_loss(x, target, mask)`` to each scale's criterion of the image pipeline.

    ``TemporalTerm(target, mask, weight)(criterion, (h, w))`` is a criterion returning ``(total, terms)`` with a
    ``"temporal"`` term; ``target`` (``(1, 3, H, W)``) and ``mask`` (``(1, 1, H, W)`` or ``(H, W)``) are resized
    to ``(h, w)`` once.

    Examples
    --------
    >>> import torch
    >>> term = TemporalTerm(torch.zeros(1, 3, 8, 8), torch.ones(8, 8), weight=2.0)
    >>> criterion = term(lambda x: (x.sum() * 0, {}), (4, 4))       # one scale's criterion, plus the term
    >>> total, terms = criterion(torch.ones(1, 3, 4, 4))
    >>> terms["temporal"]
    tensor(2.)
    """

    def __init__(self, target: torch.Tensor, mask: torch.Tensor | np.ndarray, weight: float) -> None:
        m = torch.as_tensor(mask, dtype=torch.float32)
        self.target = target.detach().float()
        self.mask = m.view(1, 1, *m.shape[-2:])
        self.weight = float(weight)

    def __call__(self, criterion: Callable, hw: tuple[int, int]) -> Callable:
        target, mask = self.target, self.mask
        if tuple(target.shape[-2:]) != tuple(hw):
            target = F.interpolate(target, size=tuple(hw), mode="bilinear", align_corners=False)
            mask = F.interpolate(mask, size=tuple(hw), mode="bilinear", align_corners=False)
        return _WithTemporal(criterion, target, mask, self.weight)


class _WithTemporal:
    """One scale's criterion plus the weighted temporal term."""

    def __init__(self, criterion: Callable, target: torch.Tensor, mask: torch.Tensor, weight: float) -> None:
        self.criterion, self.target, self.mask, self.weight = criterion, target, mask, weight

    def __call__(self, x: torch.Tensor):
        if self.target.device != x.device:     # moved once, on the first call
            self.target, self.mask = self.target.to(x.device), self.mask.to(x.device)
        total, terms = self.criterion(x)
        t = self.weight * temporal_loss(x.float(), self.target, self.mask)
        return total + t, {**terms, "temporal": t}
