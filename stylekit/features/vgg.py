"""VGG19 feature extractor with named layers, preprocessing inside, truncated and frozen."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from .weights import CONV_NAMES, PREPROCESSING, load_conv_weights
from .winograd import (NNPACKConv3x3, PrecomputedNNPACKConv3x3, TileWinograd, gradient_weight, nnpack_available,
                       nnpack_library, tile_weight)

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


# Which 3x3 convolution kernel each layer takes on the CPU in fp32 (winograd=True), from measurements on a 2-core
# AVX2 CPU at one and two threads (docs/benchmarks.md):
# * where stylekit.features.winograd can call NNPACK itself (the filters' Winograd transforms computed once):
#   NNPACK's F(6x6, 3x3) for every layer with at least 16 input channels on maps of at least 128 positions,
#   the fastest kernel measured for every such VGG19 layer; torch's conv2d elsewhere (the 3-channel first
#   layer, tiny maps);
# otherwise, through PyTorch's own bindings:
# * maps of at least 2048 positions (blocks 1-3 at usual sizes): NNPACK's Winograd kernels, 1.5-2x faster than
#   torch's direct kernel with one thread, 1.0-1.8x with two; not for the 3-channel first layer, where torch's
#   own kernel is faster in both directions (forward + input gradient at 256x170: 12 ms against 18 ms with one
#   thread, 11 against 16 ms with two);
# * smaller maps of 384 positions or more in the 256- and 512-channel layers (C_in * C_out >= 256 * 512: block 4
#   at 256-384 px, block 5 at 512 px): Winograd F(4x4, 3x3) in torch ops (TileWinograd), 1.2-1.6x faster than
#   the direct kernel there, where NNPACK is slower than both;
# * everything else: torch's conv2d.
_PRECOMPUTED_MIN_POSITIONS = 128
_WINOGRAD_MIN_POSITIONS = 2048
_WINOGRAD_MIN_CHANNELS = 16
_TILE_MIN_POSITIONS = 384
_TILE_MIN_CHANNEL_PRODUCT = 256 * 512
# torch.compile cannot trace NNPACK's convolution (its op has no meta kernel), so a compiled network takes
# torch's own convolutions; eager calls of the same network keep the Winograd ones.
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def min_input_size(layers: Iterable[str]) -> int:
    """Smallest H and W (pixels) for which every requested layer has at least one spatial position.

    Each pooling layer before (or at) the deepest requested layer halves the resolution, so the minimum is
    ``2 ** pools``: 1 for block 1, 2 for block 2, ... 16 for block 5 and 32 for ``pool5``.
    """
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    pools = sum(1 for n in LAYER_NAMES[: deepest + 1] if n.startswith("pool"))
    return 2 ** pools


def _takes_kept_nnpack(in_channels: int, positions: int) -> bool:
    """Whether a layer takes NNPACK with kept transforms (where stylekit can call NNPACK itself)."""
    return in_channels >= _WINOGRAD_MIN_CHANNELS and positions >= _PRECOMPUTED_MIN_POSITIONS


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
    winograd : on the CPU in fp32, run the 3x3 convolutions through Winograd kernels (default True; same
        results up to float rounding, about 1e-5 relative per layer; see :mod:`stylekit.features.winograd`).
        The filters' Winograd transforms are kept once computed, for the forward pass and for the input
        gradient: 14x the size of the filters with NNPACK (about 134 MB for each 512-channel layer, 0.7 GB
        for a network up to relu5_1; :meth:`transform_bytes`), 4x with the torch-ops fallback for block 4-5.

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
        self._derived: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.requires_grad_(False)
        self.eval()

    def _conv(self, name: str, h: torch.Tensor) -> torch.Tensor:
        w = getattr(self, f"{name}_weight")
        b = getattr(self, f"{name}_bias")
        if (self.winograd and h.device.type == "cpu" and h.dtype == torch.float32 and w.dtype == torch.float32
                and not w.requires_grad and not torch.is_autocast_enabled("cpu") and not _is_compiling()):
            positions = h.shape[-2] * h.shape[-1]
            lib = nnpack_library()
            if lib is not None:
                if _takes_kept_nnpack(h.shape[1], positions):
                    kernel = self._cached(name, w, "nnpack-kernel", lambda: lib.transform(w))
                    kernel_t = self._cached(name, w, "nnpack-kernel-t", lambda: lib.transform(gradient_weight(w)))
                    return PrecomputedNNPACKConv3x3.apply(h, kernel, b, kernel_t)
            elif positions >= _WINOGRAD_MIN_POSITIONS:
                if h.shape[1] >= _WINOGRAD_MIN_CHANNELS and nnpack_available():
                    flipped = self._cached(name, w, "nnpack", lambda: gradient_weight(w))
                    return NNPACKConv3x3.apply(h, w.contiguous(), b.contiguous(), flipped)
            elif positions >= _TILE_MIN_POSITIONS and w.shape[0] * w.shape[1] >= _TILE_MIN_CHANNEL_PRODUCT:
                return TileWinograd.apply(h, self._cached(name, w, "tile", lambda: tile_weight(w)), b)
        return F.conv2d(h, w.to(h.dtype), b.to(h.dtype), padding=1)

    def transform_bytes(self, device: torch.device | str) -> int:
        """Bytes of filter transforms a CPU pass will still add (see ``winograd``): an upper bound, 0 elsewhere."""
        lib = nnpack_library()
        if not self.winograd or torch.device(device).type != "cpu" or lib is None:
            return 0
        total = 0
        for name in self._sequence:
            w = getattr(self, f"{name}_weight", None) if name.startswith("conv") else None
            # every layer that takes the kept kernel on a large enough map (hence an upper bound)
            if (w is not None and w.dtype == torch.float32
                    and _takes_kept_nnpack(w.shape[1], _PRECOMPUTED_MIN_POSITIONS)):
                for kind, (k, c) in (("nnpack-kernel", w.shape[:2]), ("nnpack-kernel-t", w.shape[1::-1])):
                    cached = self._derived.get((name, kind))
                    if cached is None or cached[0] is not w:
                        total += lib.transform_bytes(c, k)
        return total

    def workspace_bytes(self, height: int, width: int, device: torch.device | str) -> int:
        """Bytes of the NNPACK workspace a CPU pass on an ``height x width`` image needs (0 where none is used).

        One buffer serves every layer and is kept at its largest, so this is the largest layer's need.
        """
        lib = nnpack_library()
        if not self.winograd or torch.device(device).type != "cpu" or lib is None:
            return 0
        need, h, w = 0, height, width
        for name in self._sequence:
            if name.startswith("pool"):
                h, w = h // 2, w // 2
            elif name.startswith("conv"):
                k, c = getattr(self, f"{name}_weight").shape[:2]
                if _takes_kept_nnpack(c, h * w):
                    need = max(need, lib.workspace_bytes(c, k, h, w), lib.workspace_bytes(k, c, h, w))
        return need

    def _cached(self, name: str, w: torch.Tensor, kind: str, make) -> torch.Tensor:
        """A derived form of a frozen weight, made once (and again only if the weight tensor is replaced)."""
        cached = self._derived.get((name, kind))
        if cached is None or cached[0] is not w:
            cached = (w, make())
            self._derived[(name, kind)] = cached
        return cached[1]

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
        seq = self._sequence
        i = 0
        while i < len(seq):
            name = seq[i]
            if name.startswith("conv"):
                h = self._conv(name, h)
            elif (name.startswith("relu") and self.pooling == "max" and name not in wanted
                    and i + 1 < len(seq) and seq[i + 1].startswith("pool")):
                # Max pooling commutes with ReLU (both are monotone), so when the ReLU before a pooling layer
                # is not requested, pool the pre-activation and take the ReLU on a map 4x smaller: the same
                # values and gradients, with three quarters of that ReLU's work (forward and backward) saved.
                i += 1
                h = F.relu(F.max_pool2d(h, 2), inplace=True)
                name = seq[i]
            elif name.startswith("relu"):
                # Not in place when the pre-activation is also requested, so the conv output survives.
                h = F.relu(h, inplace=("conv" + name[4:]) not in wanted)
            elif self.pooling == "max":
                h = F.max_pool2d(h, 2)
            else:
                h = F.avg_pool2d(h, 2)
            if name in wanted:
                out[name] = h
            i += 1
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
