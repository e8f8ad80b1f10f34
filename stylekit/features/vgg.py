"""VGG19 feature extractor with named layers, preprocessing inside, truncated and frozen."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from .weights import CONV_NAMES, PREPROCESSING, load_conv_weights

__all__ = ["VGG19Features", "MonoAdapter", "LAYER_NAMES", "min_input_size"]


def _layer_sequence() -> list[str]:
    names = []
    for conv in CONV_NAMES:
        names += [conv, "relu" + conv[4:]]
        block, idx = conv[4:].split("_")
        if (block, idx) in {("1", "2"), ("2", "2"), ("3", "4"), ("4", "4"), ("5", "4")}:
            names.append(f"pool{block}")
    return names


#: Every layer name, in network order: conv1_1, relu1_1, ..., pool1, ..., relu5_4, pool5.
LAYER_NAMES: tuple[str, ...] = tuple(_layer_sequence())
POOLING = ("max", "avg")


# NNPACK's Winograd kernels (shipped inside PyTorch's CPU build) do a 3x3 convolution with fewer multiplies
# than the direct/GEMM kernels torch's conv2d uses on the CPU. Measured on a 2-core AVX2 CPU (one thread,
# docs/benchmarks.md) they are 1.5-2x faster on VGG19's blocks 1-3 (large maps) and slower on blocks 4-5
# (small maps, 512 channels), so they are used only where the map has at least this many positions, and not
# for the 3-channel first layer, where torch's own kernel is faster in both directions (forward + input
# gradient at 256x170: 12 ms against 18 ms with one thread, 11 against 16 ms with two).
_WINOGRAD_MIN_POSITIONS = 2048
_WINOGRAD_MIN_CHANNELS = 16
# torch.compile cannot trace NNPACK's convolution (its op has no meta kernel), so a compiled network takes
# torch's own convolutions; eager calls of the same network keep the Winograd ones.
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)
_nnpack_ok: bool | None = None


def _nnpack_available() -> bool:
    global _nnpack_ok
    if _nnpack_ok is None:
        try:
            # _nnpack_available() also initialises NNPACK; without that call its convolutions fail.
            _nnpack_ok = bool(torch._nnpack_available()) and hasattr(torch, "_nnpack_spatial_convolution")
        except Exception:  # pragma: no cover - builds without NNPACK
            _nnpack_ok = False
    return _nnpack_ok


class _WinogradConv3x3(torch.autograd.Function):
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


def min_input_size(layers: Iterable[str]) -> int:
    """Smallest H and W (pixels) for which every requested layer has at least one spatial position.

    Each pooling layer before (or at) the deepest requested layer halves the resolution, so the minimum is
    ``2 ** pools``: 1 for block 1, 2 for block 2, ... 16 for block 5 and 32 for ``pool5``.
    """
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    pools = sum(1 for n in LAYER_NAMES[: deepest + 1] if n.startswith("pool"))
    return 2 ** pools


class VGG19Features(nn.Module):
    """VGG19 activations at named layers, for RGB images in [0, 1].

    Input: ``(N, 3, H, W)`` RGB in [0, 1], any N >= 1, H and W at least :func:`min_input_size` of the layers.
    Output: ``dict`` layer name -> ``(N, C, H_l, W_l)`` float tensor.

    Parameters
    ----------
    layers : names such as ``"relu4_2"`` (``conv1_1`` ... ``relu5_4``, ``pool1`` ... ``pool5``).
    weights : ``"caffe"`` (default: the original weights Gatys et al. used), ``"torchvision"``, or a path to a
        state_dict in the layout of ``torchvision.models.vgg19().features``.
    pooling : ``"max"`` (the trained network) or ``"avg"``.
    preprocessing : only for a path: ``"caffe"`` or ``"torchvision"``. Named sources know their own.
    winograd : on the CPU in fp32, run the convolutions of large feature maps through NNPACK's Winograd
        kernels (default True; same results up to float rounding, about 1e-5 relative per layer).

    Notes
    -----
    The preprocessing belongs to the weights: the caffe network sees BGR in 0..255 minus the ImageNet mean,
    torchvision's sees RGB mean/std-normalised. Users never do this themselves.

    The network is cut after the deepest requested layer, and its weights are buffers, not parameters, so it
    is frozen and ``.to(device)`` moves it.

    ``pooling="avg"`` replaces max pooling by 2x2 average pooling, as Gatys et al. suggest for smoother
    results. An average is at most the maximum of the same window, so activations after each pooling layer
    become smaller, and the shrinkage compounds with depth (deeper layers see several averaged poolings).
    Absolute Gram values therefore fall with depth; the normalised losses of :mod:`stylekit.losses` are
    scale-free per layer, so layer weights need no retuning.
    """

    def __init__(self, layers: Sequence[str] | str, *, weights: str | os.PathLike = "caffe",
                 pooling: str = "max", preprocessing: str | None = None, winograd: bool = True) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        layers = tuple(dict.fromkeys(layers))
        if not layers:
            raise ConfigError("VGG19Features needs at least one layer")
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown:
            raise ConfigError(f"unknown VGG19 layer {unknown[0]!r}; layers are named conv1_1 ... relu5_4 "
                              "and pool1 ... pool5")
        if pooling not in POOLING:
            raise ConfigError(f"pooling must be one of {', '.join(POOLING)}, got {pooling!r}")
        self.layers = layers
        self.pooling = pooling
        deepest = max(LAYER_NAMES.index(n) for n in layers)
        self._sequence = LAYER_NAMES[: deepest + 1]
        n_convs = sum(1 for n in self._sequence if n.startswith("conv"))
        self.source, convs = load_conv_weights(weights, n_convs=n_convs, preprocessing=preprocessing)
        self.min_size = min_input_size(layers)
        for name, (w, b) in zip(CONV_NAMES, convs):
            self.register_buffer(f"{name}_weight", w)
            self.register_buffer(f"{name}_bias", b)
        pre = PREPROCESSING[self.source.preprocessing]
        self._order = pre["order"]
        self.register_buffer("_scale", torch.tensor(pre["scale"]) / torch.tensor(pre["std"]).view(1, 3, 1, 1))
        self.register_buffer("_shift", (torch.tensor(pre["mean"]) / torch.tensor(pre["std"])).view(1, 3, 1, 1))
        self.winograd = bool(winograd)
        self._flipped: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.requires_grad_(False)
        self.eval()

    def _conv(self, name: str, h: torch.Tensor) -> torch.Tensor:
        w = getattr(self, f"{name}_weight")
        b = getattr(self, f"{name}_bias")
        if (self.winograd and h.device.type == "cpu" and h.dtype == torch.float32 and w.dtype == torch.float32
                and not w.requires_grad and h.shape[-2] * h.shape[-1] >= _WINOGRAD_MIN_POSITIONS
                and h.shape[1] >= _WINOGRAD_MIN_CHANNELS
                and not torch.is_autocast_enabled("cpu") and not _is_compiling() and _nnpack_available()):
            cached = self._flipped.get(name)
            if cached is None or cached[0] is not w:
                cached = (w, w.transpose(0, 1).flip(2, 3).contiguous())
                self._flipped[name] = cached
            return _WinogradConv3x3.apply(h, w.contiguous(), b.contiguous(), cached[1])
        return F.conv2d(h, w.to(h.dtype), b.to(h.dtype), padding=1)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, weights={self.source.name!r}, pooling={self.pooling!r}"

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the input the weights expect (channel order, scale, mean, std)."""
        if self._order != (0, 1, 2):
            x = x[:, list(self._order)]
        return x * self._scale.to(x.dtype) - self._shift.to(x.dtype)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise InputError(f"VGG19Features expects a (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            raise InputError("VGG19Features expects RGB (N, 3, H, W); a 1-channel input such as a spectrogram "
                             "must go through stylekit.features.MonoAdapter")
        if x.shape[1] != 3:
            raise InputError(f"VGG19Features expects 3 channels, got {x.shape[1]}")
        if min(x.shape[-2:]) < self.min_size:
            raise InputError(f"image of {x.shape[-1]}x{x.shape[-2]} px is too small for layers up to "
                             f"{self._sequence[-1]}: the minimum is {self.min_size}x{self.min_size} px")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check(x)
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for name in self._sequence:
            if name.startswith("conv"):
                h = self._conv(name, h)
            elif name.startswith("relu"):
                # Not in place when the pre-activation is also requested, so the conv output survives.
                h = F.relu(h, inplace=("conv" + name[4:]) not in wanted)
            elif self.pooling == "max":
                h = F.max_pool2d(h, 2)
            else:
                h = F.avg_pool2d(h, 2)
            if name in wanted:
                out[name] = h
        return out


class MonoAdapter(nn.Module):
    """Explicit adapter from 1-channel images (for example spectrograms) to an RGB feature extractor.

    Input ``(N, 1, H, W)`` in [0, 1]; the channel is repeated to gray RGB and passed to ``extractor``.
    VGG19Features refuses 1-channel input on purpose, so that this mapping is always a visible choice.
    """

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor
        self.layers = tuple(getattr(extractor, "layers", ()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise InputError(f"MonoAdapter expects a (N, 1, H, W) tensor, got shape {tuple(x.shape)}")
        return self.extractor(x.expand(-1, 3, -1, -1))
