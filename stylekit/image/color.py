"""Colour handling of image style transfer (Gatys et al. 2017, "Controlling perceptual factors in neural style
transfer"): every step of ``preserve_color`` lives here.

* ``"histogram"``: the style images are recoloured to the content's colour statistics before the run
  (:func:`match_color`).
* ``"luminance"``: the run sees only luminance (the content's, and the styles' matched to it), and the
  content's colours are put back on the result (:func:`restore_color`).

Tensors are ``(N, 3, H, W)`` float32 RGB in [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import PRESERVE_COLOR

__all__ = ["PRESERVE_COLOR", "rgb_to_yiq", "yiq_to_rgb", "match_color", "match_luminance", "luminance_image",
           "prepare_color", "restore_color"]

_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> YIQ (Y in [0, 1]).

    Examples
    --------
    >>> import torch
    >>> rgb_to_yiq(torch.ones(1, 3, 1, 1)).flatten().round(decimals=3)    # white: full luminance, no chroma
    tensor([1., 0., 0.])
    """
    return torch.einsum("ij,njhw->nihw", _YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` YIQ -> RGB, the inverse of :func:`rgb_to_yiq`.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 3, 4, 4)
    >>> torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5)
    True
    """
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_YIQ).to(x), x)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Gray RGB image of the style's luminance with its mean and std matched to the content's luminance.

    Examples
    --------
    >>> import torch
    >>> style, content = torch.rand(1, 3, 8, 8), 0.5 * torch.rand(1, 3, 8, 8)
    >>> match_luminance(style, content).shape
    torch.Size([1, 3, 8, 8])
    """
    ys, yc = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    y = (ys - ys.mean()) / (ys.std() + 1e-6) * yc.std() + yc.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def match_color(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolour ``style`` so its RGB mean and covariance equal the content's (linear colour transfer).

    Uses the symmetric matrix square roots (the "image analogies" variant Gatys et al. 2017 found best):
    ``x' = C_c^{1/2} C_s^{-1/2} (x - mu_s) + mu_c``.

    Examples
    --------
    >>> import torch
    >>> style, content = torch.rand(1, 3, 8, 8), 0.5 * torch.rand(1, 3, 8, 8)
    >>> match_color(style, content).shape
    torch.Size([1, 3, 8, 8])
    """
    def stats(img):
        f = img[0].reshape(3, -1).double()
        mu = f.mean(1, keepdim=True)
        cov = torch.cov(f) + 1e-5 * torch.eye(3, dtype=f.dtype)
        return f, mu, cov

    def sqrtm(c, inv=False):
        e, v = torch.linalg.eigh(c)
        e = e.clamp_min(1e-10).pow(-0.5 if inv else 0.5)
        return v @ torch.diag(e) @ v.T

    fs, mus, cs = stats(style)
    _, muc, cc = stats(content)
    out = sqrtm(cc) @ sqrtm(cs, inv=True) @ (fs - mus) + muc
    return out.reshape_as(style[0])[None].to(style.dtype).clamp(0, 1)


def luminance_image(x: torch.Tensor) -> torch.Tensor:
    """The luminance of ``x`` as a gray RGB image.

    Examples
    --------
    >>> import torch
    >>> y = luminance_image(torch.rand(1, 3, 4, 4))
    >>> y.shape, bool((y[:, 0] == y[:, 1]).all())      # grey: the luminance in every channel
    (torch.Size([1, 3, 4, 4]), True)
    """
    return rgb_to_yiq(x)[:, :1].clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def prepare_color(content: torch.Tensor, styles: Sequence[torch.Tensor],
                  mode: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The content target and style images the optimiser sees under colour mode ``mode``.

    Examples
    --------
    >>> import torch
    >>> content, style = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    >>> c, styles = prepare_color(content, [style], "luminance")
    >>> c.shape, len(styles)
    (torch.Size([1, 3, 8, 8]), 1)
    """
    styles = list(styles)
    if mode == "histogram":
        return content, [match_color(s, content) for s in styles]
    if mode == "luminance":
        return luminance_image(content), [match_luminance(s, content) for s in styles]
    return content, styles


def restore_color(x: torch.Tensor, content: torch.Tensor, mode: str) -> torch.Tensor:
    """Give a result the content's colours back (``mode="luminance"``: the result is then a luminance image);
    other modes return ``x`` unchanged.

    Examples
    --------
    >>> import torch
    >>> content = torch.rand(1, 3, 8, 8)
    >>> c, _ = prepare_color(content, [torch.rand(1, 3, 8, 8)], "luminance")
    >>> torch.allclose(restore_color(c, content, "luminance"), content, atol=1e-4)   # an unchanged result
    True
    """
    if mode != "luminance":
        return x
    yiq = rgb_to_yiq(content)
    y = rgb_to_yiq(x)[:, :1]
    return yiq_to_rgb(torch.cat([y, yiq[:, 1:]], 1)).clamp(0, 1)
