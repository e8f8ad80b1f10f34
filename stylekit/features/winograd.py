"""Fast 3x3 convolutions for the frozen VGG19 on the CPU: two Winograd kernels, forward and input gradient.

torch's CPU ``conv2d`` (oneDNN) runs VGG19's 3x3 convolutions near this CPU's multiply-add peak, so the only
way to make them faster is to do fewer multiplies. Winograd's minimal filtering algorithms do exactly that.
Two implementations are used, each where it was measured to be the fastest (docs/benchmarks.md):

* NNPACK's Winograd kernels (inside PyTorch's CPU build) on large maps (blocks 1-3 at usual sizes);
* :class:`TileWinograd`, F(4x4, 3x3) written with torch ops (two small transform products and one batched
  GEMM), on the small maps of 256- and 512-channel layers (block 4 at 256 px, block 5 at 512 px), where
  NNPACK's kernels are slower than the direct ones and this one is 1.2-1.6x faster than both (forward +
  input gradient, ``benchmarks/bench_image.py conv-kernels``). PyTorch has no Winograd kernel of its own for
  these shapes, which is why it is written here.

The input gradient of NNPACK's is the same convolution with the weight transposed and flipped; that of
:class:`TileWinograd` is the exact adjoint of its own forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["nnpack_available", "NNPACKConv3x3", "TileWinograd", "tile_weight"]

_nnpack_ok: bool | None = None


def nnpack_available() -> bool:
    global _nnpack_ok
    if _nnpack_ok is None:
        try:
            # _nnpack_available() also initialises NNPACK; without that call its convolutions fail.
            _nnpack_ok = bool(torch._nnpack_available()) and hasattr(torch, "_nnpack_spatial_convolution")
        except Exception:  # pragma: no cover - builds without NNPACK
            _nnpack_ok = False
    return _nnpack_ok


class NNPACKConv3x3(torch.autograd.Function):
    """3x3, stride 1, padding 1 convolution with a frozen weight, through NNPACK in both directions.

    The input gradient of such a convolution is the same convolution of the output gradient with the weight
    transposed (in/out channels swapped) and flipped, so the backward pass is Winograd-fast too.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, weight_t):
        ctx.save_for_backward(weight_t)
        return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1], [1, 1])

    @staticmethod
    def backward(ctx, grad):
        (weight_t,) = ctx.saved_tensors
        gx = torch._nnpack_spatial_convolution(grad.contiguous(), weight_t, None, [1, 1], [1, 1])
        return gx, None, None, None


# Winograd F(4x4, 3x3) with the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016):
# a 6x6 input tile d and a 3x3 filter g give the 4x4 output tile A^T [(G g G^T) * (B^T d B)] A.
_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
# Both 2-D transforms as one matrix each acting on a flattened tile (vec(B^T d B) = (B^T kron B^T) vec(d)),
# so each is a single GEMM over all tiles and channels instead of many 6x6 products. Their entries are small
# integers, exact in any float type.
_KB = torch.kron(_BT, _BT).float()   # (36, 36)
_KA = torch.kron(_AT, _AT).float()   # (16, 36)
_KB_T = _KB.T.contiguous()
_KA_T = _KA.T.contiguous()


def tile_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters -> their (36, K, C) Winograd transforms G g G^T (computed in float64)."""
    k, c = weight.shape[:2]
    u = torch.einsum("ai,kcij,bj->abkc", _G, weight.detach().double(), _G)
    return u.reshape(36, k, c).to(weight.dtype).contiguous()


def _tiles(h: int, w: int) -> tuple[int, int]:
    return -(-h // 4), -(-w // 4)


def _forward(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    n, c, h, w = x.shape
    k = u.shape[1]
    th, tw = _tiles(h, w)
    p = n * th * tw
    # padding 1 on the top/left, and enough on the bottom/right for whole 6x6 tiles with stride 4
    xp = F.pad(x, (1, 4 * tw + 1 - w, 1, 4 * th + 1 - h))
    d = xp.unfold(2, 6, 4).unfold(3, 6, 4).permute(4, 5, 1, 0, 2, 3).reshape(36, c * p)
    v = (_KB.to(d) @ d).view(36, c, p)
    m = torch.bmm(u, v)                                            # (36, K, P): the only large product
    y = (_KA.to(m) @ m.view(36, k * p)).view(4, 4, k, n, th, tw)
    y = y.permute(3, 2, 4, 0, 5, 1).reshape(n, k, 4 * th, 4 * tw)[:, :, :h, :w]
    return y + bias.view(1, k, 1, 1) if bias is not None else y.contiguous()


def _adjoint(gy: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The input gradient: every step of :func:`_forward` transposed, in reverse order."""
    n, k, h, w = gy.shape
    c = u.shape[2]
    th, tw = _tiles(h, w)
    p = n * th * tw
    g = F.pad(gy, (0, 4 * tw - w, 0, 4 * th - h)).view(n, k, th, 4, tw, 4)
    g = g.permute(3, 5, 1, 0, 2, 4).reshape(16, k * p)
    gm = (_KA_T.to(g) @ g).view(36, k, p)
    gv = torch.bmm(u.transpose(1, 2), gm)                          # (36, C, P)
    gd = (_KB_T.to(gv) @ gv.view(36, c * p)).view(6, 6, c, n, th, tw)
    cols = gd.permute(3, 2, 0, 1, 4, 5).reshape(n, c * 36, th * tw)
    # the tiles overlap by two rows/columns: fold (col2im) adds the overlaps, as the adjoint of unfold must
    gxp = F.fold(cols, (4 * th + 2, 4 * tw + 2), kernel_size=6, stride=4)
    return gxp[:, :, 1:h + 1, 1:w + 1].contiguous()


class TileWinograd(torch.autograd.Function):
    """3x3, stride 1, padding 1 convolution with a frozen weight as Winograd F(4x4, 3x3) in torch ops.

    ``u`` is :func:`tile_weight` of the weight. Float32, CPU. Same results as ``conv2d`` up to float rounding
    (about 2e-6 relative); the backward pass is the exact adjoint of the forward one.
    """

    @staticmethod
    def forward(ctx, x, u, bias):
        ctx.save_for_backward(u)
        return _forward(x, u, bias)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return _adjoint(grad, u), None, None
