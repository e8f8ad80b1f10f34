"""Style-transfer losses as pure tensor functions.

All functions take *features* (or images for :func:`tv_loss`), are differentiable, and work on any device
and batch size. The :mod:`stylekit.losses.modules` classes hold targets and call these.
"""
from __future__ import annotations

import torch

__all__ = ["gram_matrix", "content_loss", "gram_loss", "style_loss", "tv_loss", "mean_std", "mean_std_loss"]


def _flatten(features: torch.Tensor) -> torch.Tensor:
    if features.dim() < 3:
        raise ValueError(f"features must be (B, C, ...) with at least one position axis, got {tuple(features.shape)}")
    return features.reshape(features.shape[0], features.shape[1], -1)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of positions.

    Parameters
    ----------
    features : ``(B, C, H, W)`` or ``(B, C, T)``, any float dtype.

    Returns
    -------
    ``(B, C, C)`` float32 (float64 for float64 input): ``G = F F^T / (H W)``.

    Notes
    -----
    Half-precision (bf16/fp16) features are upcast before the product: a sum over ~10^5 positions of
    products of activations in the hundreds overflows fp16 and loses most digits in bf16. Normalising by the
    number of positions (not by ``C H W`` as in some implementations) makes Grams of images of different
    sizes comparable, which is what lets style targets differ in size from the output.
    """
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    return _Gram.apply(f) / f.shape[-1]


class _Gram(torch.autograd.Function):
    """``F F^T`` with a one-product backward.

    Autograd's generic backward of ``bmm(F, F^T)`` makes two products of the size of the forward one (one per
    operand); since both operands are ``F``, the gradient is ``(dG + dG^T) F``: one product. The Gram
    products are about a tenth of a style-transfer iteration, so this saves a few percent of every step.
    The backward is written with differentiable operations, so higher-order gradients still work.
    """

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), f)


def _relative_or_mean(sq: torch.Tensor, target: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Per-sample squared error ``sq`` (B, ...) reduced to a scalar: the batch mean of the MSE, or of the
    squared error relative to ``||target||^2`` when ``normalize``."""
    b = sq.shape[0]
    per = sq.reshape(b, -1)
    if normalize:
        denom = target.reshape(target.shape[0], -1).pow(2).sum(1)
        return (per.sum(1) / denom.clamp_min(torch.finfo(denom.dtype).tiny)).mean()
    return per.mean()


def content_loss(input: torch.Tensor, target: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Feature reconstruction loss.

    ``normalize=False``: mean squared error. ``normalize=True``: ``||F - P||^2 / ||P||^2`` per sample, batch
    mean, which makes the loss independent of the network's activation scale. ``target`` broadcasts over the
    batch when its first dimension is 1.
    """
    diff = input - target
    if diff.dtype not in (torch.float32, torch.float64):
        diff = diff.float()
    return _relative_or_mean(diff.pow(2), target.expand_as(input), normalize)


def gram_loss(input_gram: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Distance between Gram matrices ``(B, C, C)`` and a target ``(1 or B, C, C)``.

    ``normalize=False``: mean squared difference of entries. ``normalize=True``: squared Frobenius distance
    relative to ``||target||_F^2`` (the style distance of Gatys et al. with per-layer normalisation).
    """
    return _relative_or_mean((input_gram - target_gram).pow(2), target_gram.expand_as(input_gram), normalize)


def style_loss(input: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Gram style loss of features ``input`` against a precomputed target Gram."""
    return gram_loss(gram_matrix(input), target_gram, normalize=normalize)


def tv_loss(image: torch.Tensor, *, exponent: float = 2.0) -> torch.Tensor:
    """Total variation of an image ``(B, C, H, W)``: mean over pixels of ``|dx|^p + |dy|^p``.

    ``exponent=2`` (default) is smooth; ``exponent=1`` is the classic anisotropic TV and uses a tiny epsilon
    so the gradient is defined at zero differences.
    """
    if exponent <= 0:
        raise ValueError(f"TV exponent must be positive, got {exponent}")
    eps = 1e-8
    total = image.new_zeros(())
    for d in (image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]):
        if d.numel():  # a 1-pixel-wide image has no differences along that axis
            total = total + (d.pow(2).mean() if exponent == 2 else (d.pow(2) + eps).pow(exponent / 2).mean())
    return total


def mean_std(features: torch.Tensor, *, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over positions: two ``(B, C)`` float32 tensors."""
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    mean = f.mean(-1)
    std = (f.var(-1, unbiased=False) + eps).sqrt()
    return mean, std


def mean_std_loss(input: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor, *,
                  normalize: bool = False) -> torch.Tensor:
    """Distance of per-channel mean and std statistics (as in AdaIN-style losses, Huang & Belongie 2017)."""
    mean, std = mean_std(input)
    return (_relative_or_mean((mean - target_mean).pow(2), target_mean.expand_as(mean), normalize)
            + _relative_or_mean((std - target_std).pow(2), target_std.expand_as(std), normalize))
