"""Style-transfer losses as pure tensor functions.

All functions take *features* (or images for :func:`tv_loss`), are differentiable, and work on any device
and batch size. The :mod:`stylekit.losses.modules` classes hold targets and call these.
"""
from __future__ import annotations

import functools

import torch

__all__ = ["gram_matrix", "content_loss", "gram_loss", "style_loss", "tv_loss", "mean_std", "mean_std_loss",
           "resize_mask", "guided_gram", "weighted_moments", "moments_mean_std", "moments_mean_cov",
           "weighted_mean_cov", "sqrtm",
           "gaussian_w2", "w2_loss", "w2_from_moments", "quantile_function", "sorted_match_loss",
           "sliced_wasserstein_from_sorted", "resample_sorted",
           "sliced_wasserstein_loss", "channel_quantiles", "histogram_loss", "normalize_masks"]


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

    Examples
    --------
    >>> import torch
    >>> gram_matrix(torch.ones(1, 2, 4, 4))
    tensor([[[1., 1.],
             [1., 1.]]])
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
        # in f's precision even under autocast (bf16 runs): the sum over every position needs float32
        with torch.autocast(device_type=f.device.type, enabled=False):
            return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        with torch.autocast(device_type=f.device.type, enabled=False):
            grad = grad.to(f.dtype)
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


def content_loss(input: torch.Tensor, target: torch.Tensor, *, normalize: bool = False,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Feature reconstruction loss.

    ``normalize=False``: mean squared error. ``normalize=True``: ``||F - P||^2 / ||P||^2`` per sample, batch
    mean, which makes the loss independent of the network's activation scale. ``target`` broadcasts over the
    batch when its first dimension is 1. ``mask`` ``(B or 1, 1, H', W')`` in [0, 1] weights each position's
    error (resized to the features by area averaging): full weight where 1, none where 0; a mask of ones
    gives the unmasked loss.

    Examples
    --------
    >>> import torch
    >>> p = torch.full((1, 2, 2, 2), 2.0)
    >>> content_loss(torch.zeros(1, 2, 2, 2), p), content_loss(torch.zeros(1, 2, 2, 2), p, normalize=True)
    (tensor(4.), tensor(1.))
    """
    diff = input - target
    if diff.dtype not in (torch.float32, torch.float64):
        diff = diff.float()
    sq = diff.pow(2)
    if mask is not None:
        sq = (_flatten(sq) * _position_weights(input, mask).to(sq.dtype))
    return _relative_or_mean(sq, target.expand_as(input), normalize)


def gram_loss(input_gram: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Distance between Gram matrices ``(B, C, C)`` and a target ``(1 or B, C, C)``.

    ``normalize=False``: mean squared difference of entries. ``normalize=True``: squared Frobenius distance
    relative to ``||target||_F^2`` (the style distance of Gatys et al. with per-layer normalisation).

    Examples
    --------
    >>> import torch
    >>> gram_loss(torch.zeros(1, 3, 3), 2 * torch.eye(3)[None], normalize=True)
    tensor(1.)
    """
    return _relative_or_mean((input_gram - target_gram).pow(2), target_gram.expand_as(input_gram), normalize)


def style_loss(input: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Gram style loss of features ``input`` against a precomputed target Gram.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 8, 5, 5)
    >>> style_loss(f, gram_matrix(f))
    tensor(0.)
    """
    return gram_loss(gram_matrix(input), target_gram, normalize=normalize)


def tv_loss(image: torch.Tensor, *, exponent: float = 2.0) -> torch.Tensor:
    """Total variation of an image ``(B, C, H, W)``: mean over pixels of ``|dx|^p + |dy|^p``.

    ``exponent=2`` (default) is smooth; ``exponent=1`` is the classic anisotropic TV and uses a tiny epsilon
    so the gradient is defined at zero differences.

    Examples
    --------
    >>> import torch
    >>> tv_loss(torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]]))     # dx: 1, 4; dy: 4, 9
    tensor(9.)
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
    """Per-channel mean and standard deviation over positions: two ``(B, C)`` float32 tensors.

    Examples
    --------
    >>> import torch
    >>> mean, std = mean_std(torch.tensor([[[1.0, 3.0]]]))
    >>> mean, std
    (tensor([[2.]]), tensor([[1.0000]]))
    """
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    mean = f.mean(-1)
    std = (f.var(-1, unbiased=False) + eps).sqrt()
    return mean, std


def mean_std_loss(input: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor, *,
                  normalize: bool = False, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Distance of per-channel mean and std statistics (as in AdaIN-style losses, Huang & Belongie 2017);
    ``mask`` weights the positions the statistics are taken over (see :func:`guided_gram`).

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 4, 6, 6)
    >>> mean_std_loss(f, *mean_std(f))
    tensor(0.)
    """
    mean, std = mean_std(input) if mask is None else moments_mean_std(*weighted_moments(input, mask))
    return (_relative_or_mean((mean - target_mean).pow(2), target_mean.expand_as(mean), normalize)
            + _relative_or_mean((std - target_std).pow(2), target_std.expand_as(std), normalize))


# --- spatial guidance (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer") --------

def resize_mask(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A mask ``(B, S, H, W)`` in [0, 1] averaged over each cell of an ``hw`` grid (area interpolation).

    This is how a pixel mask becomes a feature map's weights: each feature position gets the mean of the
    pixels of its cell, so a mask edge becomes a grey transition one cell wide at deep layers.

    Examples
    --------
    >>> import torch
    >>> resize_mask(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), (1, 1))
    tensor([[[[0.2500]]]])
    """
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask
    return torch.nn.functional.interpolate(mask, size=tuple(hw), mode="area")


def _position_weights(features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """``mask`` as ``(B or 1, 1, N)`` weights over the positions of ``features`` (resized when needed)."""
    if mask is None:
        return None
    if mask.dim() == features.dim() and features.dim() == 4:
        mask = resize_mask(mask, features.shape[-2:])
    m = mask.reshape(mask.shape[0], 1, -1)
    if m.shape[-1] != features[0, 0].numel():
        raise ValueError(f"mask {tuple(mask.shape)} does not match features {tuple(features.shape)}")
    return m.to(torch.float64 if features.dtype == torch.float64 else torch.float32)


def _safe_sum(w: torch.Tensor) -> torch.Tensor:
    s = w.sum(-1, keepdim=True)
    return s.clamp_min(torch.finfo(s.dtype).tiny)


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram matrix of the positions a mask selects: ``G = sum_p w_p f_p f_p^T / sum_p w_p``.

    Parameters
    ----------
    features : ``(B, C, H, W)`` or ``(B, C, N)``.
    mask : ``(B or 1, 1, H', W')`` weights in [0, 1] (resized to ``(H, W)`` by area averaging), or
        ``(B or 1, 1, N)``. Grey values weight a position partly.

    Returns
    -------
    ``(B, C, C)`` float32 (float64 for float64 input). With a mask of ones it is :func:`gram_matrix`.

    Notes
    -----
    Gatys et al. 2017 multiply the features by the guidance channel and normalise by the number of positions;
    here the weights are normalised by their own sum, so the guided Gram is the second moment of the masked
    region's feature distribution whatever its area, and it is comparable with the style image's Gram.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 3, 4, 4)
    >>> torch.allclose(guided_gram(f, torch.ones(1, 1, 4, 4)), gram_matrix(f))
    True
    """
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    w = _position_weights(features, mask)
    return torch.bmm(f * w, f.transpose(1, 2)) / _safe_sum(w)


def weighted_moments(features: torch.Tensor, mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(B, C)`` and second moment ``(B, C, C)`` of the features' distribution over positions, each
    position weighted by ``mask`` (uniform when None). The sufficient statistics of the Gram, mean-std and W2
    losses, which is what lets those losses be evaluated tile by tile.

    Examples
    --------
    >>> import torch
    >>> mean, second = weighted_moments(torch.ones(1, 2, 3, 3))
    >>> mean, second.shape
    (tensor([[1., 1.]]), torch.Size([1, 2, 2]))
    """
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    if mask is None:
        return f.mean(-1), gram_matrix(f)
    w = _position_weights(features, mask)
    total = _safe_sum(w)
    return (f * w).sum(-1) / total[..., 0], torch.bmm(f * w, f.transpose(1, 2)) / total


def moments_mean_std(mean: torch.Tensor, second: torch.Tensor, *, eps: float = 1e-5
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation from :func:`weighted_moments` (as :func:`mean_std` gives).

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 4, 5, 5)
    >>> all(torch.allclose(a, b, atol=1e-5) for a, b in zip(moments_mean_std(*weighted_moments(f)), mean_std(f)))
    True
    """
    var = (torch.diagonal(second, dim1=-2, dim2=-1) - mean.pow(2)).clamp_min(0)
    return mean, (var + eps).sqrt()


def moments_mean_cov(mean: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance ``(B, C, C)`` from :func:`weighted_moments` (the difference taken in float64: a
    large mean makes it cancel, and a covariance that rounds to indefinite breaks its square root).

    Examples
    --------
    >>> import torch
    >>> mean, cov = moments_mean_cov(*weighted_moments(torch.ones(1, 2, 3, 3)))
    >>> cov
    tensor([[[0., 0.],
             [0., 0.]]])
    """
    m = mean.double()
    return mean, (second.double() - m[..., :, None] * m[..., None, :]).to(second.dtype)


def weighted_mean_cov(features: torch.Tensor, mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(B, C)`` and covariance ``(B, C, C)`` of the features over (``mask``-weighted) positions,
    computed from centred features, which keeps the covariance positive semi-definite in float32.

    Examples
    --------
    >>> import torch
    >>> mean, cov = weighted_mean_cov(torch.tensor([[[1.0, 3.0], [2.0, 2.0]]]))
    >>> mean, cov
    (tensor([[2., 2.]]), tensor([[[1., 0.],
             [0., 0.]]]))
    """
    f = _flatten(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    w = _position_weights(features, mask)
    if w is None:
        mean = f.mean(-1)
        fc = f - mean[..., None]
        return mean, gram_matrix(fc)
    total = _safe_sum(w)
    mean = (f * w).sum(-1) / total[..., 0]
    fc = f - mean[..., None]
    return mean, torch.bmm(fc * w, fc.transpose(1, 2)) / total


# --- Gaussian 2-Wasserstein (as in crowsonkb/style-transfer-pytorch) ---------------------------------------

def _sqrtm_newton_schulz(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """The coupled Newton-Schulz iteration for the square root of symmetric PSD matrices ``(B, C, C)``."""
    norm = a.pow(2).sum((-2, -1), keepdim=True).sqrt().clamp_min(torch.finfo(a.dtype).tiny)
    y = a / norm                      # eigenvalues in (0, 1]: the iteration converges
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    z = eye
    for _ in range(iterations):
        t = 1.5 * eye - 0.5 * (z @ y)
        y, z = y @ t, t @ z
    return y * norm.sqrt()


class _SqrtmNS(torch.autograd.Function):
    """Matrix square root: Newton-Schulz forward, exact backward.

    The backward solves the Sylvester equation ``Z X + X Z = dZ`` for the computed root ``Z`` through its
    eigendecomposition (``X = U [(U^T dZ U) / (l_i + l_j)] U^T``), which is the derivative of the true square
    root, not of the truncated iteration.
    """

    @staticmethod
    def forward(ctx, a, iterations):
        z = _sqrtm_newton_schulz(a, iterations)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        sym = (z + z.transpose(-2, -1)) / 2
        lam, u = torch.linalg.eigh(sym.double())
        lam = lam.clamp_min(0)
        floor = (lam.amax(-1, keepdim=True)[..., None] * torch.finfo(lam.dtype).eps).clamp_min(1e-300)
        denom = torch.maximum(lam[..., :, None] + lam[..., None, :], floor)
        g = u.transpose(-2, -1) @ grad.double() @ u
        return (u @ (g / denom) @ u.transpose(-2, -1)).to(grad.dtype), None


def sqrtm(a: torch.Tensor, *, iterations: int = 20) -> torch.Tensor:
    """Square root of symmetric positive semi-definite matrices ``(..., C, C)``.

    Newton-Schulz iterations (matrix products only, stable on the GPU and in float32) on the matrix scaled by
    its Frobenius norm; the gradient is the exact derivative of the square root (a Sylvester equation solved
    by eigendecomposition). Eigenvalues far below ``1e-4`` of the largest converge slowly: regularise first.

    Examples
    --------
    >>> import torch
    >>> sqrtm(torch.diag(torch.tensor([4.0, 9.0]))).round(decimals=3)
    tensor([[2., 0.],
            [0., 3.]])
    """
    shape = a.shape
    return _SqrtmNS.apply(a.reshape(-1, shape[-2], shape[-1]), int(iterations)).reshape(shape)


def _regularised(cov: torch.Tensor, eps: float) -> torch.Tensor:
    c = cov.shape[-1]
    scale = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(cov.dtype).tiny)
    return cov + (eps * scale)[..., None, None] * torch.eye(c, dtype=cov.dtype, device=cov.device)


def gaussian_w2(mean: torch.Tensor, cov: torch.Tensor, target_mean: torch.Tensor, target_cov: torch.Tensor, *,
                target_cov_sqrt: torch.Tensor | None = None, eps: float = 1e-2, iterations: int = 20
                ) -> torch.Tensor:
    """Squared 2-Wasserstein distance between Gaussians, one per sample: ``(B,)``.

    ``|m - m_t|^2 + tr(S) + tr(S_t) - 2 tr((S_t^1/2 S S_t^1/2)^1/2)``. Covariances are regularised by
    ``eps`` times their mean variance: feature maps with fewer positions than channels are singular, and the
    exact gradient of a square root is unbounded at a singular matrix (a smaller ``eps`` gives gradients
    large enough to break L-BFGS steps, and needs more iterations to converge).
    ``target_cov_sqrt`` may be given when the target is fixed (computed once).

    Examples
    --------
    >>> import torch
    >>> m, c = torch.zeros(1, 3), torch.eye(3)[None]
    >>> gaussian_w2(m + 1, c, m, c).round(decimals=3)      # equal covariances: the squared distance of means
    tensor([3.])
    """
    cov, target_cov = _regularised(cov, eps), _regularised(target_cov, eps)
    if target_cov_sqrt is None:
        target_cov_sqrt = sqrtm(target_cov, iterations=iterations)
    # The cross term in float64: in float32 its rounding can leave the iteration's region of convergence.
    cross = (target_cov_sqrt.double() @ cov.double() @ target_cov_sqrt.double())
    overlap = torch.diagonal(sqrtm((cross + cross.transpose(-2, -1)) / 2, iterations=iterations),
                             dim1=-2, dim2=-1).sum(-1).to(cov.dtype)
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1)
    return ((mean - target_mean).pow(2).sum(-1) + trace - 2 * overlap).clamp_min(0)


def w2_loss(input: torch.Tensor, target_mean: torch.Tensor, target_cov: torch.Tensor, *,
            target_cov_sqrt: torch.Tensor | None = None, mask: torch.Tensor | None = None,
            normalize: bool = False, eps: float = 1e-2) -> torch.Tensor:
    """Gaussian 2-Wasserstein style loss of features ``(B, C, ...)`` (masked by ``mask``), batch mean.

    ``normalize`` divides by the target's second moment ``|m_t|^2 + tr(S_t)``, making it scale-free.

    Examples
    --------
    >>> import torch
    >>> f = torch.randn(1, 4, 8, 8)
    >>> float(w2_loss(f, *weighted_mean_cov(f))) < 1e-3
    True
    """
    mean, cov = weighted_mean_cov(input, mask)
    return w2_from_moments(mean, cov, target_mean, target_cov, target_cov_sqrt=target_cov_sqrt,
                           normalize=normalize, eps=eps)


def w2_from_moments(mean: torch.Tensor, cov: torch.Tensor, target_mean: torch.Tensor, target_cov: torch.Tensor, *,
                    target_cov_sqrt: torch.Tensor | None = None, normalize: bool = False, eps: float = 1e-2
                    ) -> torch.Tensor:
    """:func:`w2_loss` from a mean ``(B, C)`` and covariance ``(B, C, C)`` already computed.

    Examples
    --------
    >>> import torch
    >>> m, c = torch.zeros(1, 3), torch.eye(3)[None]
    >>> w2_from_moments(m + 1, c, m, c).round(decimals=3)
    tensor(3.)
    """
    target_mean, target_cov = target_mean.to(cov.dtype), target_cov.to(cov.dtype)
    target_cov_sqrt = None if target_cov_sqrt is None else target_cov_sqrt.to(cov.dtype)
    d = gaussian_w2(mean, cov, target_mean, target_cov, target_cov_sqrt=target_cov_sqrt, eps=eps)
    if normalize:
        scale = target_mean.pow(2).sum(-1) + torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1)
        d = d / scale.clamp_min(torch.finfo(d.dtype).tiny)
    return d.mean()


# --- sorted (optimal-transport) losses: sliced Wasserstein and histogram matching --------------------------

def _levels(weights: torch.Tensor) -> torch.Tensor:
    """Quantile levels in (0, 1) of sorted samples with these weights (mid-points of their mass)."""
    cum = weights.cumsum(-1)
    return (cum - weights / 2) / cum[..., -1:].clamp_min(torch.finfo(cum.dtype).tiny)


def quantile_function(sorted_values: torch.Tensor, levels: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """The piecewise-linear quantile function through ``(levels, sorted_values)`` (both ``(..., M)``,
    increasing), evaluated at ``at`` ``(..., N)``; constant beyond the first and last level.

    Examples
    --------
    >>> import torch
    >>> quantile_function(torch.tensor([0.0, 10.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.25, 0.5]))
    tensor([2.5000, 5.0000])
    """
    lead = torch.broadcast_shapes(sorted_values.shape[:-1], levels.shape[:-1], at.shape[:-1])
    v = sorted_values.expand(*lead, sorted_values.shape[-1]).contiguous()
    lv = levels.expand(*lead, levels.shape[-1]).contiguous()
    at = at.expand(*lead, at.shape[-1]).contiguous().to(lv.dtype)
    if v.shape[-1] == 1:
        return v.expand(*lead, at.shape[-1])
    hi = torch.searchsorted(lv, at).clamp(1, v.shape[-1] - 1)
    lo = hi - 1
    l0, l1 = lv.gather(-1, lo), lv.gather(-1, hi)
    t = ((at - l0) / (l1 - l0).clamp_min(torch.finfo(lv.dtype).tiny)).clamp(0, 1)
    v0, v1 = v.gather(-1, lo), v.gather(-1, hi)
    return v0 + t.to(v.dtype) * (v1 - v0)


def _argsort(values: torch.Tensor) -> torch.Tensor:
    """Row-wise argsort of the last dimension. On the CPU through NumPy, whose vectorised sort (x86-simd-sort)
    runs about twice as fast as ``torch.sort`` on rows of this length, even when torch uses two threads; the
    sort is most of the time of a sliced Wasserstein evaluation."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        import numpy as np
        return torch.from_numpy(np.argsort(values.detach().numpy(), axis=-1))
    return values.detach().argsort(-1)


def resample_sorted(sorted_values: torch.Tensor, n: int) -> torch.Tensor:
    """The quantiles of sorted samples ``(..., M)`` at the ``n`` uniform levels ``(i + 0.5) / n``: ``(..., n)``.

    Both sides uniform, the quantile at the level of sorted sample ``i`` sits at the same fractional index of
    every row, so one gather with a shared index replaces a search per sample.

    Examples
    --------
    >>> import torch
    >>> resample_sorted(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2)
    tensor([0.5000, 2.5000])
    """
    m = sorted_values.shape[-1]
    if m == n:
        return sorted_values
    if m == 1:
        return sorted_values.expand(*sorted_values.shape[:-1], n)
    pos = ((torch.arange(n, device=sorted_values.device, dtype=torch.float64) + 0.5) * (m / n) - 0.5).clamp(0, m - 1)
    lo = pos.floor().long().clamp(max=m - 2)
    frac = (pos - lo).to(sorted_values.dtype)
    return sorted_values[..., lo] + frac * (sorted_values[..., lo + 1] - sorted_values[..., lo])


#: Rows of at least this many samples are ranked by :func:`_paired_binned` rather than sorted (uniform weights).
BINNED_RANKS_FROM = 4096


@functools.lru_cache(maxsize=16)
def _weyl(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``frac(i * 0.618...)`` for ``i < n``: evenly spread numbers in [0, 1), a fixed function of the index."""
    return torch.arange(n, dtype=torch.float64).mul_((5 ** 0.5 - 1) / 2).frac_().to(device, dtype)


@torch.no_grad()
def _paired_binned(values: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """For each sample of ``values`` ``(B, K, N)``, the target's quantile (``target_sorted`` ``(K or 1, M)`` at
    uniform levels) at the sample's rank, with the ranks read from a histogram instead of a sort.

    Each row is binned into ``N // 4`` equal-width bins; the counts' running sum gives the ranks each bin
    holds, and a sample takes a rank inside its bin's range at a fixed, evenly spread fraction of it
    (:func:`_weyl`). This is O(N) where a sort is O(N log N), and several times faster than NumPy's vectorised
    argsort on a CPU for the rows of a style-transfer step. The pairing differs from the sorted one only
    inside a bin (a few samples): the loss agrees with the sorted pairing's closely, and samples with equal
    values (ReLU zeros) are spread over their tied ranks as a sort spreads them, in another order among
    themselves, which is an equally optimal pairing.
    """
    b, k, n = values.shape
    m = target_sorted.shape[-1]
    nb = max(2, n // 4)
    lo = values.amin(-1, keepdim=True)
    span = (values.amax(-1, keepdim=True) - lo).clamp_min(torch.finfo(values.dtype).tiny)
    idx = (values - lo).mul_(nb / span).to(torch.int64).clamp_(0, nb - 1)
    counts = values.new_zeros(b, k, nb).scatter_add_(-1, idx, values.new_ones(()).expand_as(values))
    before = counts.cumsum(-1).sub_(counts)
    rank = counts.gather(-1, idx).mul_(_weyl(n, values.device, values.dtype)).add_(before.gather(-1, idx))
    at = rank.mul_(m / n).sub_(0.5).clamp_(0, m - 1)          # fractional index of the quantile at that rank
    i0 = at.to(torch.int64).clamp_(max=max(m - 2, 0))
    t = target_sorted.to(values.dtype).expand(b, k, m)
    low = t.gather(-1, i0)
    return low.add_((at - i0).mul_(t.gather(-1, (i0 + 1).clamp_(max=m - 1)) - low))


def sorted_match_loss(values: torch.Tensor, target_sorted: torch.Tensor, target_levels: torch.Tensor | None = None,
                      *, weights: torch.Tensor | None = None, exact: bool | None = None) -> torch.Tensor:
    """Mean over rows of the squared 1-D 2-Wasserstein distance between the samples ``values`` ``(B, K, N)``
    (weighted by ``weights`` ``(B or 1, 1, N)``, uniform when None) and a target given by its sorted samples
    ``(K or 1, M)`` at quantile levels ``target_levels`` (default uniform): ``(B,)``.

    In one dimension the optimal transport plan pairs sorted samples, so the distance is the weighted mean
    squared difference between each sorted sample and the target's quantile at its level. The target side
    carries no gradient; the gradient with respect to ``values`` is ``2 w (x - Q_t(u)) / sum w``.

    ``exact``: rank the samples by a sort (True) or read the ranks from a histogram (False, see
    :func:`_paired_binned`); by default (None) rows of :data:`BINNED_RANKS_FROM` samples or more with uniform
    weights and levels use the histogram, whose pairing differs from the sort's only within a bin, and
    everything else is sorted.

    Examples
    --------
    >>> import torch
    >>> sorted_match_loss(torch.tensor([[[3.0, 1.0, 2.0]]]), torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([0.])
    """
    n, m = values.shape[-1], target_sorted.shape[-1]
    if weights is None and target_levels is None and (exact is False or (exact is None and n >= BINNED_RANKS_FROM)):
        return (values - _paired_binned(values.detach(), target_sorted)).pow(2).mean((-2, -1))
    order = _argsort(values)
    if weights is None and target_levels is None:
        # Uniform on both sides: sample i of each row is paired with the target's quantile at its rank. Putting
        # those quantiles back at the samples' own positions (one scatter, no gradient) leaves a plain squared
        # difference, whose gradient needs no gather or scatter.
        with torch.no_grad():
            q = resample_sorted(target_sorted.to(values.dtype), n).expand_as(values)
            paired = torch.empty_like(values).scatter_(-1, order, q)
        return (values - paired).pow(2).mean((-2, -1))
    xs = values.gather(-1, order)       # differentiable: the gradient is scattered back through ``order``
    if target_levels is None:
        target_levels = (torch.arange(m, device=xs.device, dtype=torch.float64) + 0.5) / m
    if weights is None:
        at = ((torch.arange(n, device=xs.device, dtype=torch.float64) + 0.5) / n).expand(*xs.shape[:-1], n)
        q = quantile_function(target_sorted, target_levels, at)
        return (xs - q.detach()).pow(2).mean((-2, -1))
    w = weights.expand(xs.shape[0], xs.shape[1], n).gather(-1, order).to(xs.dtype)
    q = quantile_function(target_sorted, target_levels, _levels(w.double()))
    return ((w * (xs - q.detach()).pow(2)).sum(-1) / _safe_sum(w)[..., 0]).mean(-1)


def sliced_wasserstein_loss(input: torch.Tensor, target: torch.Tensor, projections: torch.Tensor, *,
                            mask: torch.Tensor | None = None, target_weights: torch.Tensor | None = None,
                            normalize: bool = False) -> torch.Tensor:
    """Sliced 2-Wasserstein style loss (Heitz et al., CVPR 2021), batch mean.

    Parameters
    ----------
    input : features ``(B, C, ...)``; ``mask`` weights their positions (see :func:`guided_gram`).
    target : the style's features ``(1, C, ...)`` (all its positions: the distribution to match).
    projections : ``(C, K)`` directions (unit columns); Heitz et al. draw ``K = C`` new random ones each step.
    target_weights : ``(M,)`` weights of the target's positions (a blend of several styles), default uniform.
    normalize : divide by the target's mean squared projection, making the loss scale-free.

    Notes
    -----
    Each projection is a 1-D distribution; its squared Wasserstein distance to the target's projection is the
    mean squared difference of sorted values (:func:`sorted_match_loss`). Heitz et al. compare sorted lists of
    equal length; here the target's quantile function is interpolated, so the output and style may differ in
    size and positions may be weighted by a mask.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 4, 6, 6)
    >>> sliced_wasserstein_loss(f, f, torch.eye(4))
    tensor(0.)
    """
    f = _flatten(input)
    t = _flatten(target)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    p = projections.to(f.dtype)
    x = p.t()[None] @ f                                   # (B, K, N)
    with torch.no_grad():
        tp = (p.t() @ t[0].to(f.dtype))                   # (K, M)
        ts, order = tp.sort(-1)
        levels = None if target_weights is None else _levels(target_weights.to(torch.float64)[order])
    d = sorted_match_loss(x, ts, levels, weights=_position_weights(input, mask))
    if normalize:
        if target_weights is None:
            scale = tp.pow(2).mean()
        else:
            scale = (tp.pow(2) * target_weights.to(tp.dtype)).sum(-1).mean() / target_weights.sum().to(tp.dtype)
        d = d / scale.clamp_min(torch.finfo(d.dtype).tiny)
    return d.mean()


def sliced_wasserstein_from_sorted(input: torch.Tensor, projections: torch.Tensor, target_sorted: torch.Tensor, *,
                                   mask: torch.Tensor | None = None, scale: torch.Tensor | None = None
                                   ) -> torch.Tensor:
    """:func:`sliced_wasserstein_loss` with the style's side given already projected and sorted:
    ``target_sorted`` ``(K, M)`` holds, for each of the ``K`` columns of ``projections``, the style's projected
    values sorted (or its quantiles at ``M`` uniform levels); ``scale`` divides the result (``normalize``).

    Sorting the style's projections is as costly as sorting the output's, so a loss that reuses a set of
    directions computes this side once per set (:class:`stylekit.losses.SlicedWassersteinStyleLoss`).

    Examples
    --------
    >>> import torch
    >>> f, directions = torch.rand(1, 4, 6, 6), torch.eye(4)
    >>> style_sorted = (directions.t() @ f.reshape(4, -1)).sort(-1).values
    >>> sliced_wasserstein_from_sorted(f, directions, style_sorted)
    tensor(0.)
    """
    f = _flatten(input)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    x = projections.to(f.dtype).t()[None] @ f               # (B, K, N)
    d = sorted_match_loss(x, target_sorted.to(f.dtype), None, weights=_position_weights(input, mask))
    if scale is not None:
        d = d / scale.to(d.dtype).clamp_min(torch.finfo(d.dtype).tiny)
    return d.mean()


def channel_quantiles(features: torch.Tensor, levels: int = 256, *, weights: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """``levels`` quantiles (at ``(j + 0.5) / levels``) of each channel's distribution: ``(C, levels)``.

    ``features`` is ``(1, C, ...)``; ``weights`` ``(N,)`` weights its positions. This is the stored form of
    a histogram for :func:`histogram_loss`: an equal-mass histogram with ``levels`` bins.

    Examples
    --------
    >>> import torch
    >>> channel_quantiles(torch.arange(4.0).reshape(1, 1, 4), levels=4)
    tensor([[0., 1., 2., 3.]])
    """
    f = _flatten(features)[0].float()
    fs, order = f.sort(-1)
    at = ((torch.arange(levels, device=f.device, dtype=torch.float64) + 0.5) / levels).expand(f.shape[0], levels)
    lv = None if weights is None else _levels(weights.to(torch.float64)[order])
    if lv is None:
        lv = ((torch.arange(fs.shape[-1], device=f.device, dtype=torch.float64) + 0.5) / fs.shape[-1])
    return quantile_function(fs, lv, at)


def histogram_loss(input: torch.Tensor, target_quantiles: torch.Tensor, *, mask: torch.Tensor | None = None,
                   normalize: bool = False) -> torch.Tensor:
    """Per-channel histogram loss (Risser et al. 2017), in its stable form; batch mean.

    ``target_quantiles`` is ``(C, L)`` from :func:`channel_quantiles`. Each channel of ``input`` is remapped
    to the target histogram (exact histogram matching: sorted values take the target's quantiles) and the
    loss is the squared distance to the remapped features, with no gradient through the remapping.

    Notes
    -----
    Risser et al. match 256-bin histograms with a look-up table; matching sorted values to an interpolated
    quantile function is the same map without binning error, and it is the 1-D optimal transport, so the loss
    is the sliced Wasserstein distance along the channel axes. ``normalize`` divides by the target's mean
    squared value.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(1, 3, 5, 5)
    >>> float(histogram_loss(f, channel_quantiles(f, 25))) < 1e-10
    True
    """
    f = _flatten(input)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    d = sorted_match_loss(f, target_quantiles.to(f.dtype), weights=_position_weights(input, mask))
    if normalize:
        d = d / target_quantiles.pow(2).mean().to(d.dtype).clamp_min(torch.finfo(d.dtype).tiny)
    return d.mean()


def normalize_masks(masks: torch.Tensor, blend=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Style masks ``(S, 1, H, W)`` in [0, 1] -> per-style position weights and term coefficients.

    Where masks overlap (their sum exceeds 1) they are divided by their sum, so the styles share the pixel;
    elsewhere they are kept, so a grey pixel gets part of a style and a pixel black in every mask gets none
    (only the content term). Style ``i``'s term is weighted by ``S * blend_i * mean(weights_i)``: the share of
    the image it covers, scaled by its blend weight (``blend`` sums to 1; equal by default), so one white
    mask gives the unmasked loss and disjoint masks split the style term by area.

    Returns ``(weights (S, 1, H, W), coefficients (S,))``.

    Examples
    --------
    >>> import torch
    >>> weights, coefficients = normalize_masks(torch.ones(2, 1, 4, 4))     # two styles everywhere: halves
    >>> weights[:, 0, 0, 0], coefficients
    (tensor([0.5000, 0.5000]), tensor([0.5000, 0.5000]))
    """
    s = masks.shape[0]
    total = masks.sum(0, keepdim=True)
    weights = masks / total.clamp_min(1.0)
    b = torch.full((s,), 1.0 / s, dtype=weights.dtype) if blend is None else torch.as_tensor(blend, dtype=weights.dtype)
    coef = s * b.to(weights.device) / b.sum() * weights.mean((1, 2, 3))
    return weights, coef
