"""Image style transfer end to end: the config, and :func:`stylize_image`, which the CLI and examples call.

file -> tensor (:mod:`stylekit.image`) -> features (:mod:`stylekit.features`) -> losses (:mod:`stylekit.losses`)
-> optimiser (:mod:`stylekit.optim`) -> tensor -> file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from . import image as im
from .errors import ConfigError
from .features import LAYER_NAMES, VGG19Features, min_input_size
from .losses import StyleTransferLoss
from .optim import OPTIMIZERS, OptimizationInterrupted, Progress, coarse_to_fine, pyramid_sizes

__all__ = ["ImageStyleConfig", "stylize_image", "estimate_image_run", "finish_image", "resolve_device",
           "parse_layers", "PRESERVE_COLOR", "INITS", "PRECISIONS"]

PRESERVE_COLOR = ("none", "luminance", "histogram")
INITS = ("content", "noise")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}


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
    device : ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed : seeds the noise initialisation; runs are deterministic on the CPU.
    precision : ``"auto"`` (TF32 convolutions on CUDA, fp32 on the CPU), ``"fp32"``, ``"tf32"`` (CUDA) or
        ``"bf16"`` (convolutions in bfloat16 under autocast). Gram matrices and losses are always fp32.
    tile : ``"auto"`` (tile only when the whole image would not fit the memory budget), ``"off"``, or a tile
        size in pixels: the objective is then evaluated exactly, tile by tile (:mod:`stylekit.tiling`).
    max_memory : memory budget in GB for ``tile="auto"`` and the fit check; default 80% of what is free.
    compile : run the objective (network, losses and their backward) through ``torch.compile``; on CUDA with
        CUDA graphs (``mode="reduce-overhead"``), which removes the per-kernel launch cost of short iterations.
        Each scale's first iteration waits for compilation (tens of seconds), so it pays only for long runs at
        a fixed size. Tiled scales stay uncompiled; on the CPU the compiled network cannot use the Winograd
        convolutions and is slower. If compilation fails, the run warns and goes on uncompiled.
    """

    size: int | None = None
    iterations: int = 60
    coarse_iterations: int = 60
    optimizer: str = "lbfgs"
    lr: float | None = None
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 0.0
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    content_layers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CONTENT_LAYERS))
    style_layers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    pooling: str = "max"
    init: str = "content"
    scales: int = 3
    min_size: int = 160
    preserve_color: str = "none"
    weights: str = "caffe"
    preprocessing: str | None = None
    device: str = "auto"
    seed: int = 0
    precision: str = "auto"
    tile: int | str = "auto"
    max_memory: float | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        def positive_int(name, v, lo=1):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {lo}, got {v!r}")

        if self.size is not None:
            positive_int("size", self.size)
        positive_int("iterations", self.iterations)
        positive_int("coarse_iterations", self.coarse_iterations)
        positive_int("scales", self.scales)
        positive_int("min_size", self.min_size)
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise ConfigError(f"{name.replace('_', '-')} must be a finite number >= 0, got {v!r}")
        if not self.style_scale > 0 or self.style_scale == float("inf"):
            raise ConfigError(f"style-scale must be a positive number, got {self.style_scale!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be max or avg, got {self.pooling!r}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise ConfigError(f"preserve-color must be one of {', '.join(PRESERVE_COLOR)}, got {self.preserve_color!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.tile not in ("auto", "off"):
            if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 16:
                raise ConfigError(f"tile must be auto, off or a size in pixels >= 16, got {self.tile!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be true or false, got {self.compile!r}")
        if self.max_memory is not None and not (self.max_memory > 0 and self.max_memory != float("inf")):
            raise ConfigError(f"max-memory must be a positive number of GB, got {self.max_memory!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
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

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.content_layers, *self.style_layers]))

    def resolved_size(self, device: torch.device) -> int:
        return self.size if self.size is not None else (512 if device.type == "cuda" else 384)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["content_layers"] = dict(self.content_layers)
        d["style_layers"] = dict(self.style_layers)
        return d


def parse_layers(text: str) -> dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` -> ``{"relu1_1": 1.0, "relu2_1": 0.5}`` (weight 1 when omitted)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, w = part.partition(":")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"bad layer weight in {part!r}; write layer or layer:weight") from None
    if not out:
        raise ConfigError(f"no layers in {text!r}")
    return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x if x.dim() == 4 else x[None]
        if t.dim() != 4 or t.shape[1] != 3:
            raise ConfigError(f"{what} tensor must be (1, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}")
        return t.float()
    return im.load_image(x)


@contextlib.contextmanager
def _tf32(enabled: bool):
    """TF32 for CUDA matmuls and convolutions inside the block (restored after)."""
    if not enabled:
        yield
        return
    mm, conv = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = mm, conv


class _Precision:
    """Calls a criterion in the run's precision: channels_last input on CUDA, bf16 autocast when asked."""

    def __init__(self, criterion, device: torch.device, bf16: bool) -> None:
        self.criterion, self.device, self.bf16 = criterion, device, bf16

    def __call__(self, x: torch.Tensor):
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.bf16:
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                return self.criterion(x)
        return self.criterion(x)


class _Compiled:
    """A criterion through ``torch.compile``, falling back to the eager one (with a warning) if compiling fails.

    On CUDA the mode is ``"reduce-overhead"``: inductor's kernels replayed as CUDA graphs for the forward and the
    backward pass. Their outputs live in the graphs' memory pool until the next call, which is safe here:
    :func:`stylekit.optim.optimize` reads the loss, the terms and the gradient before it evaluates again.
    """

    def __init__(self, criterion, device: torch.device) -> None:
        self.eager = criterion
        self.compiled = torch.compile(criterion, mode="reduce-overhead" if device.type == "cuda" else None,
                                      dynamic=False)
        self.state = "unchecked"

    def _check(self, x: torch.Tensor) -> None:
        # The backward graph may be compiled only at the first backward pass, outside this call, so both directions
        # are tried here once, where a failure can still fall back.
        try:
            probe = x.detach().requires_grad_(True)
            with torch.enable_grad():
                total, _ = self.compiled(probe)
                torch.autograd.grad(total, probe)
            self.state = "compiled"
        except Exception as e:  # a backend or tracing failure: the eager objective is the same function
            self.state = "eager"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {first}); continuing uncompiled",
                          RuntimeWarning, stacklevel=3)

    def __call__(self, x: torch.Tensor):
        if self.state == "unchecked":
            self._check(x)
        return self.compiled(x) if self.state == "compiled" else self.eager(x)


def _shapes(cfg: ImageStyleConfig, hw: tuple[int, int], size: int) -> list[tuple[int, int]]:
    need = min_input_size(cfg.layers)
    H, W = hw
    return [(max(need, round(H * s / size)), max(need, round(W * s / size)))
            for s in pyramid_sizes(size, scales=cfg.scales, min_edge=max(cfg.min_size, need))]


def _tiles(cfg: ImageStyleConfig, net, device: torch.device, shapes) -> list[int | None]:
    """The tile size of each scale (None: whole image); refuses, with the estimate, a run that cannot fit."""
    from .estimate import choose_tile, estimate_run, format_bytes, memory_budget
    budget = memory_budget(device, cfg.max_memory)
    kw = dict(layers=cfg.layers, content_layers=list(cfg.content_layers), optimizer=cfg.optimizer)
    out = []
    for hw in shapes:
        if cfg.tile == "off":
            est = estimate_run(net, device, [hw], [1], calibrate=False, **kw)
            if est.peak_bytes > budget:
                raise ConfigError(f"a {hw[1]}x{hw[0]} run needs about {format_bytes(est.peak_bytes)} (estimated), "
                                  f"more than the {format_bytes(budget)} available on {device}; "
                                  "allow tiling (--tile auto) or use a smaller --size")
            out.append(None)
        elif cfg.tile == "auto":
            out.append(choose_tile(net, device, hw, budget=budget, **kw))
        else:
            out.append(cfg.tile if cfg.tile < max(hw) else None)
    return out


def _check_size(cfg: ImageStyleConfig, size: int) -> None:
    need = min_input_size(cfg.layers)
    if size < need:
        raise ConfigError(f"size {size} px is too small for layers up to "
                          f"{max(cfg.layers, key=LAYER_NAMES.index)}: the minimum is {need} px")


def _network(cfg: ImageStyleConfig, device: torch.device) -> VGG19Features:
    net = VGG19Features(cfg.layers, weights=cfg.weights, pooling=cfg.pooling, preprocessing=cfg.preprocessing)
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net


def estimate_image_run(content, *, config: ImageStyleConfig | None = None, calibrate: bool = True, **options):
    """Predict the peak memory and time of :func:`stylize_image` with these settings, without running it.

    ``content`` is a path, a ``(1, 3, H, W)`` tensor or an ``(H, W)`` shape. Returns a
    :class:`stylekit.estimate.RunEstimate` (``.describe()`` gives the text ``stylekit image --dry-run`` prints).
    Raises :class:`ConfigError` with the estimate when the run cannot fit even in tiles.
    """
    from .estimate import estimate_run
    cfg = dataclasses.replace(config or ImageStyleConfig(), **options)
    device = resolve_device(cfg.device)
    size = cfg.resolved_size(device)
    _check_size(cfg, size)
    if isinstance(content, tuple):
        h, w = content
        s = size / max(h, w)
        hw = (round(h * s), round(w * s))
    else:
        hw = tuple(im.resize_long_edge(_as_tensor(content, "content"), size).shape[-2:])
    shapes = _shapes(cfg, hw, size)
    net = _network(cfg, device)
    tiles = _tiles(cfg, net, device, shapes)
    steps = [cfg.coarse_iterations] * (len(shapes) - 1) + [cfg.iterations]
    return estimate_run(net, device, shapes, steps, layers=cfg.layers, content_layers=list(cfg.content_layers),
                        optimizer=cfg.optimizer, tiles=tiles, calibrate=calibrate)


def finish_image(x: torch.Tensor, content: torch.Tensor, preserve_color: str = "none") -> torch.Tensor:
    """An iterate as an output image: resized to ``content``'s size, clamped to [0, 1], and, for
    ``preserve_color="luminance"``, given back the content's colours (the iterate is then a luminance image)."""
    x = im.resize(x.detach().float().cpu(), tuple(content.shape[-2:])).clamp(0, 1)
    if preserve_color == "luminance":
        yiq = im.rgb_to_yiq(content)
        y = im.rgb_to_yiq(x)[:, :1]
        x = im.yiq_to_rgb(torch.cat([y, yiq[:, 1:]], 1)).clamp(0, 1)
    return x


def stylize_image(content, styles, *, config: ImageStyleConfig | None = None,
                  callback: Callable[[Progress], bool | None] | None = None, style_cache: dict | None = None,
                  resume: dict | None = None, style_names: Sequence[str] | None = None,
                  **options) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles`` (Gatys et al. 2016).

    Parameters
    ----------
    content : path or ``(1, 3, H, W)`` tensor in [0, 1].
    styles : one path/tensor or a list of them (blended by ``style_blend``).
    config : an :class:`ImageStyleConfig`; keyword ``options`` override its fields.
    callback : receives a :class:`stylekit.optim.Progress` after every iteration; return True to stop.
    style_cache : a dict shared between calls with the same styles and settings (a batch job): the style
        features of each scale are computed once and reused. They depend only on the style images, the
        scale's long edge, the layers, weights and pooling, so one cache must not mix different styles.
        Ignored with ``preserve_color`` other than ``"none"`` (the style then depends on the content).
    resume : the ``state`` of an :class:`OptimizationInterrupted` from a run with the same inputs and config;
        the run continues where it stopped and ends with the result of an uninterrupted run.
    style_names : names of the style images for error messages (default: their paths, or "style image N").

    Returns
    -------
    ``(1, 3, H, W)`` float32 RGB in [0, 1] on the CPU, with long edge ``config.size``.

    Raises
    ------
    OptimizationInterrupted
        on Ctrl-C; its ``best`` is the best result so far, already at the output size.
    ConfigError
        for bad settings, and (with the estimate) when the run cannot fit in memory even in tiles.

    Notes
    -----
    Scales larger than the memory budget are optimised tile by tile with the exact tiled objective of
    :mod:`stylekit.tiling` (``tile="auto"``); the result is the same as an untiled run up to rounding.

    Example
    -------
    >>> out = stylize_image("photo.jpg", ["starry_night.jpg"], size=256, iterations=50)
    """
    from .tiling import TiledStyleTransferLoss, tiled_grams
    cfg = dataclasses.replace(config or ImageStyleConfig(), **options)
    device = resolve_device(cfg.device)
    size = cfg.resolved_size(device)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConfigError("at least one style image is needed")
    if cfg.style_blend is not None and len(cfg.style_blend) != len(style_list):
        raise ConfigError(f"style-blend has {len(cfg.style_blend)} weights for {len(style_list)} style images")
    _check_size(cfg, size)
    need = min_input_size(cfg.layers)

    content_full = im.resize_long_edge(_as_tensor(content, "content"), size)
    style_imgs = [_as_tensor(s, "style") for s in style_list]
    if cfg.preserve_color == "histogram":
        style_imgs = [im.match_color(s, content_full) for s in style_imgs]
    target_content = content_full
    if cfg.preserve_color == "luminance":
        style_imgs = [im.match_luminance(s, content_full) for s in style_imgs]
        target_content = im.rgb_to_yiq(content_full)[:, :1].clamp(0, 1).expand(-1, 3, -1, -1).contiguous()

    H, W = content_full.shape[-2:]
    shapes = _shapes(cfg, (H, W), size)
    names = list(style_names) if style_names is not None else [
        str(s) if not isinstance(s, torch.Tensor) else f"style image {i + 1}" for i, s in enumerate(style_list)]
    coarsest = max(need, round(max(shapes[0]) * cfg.style_scale))
    for name, s in zip(names, style_imgs):
        h, w = s.shape[-2:]
        short = round(min(h, w) * coarsest / max(h, w))
        if short < need:
            raise ConfigError(f"{name}: a {w}x{h} style image is too small for layers up to "
                              f"{max(cfg.layers, key=LAYER_NAMES.index)}: scaled to {coarsest} px long it is "
                              f"{short} px across, and they need {need} px")

    if cfg.init == "content":
        init = target_content
    elif cfg.init == "noise":
        g = torch.Generator().manual_seed(cfg.seed)
        init = torch.rand(target_content.shape, generator=g)
    else:
        init = im.load_image(cfg.init)
        init = im.resize(init, (H, W))
        if cfg.preserve_color == "luminance":
            init = im.rgb_to_yiq(init)[:, :1].clamp(0, 1).expand(-1, 3, -1, -1).contiguous()

    torch.manual_seed(cfg.seed)
    net = _network(cfg, device)
    tiles = dict(zip(shapes, _tiles(cfg, net, device, shapes)))
    precision = cfg.precision if cfg.precision != "auto" else ("tf32" if device.type == "cuda" else "fp32")

    def make_criterion(hw: tuple[int, int]):
        tile = tiles[tuple(hw)]
        args = dict(content_layers=cfg.content_layers, style_layers=cfg.style_layers,
                    content_weight=cfg.content_weight, style_weight=cfg.style_weight, tv_weight=cfg.tv_weight)
        loss = TiledStyleTransferLoss(net, tile=tile, **args) if tile else StyleTransferLoss(net, **args)
        loss.set_content(im.resize(target_content, hw).to(device))
        edge = max(need, round(max(hw) * cfg.style_scale))
        cacheable = style_cache is not None and cfg.preserve_color == "none"
        kind = "grams" if tile else "style"
        key = (kind, edge, cfg.weights, cfg.pooling, tuple(cfg.style_layers))
        if cacheable and key in style_cache:
            stored = [{k: v.to(device) for k, v in f.items()} for f in style_cache[key]]
        else:
            with torch.no_grad():
                if tile:
                    stored = [tiled_grams(net, im.resize_long_edge(s, edge).to(device), list(cfg.style_layers), tile)
                              for s in style_imgs]
                else:
                    stored = [{k: v for k, v in net(im.resize_long_edge(s, edge).to(device)).items()
                               if k in cfg.style_layers} for s in style_imgs]
            if cacheable:
                style_cache[key] = [{k: v.cpu() for k, v in f.items()} for f in stored]
        if tile:
            loss.set_style_grams(stored, blend=cfg.style_blend)
        else:
            loss.set_style_features(stored, blend=cfg.style_blend)
        crit = _Precision(loss, device, precision == "bf16")
        return _Compiled(crit, device) if cfg.compile and not tile else crit

    steps = [cfg.coarse_iterations] * (len(shapes) - 1) + [cfg.iterations]
    try:
        with _tf32(precision == "tf32" and device.type == "cuda"):
            out = coarse_to_fine(init.to(device), make_criterion, shapes, steps=steps, callback=callback,
                                 optimizer=cfg.optimizer, lr=cfg.lr, state=resume)
    except OptimizationInterrupted as e:
        e.best = finish_image(e.best, content_full, cfg.preserve_color)
        raise
    return finish_image(out, content_full, cfg.preserve_color)
