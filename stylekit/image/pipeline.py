"""Image style transfer end to end: :func:`stylize_image`, driven by one frozen :class:`ImageStyleConfig`.

file -> tensor (:mod:`.io`) -> colour handling (:mod:`.color`) -> features (:mod:`stylekit.features`) -> losses
(:mod:`stylekit.losses`, tiled by :mod:`.tiling` when memory is short) -> optimiser (:mod:`stylekit.optim`,
coarse to fine) -> colour restored -> :class:`ImageResult`. :func:`style_targets` computes the style side
once, for many calls (a batch, the web preview).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._device import resolve_device
from ..errors import ConfigError, StylizeInterrupted
from ..features import VGG19Features
from ..features.layers import LAYER_NAMES, min_input_size
from ..losses import StyleTransferLoss
from ..optim import OptimizationInterrupted, Progress, coarse_to_fine, pyramid_sizes
from .color import luminance_image, prepare_color, restore_color
from .config import ImageStyleConfig
from .io import load_image, resize, resize_long_edge
from .masks import load_masks

__all__ = ["ImageStyleConfig", "ImageResult", "StyleTargets", "stylize_image", "style_targets", "reuse_networks",
           "estimate_image_run", "finish_image"]


@dataclass(frozen=True)
class ImageResult:
    """What :func:`stylize_image` returns.

    Attributes
    ----------
    data : torch.Tensor
        ``(1, 3, H, W)`` float32 RGB in [0, 1] on the CPU, long edge ``config.size``.
    config : ImageStyleConfig
        The settings that made it (``size`` resolved).
    interrupted : bool
        True for the best result so far of a stopped run (carried by :class:`~stylekit.StylizeInterrupted`).

    Examples
    --------
    >>> import torch
    >>> result = stylize_image(torch.rand(1, 3, 24, 32), [torch.rand(1, 3, 32, 32)], size=32, scales=1, iterations=1)
    >>> result.data.shape, result.interrupted
    (torch.Size([1, 3, 24, 32]), False)
    """

    data: torch.Tensor = field(repr=False)
    config: ImageStyleConfig
    interrupted: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return tuple(self.data.shape[-2:])

    @property
    def image(self) -> torch.Tensor:
        """The same as :attr:`data`."""
        return self.data

    def settings(self) -> dict:
        """The settings as plain data, as written into the output file."""
        return self.config.to_dict()


@dataclass
class StyleTargets:
    """The style side of a run, computed once and shared between calls (see :func:`style_targets`).

    ``images`` are the style images, ``names`` their names in messages, and ``features`` the style features of
    each scale already computed, keyed by everything they depend on (kept on the CPU).

    Examples
    --------
    >>> import torch
    >>> targets = style_targets([torch.rand(1, 3, 32, 32)])
    >>> len(targets.images), targets.names
    (1, ['style image 1'])
    """

    images: list[torch.Tensor] = field(repr=False)
    names: list[str]
    features: dict = field(default_factory=dict, repr=False)


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x if x.dim() == 4 else x[None]
        if t.dim() != 4 or t.shape[1] != 3:
            raise ConfigError(f"{what} tensor must be (1, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}")
        return t.float()
    return load_image(x)


@contextlib.contextmanager
def _tf32(enabled: bool, device: torch.device | None = None):
    """On CUDA, TF32 (``enabled``) or full IEEE fp32 for matmuls and convolutions inside the block, restored
    after: cuDNN's own default for convolutions is TF32, so ``precision="fp32"`` must ask for IEEE."""
    if device is None or device.type != "cuda":
        yield
        return
    mm, conv = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = (
        "tf32" if enabled else "ieee")
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


# Whole-image tensors a run holds whatever the tiling: the content and its targets, the iterate, the best
# iterate, the gradient and the optimiser's state (at least a few more), at 4 bytes per value.
_WHOLE_IMAGE_COPIES = 8


def _check_whole_image_fits(cfg: ImageStyleConfig, device: torch.device, hw: tuple[int, int], size: int) -> None:
    """Refuse, before any allocation, an output so large that even its whole-image tensors (which tiling cannot
    split) exceed the memory budget."""
    from .estimate import format_bytes, memory_budget
    h, w = hw
    s = size / max(h, w)
    need = _WHOLE_IMAGE_COPIES * 3 * 4 * max(1, round(h * s)) * max(1, round(w * s))
    budget = memory_budget(device, cfg.max_memory)
    if need > budget:
        raise ConfigError(f"a {round(w * s)}x{round(h * s)} output needs at least {format_bytes(need)} for its "
                          f"whole-image tensors alone, more than the {format_bytes(budget)} available on {device}; "
                          "use a smaller --size")


#: The networks shared inside :func:`reuse_networks` (None outside it), keyed by what builds them.
_shared_networks: contextvars.ContextVar[dict | None] = contextvars.ContextVar("stylekit_networks", default=None)


@contextlib.contextmanager
def reuse_networks():
    """Inside the block, every run with the same network settings (layers, weights, pooling, preprocessing,
    device) shares one frozen network, built once: what video does for its frames. Outside it each call builds
    its own and frees it on return, so a library user's memory (the network, and the CPU backend's kept filter
    transforms) is not held after a call that did not ask for it.

    Examples
    --------
    >>> import torch
    >>> with reuse_networks():                 # the frames of a video: one network for every call
    ...     results = [stylize_image(torch.rand(1, 3, 24, 32), [torch.rand(1, 3, 32, 32)], size=32, scales=1,
    ...                              iterations=1) for _ in range(2)]
    >>> len(results)
    2
    """
    token = _shared_networks.set({})
    try:
        yield
    finally:
        _shared_networks.reset(token)


def _network(cfg: ImageStyleConfig, device: torch.device) -> VGG19Features:
    shared = _shared_networks.get()
    key = (tuple(cfg.layers), str(cfg.weights), cfg.pooling, cfg.preprocessing, str(device))
    if shared is not None and key in shared:
        return shared[key]
    net = VGG19Features(cfg.layers, weights=cfg.weights, pooling=cfg.pooling, preprocessing=cfg.preprocessing)
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    if shared is not None:
        shared[key] = net
    return net


def _targets(styles, names: Sequence[str] | None) -> StyleTargets:
    if isinstance(styles, StyleTargets):
        return styles
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConfigError("at least one style image is needed")
    names = list(names) if names is not None else [
        str(s) if not isinstance(s, torch.Tensor) else f"style image {i + 1}" for i, s in enumerate(style_list)]
    return StyleTargets([_as_tensor(s, "style") for s in style_list], names)


def _check_styles(cfg: ImageStyleConfig, targets: StyleTargets, coarsest_edge: int) -> None:
    """Every style image, at the coarsest scale's size, must be large enough for the deepest layer."""
    need = min_input_size(cfg.layers)
    if cfg.style_blend is not None and len(cfg.style_blend) != len(targets.images):
        raise ConfigError(f"style-blend has {len(cfg.style_blend)} weights for {len(targets.images)} style images")
    coarsest = max(need, round(coarsest_edge * cfg.style_scale))
    for name, s in zip(targets.names, targets.images):
        h, w = s.shape[-2:]
        short = round(min(h, w) * coarsest / max(h, w))
        if short < need:
            raise ConfigError(f"{name}: a {w}x{h} style image is too small for layers up to "
                              f"{max(cfg.layers, key=LAYER_NAMES.index)}: scaled to {coarsest} px long it is "
                              f"{short} px across, and they need {need} px")


def _style_features(net, cfg: ImageStyleConfig, targets: StyleTargets, images: list[torch.Tensor], hw,
                    tile: int | None, device: torch.device, shared: bool) -> list[dict]:
    """The style features (or, for a tiled scale, the Gram matrices) of one scale, from ``targets.features``
    when they were computed before with the same settings (``shared``: the images are the targets' own)."""
    from .tiling import tiled_grams, tiled_moments
    edge = max(min_input_size(cfg.layers), round(max(hw) * cfg.style_scale))
    kind = ("grams" if cfg.style_loss == "gram" else "moments") if tile else "style"
    key = (kind, edge, str(cfg.weights), cfg.preprocessing, cfg.pooling, tuple(cfg.style_layers), tile)
    if shared and key in targets.features:
        return [{k: _to(v, device) for k, v in f.items()} for f in targets.features[key]]
    with torch.no_grad():
        if kind == "grams":
            stored = [tiled_grams(net, resize_long_edge(s, edge).to(device), list(cfg.style_layers), tile)
                      for s in images]
        elif kind == "moments":
            stored = [tiled_moments(net, resize_long_edge(s, edge).to(device), list(cfg.style_layers), tile)
                      for s in images]
        else:
            stored = [{k: v for k, v in net(resize_long_edge(s, edge).to(device)).items() if k in cfg.style_layers}
                      for s in images]
    if shared:
        targets.features[key] = [{k: _to(v, "cpu") for k, v in f.items()} for f in stored]
    return stored


def _to(v, device):
    """A stored style statistic (a tensor, or a ``(mean, second moment)`` pair) on ``device``."""
    return tuple(x.to(device) for x in v) if isinstance(v, tuple) else v.to(device)


def style_targets(styles, *, config: ImageStyleConfig | None = None, style_names: Sequence[str] | None = None,
                  **options) -> StyleTargets:
    """Read the style images and compute their features at every scale of a run with these settings.

    Pass the result to :func:`stylize_image` in place of the styles: every call with the same style-side
    settings (size, scales, layers, weights, pooling, style scale) then reuses the features instead of
    computing them again, which is what a batch or the web preview does. Other settings compute what they
    need and keep it in the targets too. With ``preserve_color`` other than ``"none"`` the styles depend on
    the content and nothing is reused.

    Examples
    --------
    >>> import torch
    >>> targets = style_targets([torch.rand(1, 3, 32, 32)])      # read (and extracted) once ...
    >>> results = [stylize_image(torch.rand(1, 3, 24, 32), targets, size=32, scales=1, iterations=1) for _ in range(2)]
    >>> len(results)                                             # ... for several contents
    2
    """
    cfg = dataclasses.replace(config or ImageStyleConfig(), **options)
    device = resolve_device(cfg.device)
    size = cfg.resolved_size(device)
    _check_size(cfg, size)
    targets = _targets(styles, style_names)
    need = min_input_size(cfg.layers)
    edges = pyramid_sizes(size, scales=cfg.scales, min_edge=max(cfg.min_size, need))
    _check_styles(cfg, targets, edges[0])
    if cfg.preserve_color == "none":
        net = _network(cfg, device)
        for edge in edges:
            _style_features(net, cfg, targets, targets.images, (edge, edge), None, device, shared=True)
    return targets


def estimate_image_run(content, *, config: ImageStyleConfig | None = None, calibrate: bool = True, **options):
    """Predict the peak memory and time of :func:`stylize_image` with these settings, without running it.

    ``content`` is a path, a ``(1, 3, H, W)`` tensor or an ``(H, W)`` shape. Returns a
    :class:`stylekit.image.estimate.RunEstimate` (``.describe()`` gives the text ``stylekit image --dry-run`` prints).
    Raises :class:`ConfigError` with the estimate when the run cannot fit even in tiles.

    Examples
    --------
    >>> estimate = estimate_image_run((768, 1024), size=1024, device="cpu", calibrate=False)
    >>> estimate.peak_bytes > 0, len(estimate.shapes)
    (True, 3)
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
        hw = tuple(resize_long_edge(_as_tensor(content, "content"), size).shape[-2:])
    shapes = _shapes(cfg, hw, size)
    net = _network(cfg, device)
    tiles = _tiles(cfg, net, device, shapes)
    steps = [cfg.coarse_iterations] * (len(shapes) - 1) + [cfg.iterations]
    return estimate_run(net, device, shapes, steps, layers=cfg.layers, content_layers=list(cfg.content_layers),
                        optimizer=cfg.optimizer, tiles=tiles, calibrate=calibrate)


def _is_tensor_mask(v) -> bool:
    return isinstance(v, torch.Tensor) or (isinstance(v, (list, tuple)) and any(isinstance(m, torch.Tensor) for m in v))


def finish_image(x: torch.Tensor, content: torch.Tensor, preserve_color: str = "none") -> torch.Tensor:
    """An iterate as an output image: resized to ``content``'s size, clamped to [0, 1], and given the content's
    colours back where ``preserve_color`` asks for it (:func:`stylekit.image.color.restore_color`).

    Examples
    --------
    >>> import torch
    >>> out = finish_image(torch.full((1, 3, 12, 16), 1.5), torch.rand(1, 3, 24, 32))
    >>> out.shape, float(out.max())                               # the content's size, clamped to [0, 1]
    (torch.Size([1, 3, 24, 32]), 1.0)
    """
    x = resize(x.detach().float().cpu(), tuple(content.shape[-2:])).clamp(0, 1)
    return restore_color(x, content, preserve_color)


def _init(cfg: ImageStyleConfig, target_content: torch.Tensor) -> torch.Tensor:
    """The starting image: the content target, seeded noise, or an image file at the content's size."""
    if cfg.init == "content":
        return target_content
    if cfg.init == "noise":
        g = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(target_content.shape, generator=g)
    init = resize(load_image(cfg.init), tuple(target_content.shape[-2:]))
    return luminance_image(init) if cfg.preserve_color == "luminance" else init


#: Each style loss's term is multiplied by this, so that one ``style_weight`` gives a comparable balance of style
#: and content for every loss. Gram is the reference; sw's factor was chosen with ``benchmarks/bench_image.py
#: style-losses`` (docs/benchmarks.md); the others are not calibrated yet (1).
STYLE_LOSS_SCALE = {"gram": 1.0, "mean-std": 1.0, "w2": 1.0, "sw": 4.4, "hist": 1.0}


#: ``stylize_image`` gives the sliced-Wasserstein loss this many directions per channel of a layer (1.5 x 64 =
#: 96 at relu1_1 ... 768 at relu5_1) rather than the paper's one per channel: each step then sees more of the
#: distribution, which measurably ends closer to the painting's at no cost in content, for about a tenth more
#: time per iteration (docs/benchmarks.md, "Style losses side by side").
SW_PROJECTION_RATIO = 1.5


#: With L-BFGS, the sliced-Wasserstein directions are held for this many steps before the next set is drawn.
#: L-BFGS builds its curvature model from the gradients of consecutive steps, which is only consistent while
#: the objective (the directions) stays the same; drawing at every step, as Heitz et al. do with their
#: optimiser, leaves L-BFGS a different objective at each step and a noisier curvature model. Holding them
#: for a stretch of steps converges closer to the style's distribution, measured on directions the loss never
#: used (docs/benchmarks.md). Adam has no such model and draws at every step.
SW_LBFGS_HOLD = 30


class _Redraw:
    """Calls a criterion after drawing the sliced-Wasserstein directions of this evaluation.

    The directions are a function of the run's seed, the scale and the step only (one set per ``period``
    steps), so a run is repeatable and a resumed run (which starts counting at the step it stopped at) draws
    what the uninterrupted run drew. It wraps a compiled criterion from outside, so compilation's trial call
    draws nothing.
    """

    def __init__(self, criterion, style, scale: int, step: int, period: int = 1) -> None:
        self.criterion, self.style, self.scale, self.step, self.period = criterion, style, scale, step, period
        style.auto_redraw = False

    def __call__(self, x: torch.Tensor):
        # 1_000_003 is odd: consecutive scales start at different sets of the loss's bank
        self.style.redraw(self.scale * 1_000_003 + self.step // self.period)
        self.step += 1
        return self.criterion(x)


def _scale_masks(masks: tuple, hw: tuple[int, int], device: torch.device) -> tuple:
    from ..losses.functional import resize_mask
    return tuple(None if m is None else resize_mask(m, hw).to(device) for m in masks)


def _check_tiling(cfg: ImageStyleConfig, tiles: dict) -> None:
    if cfg.style_loss in ("sw", "hist") and any(tiles.values()):
        raise ConfigError(f"--style-loss {cfg.style_loss} cannot be tiled exactly, and this run needs tiles: use a "
                          "smaller --size, more --max-memory, or --style-loss gram, mean-std or w2")


def _criteria(cfg: ImageStyleConfig, net, device: torch.device, target_content: torch.Tensor,
              targets: StyleTargets, styles: list[torch.Tensor], tiles: dict, keep: bool, *,
              masks: tuple = (None, None), shapes: Sequence = (), resume: dict | None = None) -> Callable:
    """``make_criterion(hw)`` for :func:`stylekit.optim.coarse_to_fine`: the loss of one scale. With ``keep``
    the style features are read from and kept in ``targets`` (the caller's :class:`StyleTargets`). ``masks``
    are the style and content masks at the content's size (or None)."""
    from .tiling import TiledStyleTransferLoss
    precision = cfg.resolved_precision(device)
    shared = keep and cfg.preserve_color == "none"
    extra = {"seed": cfg.seed, "projection_ratio": SW_PROJECTION_RATIO} if cfg.style_loss == "sw" else {}

    def make_criterion(hw: tuple[int, int]):
        tile = tiles[tuple(hw)]
        style_masks, content_mask = _scale_masks(masks, hw, device)
        args = dict(content_layers=cfg.content_layers, style_layers=cfg.style_layers,
                    content_weight=cfg.content_weight, tv_weight=cfg.tv_weight, style_loss=cfg.style_loss,
                    style_weight=cfg.style_weight * STYLE_LOSS_SCALE[cfg.style_loss], style_options=extra)
        loss = TiledStyleTransferLoss(net, tile=tile, **args) if tile else StyleTransferLoss(net, **args)
        loss.set_content(resize(target_content, hw).to(device), mask=content_mask)
        stored = _style_features(net, cfg, targets, styles, hw, tile, device, shared)
        if tile and cfg.style_loss == "gram":
            loss.set_style_grams(stored, blend=cfg.style_blend, masks=style_masks)
        else:
            loss.set_style_features(stored, blend=cfg.style_blend, masks=style_masks)
        crit = _Precision(loss, device, precision == "bf16")
        crit = _Compiled(crit, device) if cfg.compile and not tile else crit
        if cfg.style_loss == "sw" and loss.style is not None:
            scale = list(shapes).index(tuple(hw))
            start = int(resume["step"]) if resume is not None and int(resume["scale"]) == scale else 0
            crit = _Redraw(crit, loss.style, scale, start, SW_LBFGS_HOLD if cfg.optimizer == "lbfgs" else 1)
        return crit

    return make_criterion


def _wrapped(make_criterion: Callable, wrap: Callable, hw: tuple[int, int]):
    """``make_criterion(hw)`` passed through ``wrap`` (see ``wrap_criterion`` of :func:`stylize_image`)."""
    return wrap(make_criterion(hw), hw)


def stylize_image(content, styles, *, config: ImageStyleConfig | None = None,
                  callback: Callable[[Progress], bool | None] | None = None, resume: dict | None = None,
                  style_names: Sequence[str] | None = None, init_image: torch.Tensor | None = None,
                  wrap_criterion: Callable | None = None, **options) -> ImageResult:
    """Paint ``content`` in the style of ``styles`` (Gatys et al. 2016).

    Parameters
    ----------
    content : path or ``(1, 3, H, W)`` tensor in [0, 1].
    styles : one path/tensor, a list of them (blended by ``style_blend``), or the :class:`StyleTargets` of
        :func:`style_targets`, whose features are then reused.
    config : an :class:`ImageStyleConfig`; keyword ``options`` override its fields.
    callback : receives a :class:`stylekit.optim.Progress` after every iteration; return True to stop.
    resume : the ``state`` of a :class:`~stylekit.StylizeInterrupted` from a run with the same inputs and
        config; the run continues where it stopped and ends with the result of an uninterrupted run.
    style_names : names of the style images for error messages (default: their paths, or "style image N").
    style_masks, content_mask : config fields (image paths) or, for library users, tensors ``(H, W)`` in
        [0, 1] (one style mask per style); see :mod:`stylekit.image.masks`.
    init_image : a ``(1, 3, H, W)`` starting image in [0, 1] (resized to the content's size); overrides
        ``config.init`` (video starts each frame from the previous result, warped).
    wrap_criterion : ``(criterion, (h, w)) -> criterion`` applied to each scale's loss, to add a term
        (video's temporal term, :class:`stylekit.video.temporal.TemporalTerm`).

    Returns
    -------
    ImageResult
        ``.data`` is ``(1, 3, H, W)`` float32 RGB in [0, 1] on the CPU, with long edge ``config.size``.

    Raises
    ------
    StylizeInterrupted
        on Ctrl-C; its ``result`` is the best result so far, already at the output size.
    ConfigError
        for bad settings, and (with the estimate) when the run cannot fit in memory even in tiles.

    Notes
    -----
    Scales larger than the memory budget are optimised tile by tile with the exact tiled objective of
    :mod:`stylekit.image.tiling` (``tile="auto"``); the result is the same as an untiled run up to rounding.

    Example
    -------
    Files (``stylize_image("photo.jpg", ["starry_night.jpg"], size=256)``) or tensors:

    >>> import torch
    >>> photo, painting = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 40, 40)
    >>> result = stylize_image(photo, [painting], size=32, scales=1, iterations=2)
    >>> result.data.shape, result.config.size
    (torch.Size([1, 3, 24, 32]), 32)
    """
    tensors = {k: options.pop(k) for k in ("style_masks", "content_mask") if _is_tensor_mask(options.get(k))}
    cfg = dataclasses.replace(config or ImageStyleConfig(), **options)
    device = resolve_device(cfg.device)
    size = cfg.resolved_size(device)
    cfg = dataclasses.replace(cfg, size=size)
    _check_size(cfg, size)
    targets = _targets(styles, style_names)
    content_in = _as_tensor(content, "content")
    _check_whole_image_fits(cfg, device, tuple(content_in.shape[-2:]), size)
    content_full = resize_long_edge(content_in, size)
    masks = load_masks(cfg, tuple(content_full.shape[-2:]), len(targets.images), shape=tuple(content_in.shape[-2:]),
                       **tensors)
    target_content, style_imgs = prepare_color(content_full, targets.images, cfg.preserve_color)
    shapes = _shapes(cfg, tuple(content_full.shape[-2:]), size)
    _check_styles(cfg, targets, max(shapes[0]))
    init = _init(cfg, target_content) if init_image is None else \
        resize(_as_tensor(init_image, "init"), tuple(target_content.shape[-2:]))

    torch.manual_seed(cfg.seed)
    net = _network(cfg, device)
    tiles = dict(zip(shapes, _tiles(cfg, net, device, shapes)))
    _check_tiling(cfg, tiles)
    make_criterion = _criteria(cfg, net, device, target_content, targets, style_imgs, tiles,
                               keep=isinstance(styles, StyleTargets), masks=masks, shapes=shapes, resume=resume)
    if wrap_criterion is not None:  # an extra term on every scale (video's temporal term)
        make_criterion = functools.partial(_wrapped, make_criterion, wrap_criterion)
    steps = [cfg.coarse_iterations] * (len(shapes) - 1) + [cfg.iterations]
    precision = cfg.resolved_precision(device)
    try:
        with _tf32(precision == "tf32", device):
            out = coarse_to_fine(init.to(device), make_criterion, shapes, steps=steps, callback=callback,
                                 optimizer=cfg.optimizer, lr=cfg.lr, state=resume)
    except OptimizationInterrupted as e:
        best = ImageResult(finish_image(e.best, content_full, cfg.preserve_color), cfg, interrupted=True)
        raise StylizeInterrupted(best, e.state) from None
    return ImageResult(finish_image(out, content_full, cfg.preserve_color), cfg)
