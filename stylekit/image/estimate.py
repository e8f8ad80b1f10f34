"""Memory and time estimates for an image run, before it starts (``stylekit image --dry-run``), and the choice
of tile size that keeps a run inside the memory it has.

Memory is modelled from what autograd keeps for the backward pass: the bytes saved per input pixel are read
off one small forward pass with :func:`torch.autograd.graph.saved_tensors_hooks` (so the model follows
whatever the installed torch actually stores), then scaled to the run's size; to that come the transient
gradients, the optimiser's vectors (the L-BFGS history is bounded by :func:`stylekit.optim.auto_history`),
the content targets and the weights. Time is the convolution work of one iteration (counted from the layer
shapes) divided by the speed of a short calibration pass on the same device.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .._allocator import kept_bytes
from ..errors import ConfigError
from ..features.layers import LAYER_NAMES
from ..optim import auto_history
from .tiling import layer_stride, tile_grid

__all__ = ["RunEstimate", "conv_flops", "saved_bytes_per_pixel", "estimate_run", "available_memory",
           "memory_budget", "choose_tile", "format_bytes"]

_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
TILE_CHOICES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128)


def format_bytes(n: float) -> str:
    """A byte count for people: GB or MB with two decimals, else kB.

    Examples
    --------
    >>> format_bytes(3 * 1024 ** 3), format_bytes(5 * 1024 ** 2), format_bytes(2048)
    ('3.00 GB', '5.00 MB', '2 kB')
    """
    for unit, size in (("GB", 1024 ** 3), ("MB", 1024 ** 2)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n / 1024:.0f} kB"


def conv_flops(height: int, width: int, layers: Sequence[str], *, backward: bool = True) -> float:
    """Floating-point operations of the convolutions up to the deepest layer for one ``height x width``
    image: the forward pass, plus the backward pass to the input when ``backward`` (no weight gradients).

    Examples
    --------
    >>> conv_flops(64, 64, ["relu1_1"], backward=False) == 2 * 9 * 3 * 64 * 64 * 64    # conv1_1 alone
    True
    """
    deepest = LAYER_NAMES.index(max(layers, key=LAYER_NAMES.index))
    h, w, c_in, total = height, width, 3, 0.0
    for i, name in enumerate(LAYER_NAMES[: deepest + 1]):
        if name.startswith("conv"):
            c_out = _CHANNELS[name[4]]
            f = 2.0 * 9 * c_in * c_out * h * w
            total += f * (2 if backward and i > 0 else 1)   # conv1_1's input gradient is cheap (3 channels)
            c_in = c_out
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    return total


_SAVED_CACHE: dict = {}


def saved_bytes_per_pixel(extractor: torch.nn.Module, device: torch.device, *, side: int = 128) -> float:
    """Bytes autograd keeps for the backward pass per input pixel, measured on one ``side x side`` pass.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> saved_bytes_per_pixel(VGG19Features(["relu1_1"]), torch.device("cpu"), side=32) > 0
    True
    """
    # The bytes depend on the architecture, not the weights' values: one measurement per process per set-up.
    key = (type(extractor).__name__, tuple(getattr(extractor, "layers", ())), getattr(extractor, "pooling", None),
           str(device), side) if hasattr(extractor, "layers") else (id(extractor), str(device), side)
    if key in _SAVED_CACHE:
        return _SAVED_CACHE[key]
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            ptr = t.untyped_storage().data_ptr()
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return t

    x = torch.rand(1, 3, side, side, device=device, requires_grad=True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        feats = extractor(x)
        del feats
    per_px = sum(seen.values()) / (side * side)
    _SAVED_CACHE[key] = per_px
    return per_px


def available_memory(device: torch.device) -> int:
    """Free memory on ``device`` in bytes (CUDA: free device memory; CPU: the kernel's MemAvailable).

    Examples
    --------
    >>> import torch
    >>> available_memory(torch.device("cpu")) > 0
    True
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


def memory_budget(device: torch.device, max_memory_gb: float | None = None) -> float:
    """Bytes a run may use: ``max_memory_gb`` when given, else 80% of the free memory; on the CPU plus what the
    process holds already, since the CPU estimates count it.

    Examples
    --------
    >>> import torch
    >>> memory_budget(torch.device("cpu"), 2.0) == 2 * 1024 ** 3
    True
    """
    if max_memory_gb:
        return max_memory_gb * 1024 ** 3
    return 0.8 * available_memory(device) + (process_rss() if device.type == "cpu" else 0)


@dataclass
class RunEstimate:
    """What :func:`estimate_run` predicts for one run.

    Examples
    --------
    >>> from stylekit.image.pipeline import estimate_image_run
    >>> estimate = estimate_image_run((768, 1024), size=1024, device="cpu", calibrate=False)
    >>> isinstance(estimate, RunEstimate), "GB" in estimate.describe() or "MB" in estimate.describe()
    (True, True)
    """

    device: str
    peak_bytes: float
    seconds: float | None
    tiles: list[int | None]                       # tile size per scale (None: whole image)
    shapes: list[tuple[int, int]]
    parts: dict[str, float] = field(default_factory=dict)   # peak_bytes split by what uses it

    def describe(self) -> str:
        lines = [f"device: {self.device}",
                 f"scales: {', '.join(f'{w}x{h}' + (f' (tiles of {t} px)' if t else '') for (h, w), t in zip(self.shapes, self.tiles))}",
                 f"estimated peak memory: {format_bytes(self.peak_bytes)} "
                 f"({', '.join(f'{k} {format_bytes(v)}' for k, v in self.parts.items())})"]
        if self.seconds is not None:
            lines.append(f"estimated time: {self.seconds:.0f} s (from a calibration pass on this device)")
        return "\n".join(lines)


def _memory(extractor, device, hw, tile, layers, content_layers, optimizer, per_px) -> dict[str, float]:
    h, w = hw
    n = 3 * h * w
    if tile:
        grid = tile_grid(h, w, tile, layers=layers)
        region_hw = max(((t.region[1] - t.region[0], t.region[3] - t.region[2]) for t, _, _ in grid),
                        key=lambda s: s[0] * s[1])
    else:
        region_hw = (h, w)
    region = region_hw[0] * region_hw[1]
    activations = per_px * region
    transient = 3 * 4 * 64 * region                   # conv1 block gradients during the backward pass
    vectors = (2 * auto_history(n) + 6) * n * 4 if optimizer == "lbfgs" else 6 * n * 4
    targets = sum(4 * _CHANNELS[k[4]] * (h // layer_stride(k)) * (w // layer_stride(k)) for k in content_layers)
    parts = {"activations": activations + transient, "optimiser": vectors, "targets": targets}
    if device.type == "cpu":
        parts["process now (torch, weights)"] = process_rss()
        if hasattr(extractor, "transform_bytes"):
            parts["filter transforms"] = extractor.transform_bytes(device)
            parts["convolution workspace"] = extractor.workspace_bytes(*region_hw, device)
        if kept_bytes():
            # what glibc may keep is at most what a pass frees: about one set of activations
            parts["freed memory the allocator keeps"] = min(kept_bytes(), parts["activations"])
    else:
        parts["weights"] = sum(b.numel() * b.element_size() for b in extractor.buffers())
    return parts


def process_rss() -> float:
    """Resident memory of this process now (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def estimate_run(extractor: torch.nn.Module, device: torch.device, shapes: Sequence[tuple[int, int]],
                 steps: Sequence[int], *, layers: Sequence[str], content_layers: Sequence[str],
                 optimizer: str = "lbfgs", tiles: Sequence[int | None] | None = None,
                 calibrate: bool = True) -> RunEstimate:
    """Predict peak memory (and, with ``calibrate``, time) of a coarse-to-fine run over ``shapes``.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> net = VGG19Features(["relu1_1", "relu2_1"])
    >>> e = estimate_run(net, torch.device("cpu"), [(64, 64), (128, 128)], [10, 10], layers=["relu1_1", "relu2_1"],
    ...                  content_layers=["relu2_1"], optimizer="lbfgs", calibrate=False)
    >>> e.shapes, e.peak_bytes > 0
    ([(64, 64), (128, 128)], True)
    """
    tiles = list(tiles) if tiles is not None else [None] * len(shapes)
    per_px = saved_bytes_per_pixel(extractor, device)
    worst: dict[str, float] = {}
    for hw, tile in zip(shapes, tiles):
        parts = _memory(extractor, device, hw, tile, layers, content_layers, optimizer, per_px)
        if sum(parts.values()) > sum(worst.values()):
            worst = parts
    seconds = None
    if calibrate:
        side = 192
        x = torch.rand(1, 3, side, side, device=device)

        def once():
            y = x.clone().requires_grad_(True)
            feats = extractor(y)
            sum(f.float().square().mean() for f in feats.values()).backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        once()
        t = time.perf_counter()
        once()
        rate = conv_flops(side, side, layers) / (time.perf_counter() - t)
        seconds = 0.0
        for (h, w), tile, n in zip(shapes, tiles, steps):
            if tile:
                work = sum(conv_flops(t.region[1] - t.region[0], t.region[3] - t.region[2], layers) * 1.5
                           for t, _, _ in tile_grid(h, w, tile, layers=layers))
            else:
                work = conv_flops(h, w, layers)
            seconds += n * work / rate
    return RunEstimate(device=str(device), peak_bytes=sum(worst.values()), seconds=seconds, tiles=tiles,
                       shapes=list(shapes), parts=worst)


def choose_tile(extractor: torch.nn.Module, device: torch.device, hw: tuple[int, int], *, layers: Sequence[str],
                content_layers: Sequence[str], optimizer: str, budget: float) -> int | None:
    """``None`` when the whole image fits ``budget`` bytes, else the largest tile size that does (the
    estimate includes what the process holds already on the CPU).

    Raises :class:`ConfigError` with the estimate when not even the smallest tile fits.

    Examples
    --------
    >>> import torch
    >>> from stylekit.features import VGG19Features
    >>> net = VGG19Features(["relu1_1", "relu2_1"])
    >>> choose_tile(net, torch.device("cpu"), (256, 256), layers=["relu1_1", "relu2_1"], content_layers=["relu2_1"],
    ...             optimizer="lbfgs", budget=64 * 1024 ** 3) is None          # fits whole: no tiles
    True
    """
    per_px = saved_bytes_per_pixel(extractor, device)
    whole = sum(_memory(extractor, device, hw, None, layers, content_layers, optimizer, per_px).values())
    if whole <= budget:
        return None
    floor = None
    for tile in TILE_CHOICES:
        if tile >= max(hw):
            continue
        need = sum(_memory(extractor, device, hw, tile, layers, content_layers, optimizer, per_px).values())
        floor = need
        if need <= budget:
            return tile
    h, w = hw
    raise ConfigError(f"a {w}x{h} image needs about {format_bytes(floor or whole)} even in tiles "
                      f"(estimated), more than the {format_bytes(budget)} available on {device}; "
                      "use a smaller --size or a machine with more memory")
