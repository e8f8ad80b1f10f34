"""The settings of an image style transfer: :class:`ImageStyleConfig`.

Plain Python (no torch), so the command line builds its options and ``--help`` from these fields without
loading the network.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from .._device import DEVICE_METAVAR, check_device
from .._options import format_layers, option, parse_floats, parse_layers, parse_tile
from .._validate import TORCH_SEEDS, check_float, check_int, fold_seed
from ..errors import ConfigError
from ..features.layers import LAYER_NAMES, POOLING, min_input_size

if TYPE_CHECKING:
    import torch

__all__ = ["ImageStyleConfig", "PRESERVE_COLOR", "INITS", "PRECISIONS", "OPTIMIZERS", "DEFAULT_STYLE_LAYERS",
           "DEFAULT_CONTENT_LAYERS", "STYLE_LOSS_NAMES", "MASK_RESIZE"]

#: Output suffix -> image format (read by the Job's plan without loading PIL, and by :mod:`.io` to write).
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
#: The colour modes of ``preserve_color`` (:mod:`stylekit.image.color`).
PRESERVE_COLOR = ("none", "luminance", "histogram")
INITS = ("content", "noise")
#: Upper bounds that keep a mistyped number from asking for absurd work (the memory estimate refuses what does
#: not fit long before these).
MAX_SIZE = 1 << 17
MAX_ITERATIONS = 1_000_000
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
#: The style losses (:data:`stylekit.losses.STYLE_LOSSES`; listed here without importing torch).
STYLE_LOSS_NAMES = ("gram", "mean-std", "w2", "sw", "hist")
#: How masks of another shape than the content are fitted: refused beyond 1% aspect difference, or stretched.
MASK_RESIZE = ("strict", "stretch")


def _parse_paths(text: str) -> tuple[str, ...]:
    """``"a.png,b.png"`` -> ``("a.png", "b.png")`` (the batch manifest's form; the command repeats the option)."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class ImageStyleConfig:
    """Every setting of an image style transfer; the CLI's defaults are read from here.

    Attributes
    ----------
    size : long edge of the output in pixels; ``None`` picks 512 on a GPU and 384 on the CPU.
    iterations : optimiser iterations at the finest scale; each coarser scale runs ``coarse_iterations``.
    coarse_iterations : iterations at each coarser scale (they are cheap: a half-size scale costs ~1/4).
    optimizer : ``"lbfgs"`` or ``"adam"``.
    content_weight, style_weight, tv_weight : weights of the three loss terms. The content and style terms are
        relative (scale-free) feature distances, so these work at any size and for either weights source.
    style_blend : one weight per style image (normalised); default equal.
    style_scale : each style image is resized to ``style_scale`` times the output's long edge.
    content_layers, style_layers : ``{layer: weight}``.
    pooling : ``"max"`` or ``"avg"``.
    init : ``"content"``, ``"noise"`` or the path of an image to start from.
    scales : number of coarse-to-fine levels (1 = single scale); ``min_size`` is the coarsest long edge.
    preserve_color : ``"none"``, ``"luminance"`` (transfer on luminance only, keep the content's colours) or
        ``"histogram"`` (recolour the style to the content's colour statistics first); Gatys et al. 2017.
    weights : ``"caffe"``, ``"torchvision"`` or a path to a ``vgg19().features`` state_dict (then
        ``preprocessing`` names what it expects).
    device : ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (routed
        but untested).
    seed : seeds the noise initialisation; runs are deterministic on the CPU. Any integer: one outside the
        generators' range is mapped into it (the same integer always gives the same run).
    precision : ``"auto"`` (TF32 convolutions on CUDA, fp32 on the CPU), ``"fp32"``, ``"tf32"`` (CUDA) or
        ``"bf16"`` (convolutions in bfloat16 under autocast). Gram matrices and losses are always fp32.
    tile : ``"auto"`` (tile only when the whole image would not fit the memory budget), ``"off"``, or a tile
        size in pixels: the objective is then evaluated exactly, tile by tile (:mod:`stylekit.image.tiling`).
    max_memory : memory budget in GB for ``tile="auto"`` and the fit check; default 80% of what is free.
    style_loss : ``"gram"`` (Gatys et al.), ``"mean-std"``, ``"w2"`` (Gaussian 2-Wasserstein), ``"sw"`` (sliced
        Wasserstein, Heitz et al. 2021) or ``"hist"`` (per-channel histograms, Risser et al. 2017). ``sw`` and
        ``hist`` cannot be tiled exactly and are refused when a scale needs tiles.
    style_masks : one image path per style, in style order: white = this style here, grey = partly, black =
        not here (Gatys et al. 2017); see :func:`stylekit.losses.functional.normalize_masks`.
    content_mask : image path: the content term at full weight where white, none where black.
    mask_resize : ``"strict"`` (a mask's aspect ratio must be within 1% of the content's) or ``"stretch"``.
    compile : run the objective (network, losses and their backward) through ``torch.compile``; on CUDA with
        CUDA graphs (``mode="reduce-overhead"``), which removes the per-kernel launch cost of short iterations.
        Each scale's first iteration waits for compilation (tens of seconds), so it pays only for long runs at
        a fixed size. Tiled scales stay uncompiled; on the CPU the compiled network cannot use the Winograd
        convolutions and is slower. If compilation fails, the run warns and goes on uncompiled.

    Examples
    --------
    >>> config = ImageStyleConfig(size=256, style_weight=10)
    >>> config.style_weight, config.content_layers
    (10, {'relu4_2': 1.0})
    >>> ImageStyleConfig(size=-1)
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: ...
    """

    size: int | None = option(None, type=int, help="Long edge of the output in pixels.",
                              show=lambda v: "384 on the CPU, 512 on a GPU" if v is None else str(v))
    iterations: int = option(60, type=int, help="Iterations at the finest scale.")
    coarse_iterations: int = option(60, type=int, help="Iterations at each coarser scale.")
    optimizer: str = option("lbfgs", type=click.Choice(OPTIMIZERS), help="Optimiser.")
    lr: float | None = option(None, type=float, help="Step size.",
                              show=lambda v: "1 for L-BFGS, 0.02 for Adam" if v is None else f"{v:g}")
    content_weight: float = option(1.0, type=float, help="Weight of the content term.", group="Strength")
    style_weight: float = option(5.0, type=float, group="Strength",
                                 help="Weight of the style term (multiplied by 4.4 for --style-loss sw, so that it "
                                      "keeps the content about as gram does).")
    tv_weight: float = option(0.0, type=float, help="Weight of the total-variation (smoothness) term.",
                              group="Strength")
    style_blend: tuple[float, ...] | None = option(
        None, parse=lambda t: parse_floats(t, "--style-blend"), metavar="W1,W2,...", group="Strength",
        help="Weights of the style images, e.g. 0.7,0.3.", show=lambda v: "equal" if v is None else str(v))
    style_scale: float = option(1.0, type=float, help="Style image long edge relative to the output's.",
                                group="Strength")
    content_layers: Mapping[str, float] = option(
        default_factory=lambda: dict(DEFAULT_CONTENT_LAYERS), parse=parse_layers, show=format_layers,
        metavar="LAYER[:W],...", help="Content layers, comma-separated layer[:weight].", group="Strength")
    style_layers: Mapping[str, float] = option(
        default_factory=lambda: dict(DEFAULT_STYLE_LAYERS), parse=parse_layers, show=format_layers,
        metavar="LAYER[:W],...", help="Style layers, comma-separated layer[:weight].", group="Strength")
    style_loss: str = option("gram", type=click.Choice(STYLE_LOSS_NAMES), group="Strength",
                             help="Style statistics to match: Gram matrices, channel mean/std, Gaussian W2, "
                                  "sliced Wasserstein (sw) or channel histograms.")
    style_masks: tuple[str, ...] | None = option(
        None, parse=_parse_paths, flag="--style-mask", metavar="PATH", path=True, multiple=True,
        group="Input and output",
        help="Where a style goes (white: here, black: not here); once per style, in style order.",
        show=lambda v: "none" if v is None else ",".join(v))
    content_mask: str | None = option(None, metavar="PATH", path=True, group="Input and output",
                                      help="Where the content is kept (white: full weight, black: free).",
                                      show=lambda v: "none" if v is None else v)
    mask_resize: str = option("strict", type=click.Choice(MASK_RESIZE), group="Input and output",
                              help="strict: masks must have the content's aspect ratio (within 1%); stretch: fit any.")
    pooling: str = option("max", type=click.Choice(POOLING), help="Pooling of the network.")
    init: str = option("content", path=INITS, help="Start from the content, from noise, or from an image file.")
    scales: int = option(3, type=int, help="Coarse-to-fine levels (1 = single scale).")
    min_size: int = option(160, type=int, help="Long edge of the coarsest scale.")
    preserve_color: str = option("none", type=click.Choice(PRESERVE_COLOR), group="Colour",
                                 help="Keep the content's colours: transfer on luminance, or recolour the style.")
    weights: str = option("caffe", path=("caffe", "torchvision"),
                          help="Network weights: caffe, torchvision, or a state_dict path.")
    preprocessing: str | None = option(None, type=click.Choice(["caffe", "torchvision"]),
                                       help="Input preprocessing of a --weights PATH.",
                                       show=lambda v: "that of the named weights" if v is None else v)
    device: str = option("auto", metavar=DEVICE_METAVAR, group="Device",
                         help="Where to run: auto picks CUDA, then MPS, then the CPU.")
    seed: int = option(0, type=int, help="Random seed.")
    precision: str = option("auto", type=click.Choice(PRECISIONS), group="Quality and speed",
                            help="Convolution precision: auto = TF32 on CUDA, fp32 on the CPU; Grams stay fp32.")
    tile: int | str = option("auto", parse=parse_tile, group="Device",
                             help="auto (tile only when the image would not fit in memory), off, or a tile size "
                                  "in pixels: exact tiled optimisation for outputs of any size.")
    max_memory: float | None = option(None, type=float, group="Device",
                                      help="Memory budget in GB for tiling and the fit check.",
                                      show=lambda v: "80% of free memory" if v is None else f"{v:g}")
    compile: bool = option(False, is_flag=True, group="Quality and speed",
                           help="Compile the objective with torch.compile (CUDA graphs on CUDA): for long runs "
                                "on a GPU; each scale first waits for compilation.")

    def __post_init__(self) -> None:
        if self.size is not None:
            check_int("size", self.size, 1, MAX_SIZE)
        check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        check_int("coarse_iterations", self.coarse_iterations, 1, MAX_ITERATIONS)
        check_int("scales", self.scales, 1, 16)
        check_int("min_size", self.min_size, 1, MAX_SIZE)
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise ConfigError(f"{name.replace('_', '-')} must be a finite number >= 0, got {v!r}")
        if not (self.content_weight or self.style_weight or self.tv_weight):
            raise ConfigError("content, style and TV weights are all zero: there is nothing to optimise")
        check_float("style-scale", self.style_scale, 0.0, 16.0, low_open=True)
        object.__setattr__(self, "seed", fold_seed(self.seed, lo=TORCH_SEEDS[0], hi=TORCH_SEEDS[1]))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be max or avg, got {self.pooling!r}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise ConfigError(f"preserve-color must be one of {', '.join(PRESERVE_COLOR)}, got {self.preserve_color!r}")
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.tile not in ("auto", "off"):
            if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 16:
                raise ConfigError(f"tile must be auto, off or a size in pixels >= 16, got {self.tile!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be true or false, got {self.compile!r}")
        if self.max_memory is not None and not (self.max_memory > 0 and self.max_memory != float("inf")):
            raise ConfigError(f"max-memory must be a positive number of GB, got {self.max_memory!r}")
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, 1e6, low_open=True)
        for what, layers in (("content", self.content_layers), ("style", self.style_layers)):
            if not layers:
                raise ConfigError(f"at least one {what} layer is needed")
            for k, w in layers.items():
                if k not in LAYER_NAMES:
                    raise ConfigError(f"unknown {what} layer {k!r}; layers are named conv1_1 ... relu5_4 "
                                      "and pool1 ... pool5")
                if not float(w) >= 0 or float(w) == float("inf"):
                    raise ConfigError(f"{what} layer weight for {k} must be a finite number >= 0, got {w}")
        if self.size is not None and self.size < min_input_size(self.layers):
            raise ConfigError(f"size {self.size} px is too small for layers up to "
                              f"{max(self.layers, key=LAYER_NAMES.index)}: the minimum is "
                              f"{min_input_size(self.layers)} px")
        if self.style_blend is not None:
            if any(not float(b) >= 0 for b in self.style_blend) or sum(self.style_blend) <= 0:
                raise ConfigError(f"style-blend weights must be >= 0 and not all zero, got {self.style_blend}")
        if self.init not in INITS and not os.path.exists(self.init):
            raise ConfigError(f"init must be content, noise or an existing image file, got {self.init!r}")
        self._check_losses_and_masks()

    def _check_losses_and_masks(self) -> None:
        if self.style_loss not in STYLE_LOSS_NAMES:
            raise ConfigError(f"unknown style loss {self.style_loss!r}: choose {', '.join(STYLE_LOSS_NAMES)}")
        if self.mask_resize not in MASK_RESIZE:
            raise ConfigError(f"mask-resize must be one of {', '.join(MASK_RESIZE)}, got {self.mask_resize!r}")
        if self.style_masks is not None:
            masks = (self.style_masks,) if isinstance(self.style_masks, str) else tuple(self.style_masks)
            if not masks or not all(isinstance(m, str) and m for m in masks):
                raise ConfigError(f"style-mask must be image paths, got {self.style_masks!r}")
            object.__setattr__(self, "style_masks", masks)
        if self.content_mask is not None and not (isinstance(self.content_mask, str) and self.content_mask):
            raise ConfigError(f"content-mask must be an image path, got {self.content_mask!r}")

    @property
    def layers(self) -> list[str]:
        """Every layer the run needs, content layers first."""
        return list(dict.fromkeys([*self.content_layers, *self.style_layers]))

    def resolved_precision(self, device: torch.device) -> str:
        """``precision``, or the default for ``device`` (TF32 on CUDA, fp32 elsewhere)."""
        return self.precision if self.precision != "auto" else ("tf32" if device.type == "cuda" else "fp32")

    def resolved_size(self, device: torch.device) -> int:
        """``size``, or the default for ``device`` (512 on a GPU, 384 on the CPU)."""
        return self.size if self.size is not None else (512 if device.type == "cuda" else 384)

    def to_dict(self) -> dict:
        """The settings as plain JSON-ready data; :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["content_layers"] = dict(self.content_layers)
        d["style_layers"] = dict(self.style_layers)
        d["style_blend"] = list(self.style_blend) if self.style_blend is not None else None
        d["style_masks"] = list(self.style_masks) if self.style_masks is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping) -> ImageStyleConfig:
        """Rebuild a config from :meth:`to_dict`'s output (validated; unknown keys are an error)."""
        if not isinstance(data, Mapping):
            raise ConfigError("not an image style config")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown image option(s): {', '.join(sorted(map(str, unknown)))}")
        d = dict(data)
        if d.get("style_blend") is not None:
            d["style_blend"] = tuple(d["style_blend"])
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"not an image style config ({e})") from None
