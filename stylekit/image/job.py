"""The image Job: the run protocol of :mod:`stylekit._job` for one picture (``stylekit image``, batch, preview)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .._io import check_output_path
from .._job import Job, plot_path
from .._options import option
from ..errors import ConfigError, InputError
from .config import OUTPUT_FORMATS, ImageStyleConfig

__all__ = ["ImageJob", "ImageOutput", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "stylekit-image-checkpoint/1"


@dataclass(frozen=True)
class ImageOutput:
    """What an image job writes besides the picture's pixels.

    Examples
    --------
    >>> ImageOutput(bit_depth=16).bit_depth
    16
    """

    bit_depth: int = option(8, type=click.Choice(["8", "16"]), parse=int, group="Input and output",
                            help="Bits per channel; 16 for TIFF only.")
    save_every: int = option(0, type=int, group="Input and output",
                             help="Also save the current result every N iterations (OUTPUT_STEM.stepNNNNN).")
    plot: bool = option(False, is_flag=True, group="Input and output",
                        help="Also write OUTPUT_STEM.plot.png: the loss terms over the iterations.")

    def __post_init__(self) -> None:
        if self.bit_depth not in (8, 16):
            raise ConfigError(f"bit-depth must be 8 or 16, got {self.bit_depth!r}")
        if not isinstance(self.save_every, int) or self.save_every < 0:
            raise ConfigError(f"--save-every must be >= 0, got {self.save_every}")


def _sibling(out: Path, tag: str, suffix: str | None = None) -> Path:
    return out.with_name(f"{out.stem}.{tag}{suffix or out.suffix}")


class ImageJob(Job):
    """One stylized picture: ``content`` painted in the style of ``styles`` under an :class:`ImageStyleConfig`.

    ``options`` is an :class:`ImageOutput` (bit depth, snapshots, loss plot).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image.io import save_image
    >>> folder = Path(tempfile.mkdtemp())
    >>> photo = save_image(torch.rand(1, 3, 24, 32), folder / "photo.png")
    >>> painting = save_image(torch.rand(1, 3, 32, 32), folder / "painting.png")
    >>> from stylekit.image.config import ImageStyleConfig
    >>> job = ImageJob(photo, [painting], folder / "out.png", ImageStyleConfig(size=32, scales=1, iterations=1))
    >>> job.check()                             # every output it will write is checked before any work
    >>> job.status()[0]
    'new'
    >>> result = job.run()
    >>> job.status()[0], (folder / "out.png").exists()
    ('done', True)
    """

    medium = "image"
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, content, styles, output, config: ImageStyleConfig | None = None, *,
                 options: ImageOutput | None = None, **kw) -> None:
        super().__init__(content, styles, output, config or ImageStyleConfig(), **kw)
        self.options = options or ImageOutput()
        self.history: list[tuple[int, int, dict]] = []
        self._content_img = None
        self._style_imgs = None

    # --- planning ----------------------------------------------------------------------------------------

    def check_output(self) -> None:
        fmt = OUTPUT_FORMATS.get(self.output.suffix.lower())
        if fmt is None:
            raise ConfigError(f"{self.output}: unsupported output format {self.output.suffix or '(none)'}; "
                              "use .png, .jpg or .tif")
        if self.options.bit_depth == 16 and fmt != "TIFF":
            raise ConfigError(f"{self.output}: --bit-depth 16 needs a .tif output")

    def extra_inputs(self) -> list[Path]:
        paths = [Path(self.config.init)] if self.config.init not in ("content", "noise") else []
        paths += [Path(m) for m in self.config.style_masks or ()]
        return paths + ([Path(self.config.content_mask)] if self.config.content_mask else [])

    def extra_outputs(self) -> list[Path]:
        return [plot_path(self.output)] if self.options.plot else []

    def output_settings(self) -> dict:
        return {"bit_depth": self.options.bit_depth} if self.options.bit_depth != 8 else {}

    def check_state(self, state: dict) -> dict:
        """The optimiser state's structure, and its image against this run's bounds (one RGB image no larger
        than the config's size), before any work; the exact shapes are checked against the scale it resumes."""
        import torch
        x, best = state.get("x"), state.get("best")
        if not (torch.is_tensor(x) and torch.is_tensor(best) and isinstance(state.get("scale"), int)
                and isinstance(state.get("step"), int) and state["scale"] >= 0 and state["step"] >= 0):
            raise InputError(f"{self.resume}: damaged stylekit image checkpoint (optimiser state)")
        from .._device import resolve_device
        size = self.config.resolved_size(resolve_device(self.config.device))
        if x.dim() != 4 or tuple(x.shape[:2]) != (1, 3) or max(x.shape[-2:]) > size or best.shape != x.shape:
            raise InputError(f"{self.resume}: damaged stylekit image checkpoint (an image of shape "
                             f"{tuple(x.shape)}, not one RGB image of at most {size} px)")
        return state

    def steps_done(self, state: dict) -> int:
        return int(state["scale"]) * self.config.coarse_iterations + int(state["step"])

    def scale_shapes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of each scale the run goes through, coarse to fine: fewer than ``scales`` when
        the output size leaves no room for them above ``min_size``."""
        from .._device import resolve_device
        from .pipeline import _shapes
        size = self.config.resolved_size(resolve_device(self.config.device))
        h, w = self.load()[0].shape[-2:]
        s = size / max(h, w)        # the content at the output size, as the pipeline resizes it
        return _shapes(self.config, (max(1, round(h * s)), max(1, round(w * s))), size)

    def total_steps(self) -> int:
        n = len(self.scale_shapes())
        return self.config.coarse_iterations * (n - 1) + self.config.iterations

    def notes(self) -> list[str]:
        n, asked = len(self.scale_shapes()), self.config.scales
        if n >= asked:
            return []
        from .._device import resolve_device
        size = self.config.resolved_size(resolve_device(self.config.device))
        return [f"note: {n} of --scales {asked} will run: a {size} px output leaves no room for more above "
                f"--min-size {self.config.min_size} (lower --min-size, or raise --size)"]

    def describe_step(self, p) -> str:
        return f"scale {p.scale}/{p.n_scales} {p.image.shape[-1]}x{p.image.shape[-2]}"

    def describe_result(self, result) -> str:
        return f"{result.data.shape[-1]}x{result.data.shape[-2]}"

    # --- running -------------------------------------------------------------------------------------------

    def load(self):
        """Read content and styles now (once), so that a bad file fails before any long work."""
        if self._content_img is None:
            from .io import load_image
            from .masks import load_masks
            self._content_img = load_image(self.source)
            self._style_imgs = [load_image(s) for s in self.styles]
            load_masks(self.config, tuple(self._content_img.shape[-2:]), len(self.styles))   # checked now
        return self._content_img, self._style_imgs

    @classmethod
    def style_targets(cls, styles: Sequence, config: ImageStyleConfig, names: Sequence[str] | None = None):
        from .pipeline import style_targets
        return style_targets(list(styles), config=config, style_names=names)

    def estimate(self):
        """The estimated peak memory and time of this run (``--dry-run``)."""
        from .pipeline import estimate_image_run
        return estimate_image_run(tuple(self.load()[0].shape[-2:]), config=self.config)

    def stylize(self, *, callback: Callable | None, resume: dict | None, targets: Any):
        from .pipeline import stylize_image
        content, styles = self.load()
        return stylize_image(content, targets if targets is not None else styles, config=self.config,
                             callback=self._callback(callback), resume=resume,
                             style_names=[str(s) for s in self.styles])

    def _callback(self, callback: Callable | None) -> Callable:
        def on_step(p):
            self.history.append((p.scale, p.step, p.terms))
            if self.options.save_every and len(self.history) % self.options.save_every == 0:
                self._snapshot(p.image)
            return callback(p) if callback is not None else None
        return on_step

    def _snapshot(self, x) -> None:
        from .io import resize_long_edge, save_image
        from .._device import resolve_device
        from .pipeline import finish_image
        size = self.config.resolved_size(resolve_device(self.config.device))
        content = resize_long_edge(self.load()[0], size)
        path = _sibling(self.output, f"step{len(self.history):05d}")
        check_output_path(path, overwrite=self.overwrite, inputs=self.inputs)
        save_image(finish_image(x, content, self.config.preserve_color), path,
                   metadata=self.metadata(0.0, step=len(self.history)), overwrite=self.overwrite)

    def metadata(self, seconds: float, **extra) -> dict:
        from .._device import resolve_device
        meta = super().metadata(seconds, **extra)
        meta["device"] = str(resolve_device(self.config.device))
        if self._content_img is not None:     # the scales that ran, which a small size can make fewer
            meta["scales_run"] = [f"{w}x{h}" for h, w in self.scale_shapes()]
        if self.history and "interrupted_at" not in extra:
            meta.update(iterations_run=len(self.history), final_loss=sum(self.history[-1][2].values()))
        return meta

    def write(self, result, path: Path, metadata: dict, *, overwrite: bool) -> None:
        from .io import save_image
        save_image(result.data, path, metadata=metadata, overwrite=overwrite, bit_depth=self.options.bit_depth)
        if self.options.plot and self.history:
            _plot_losses(self.history, plot_path(self.output), overwrite=True)

    @classmethod
    def read_metadata(cls, path: Path) -> dict:
        from .io import read_metadata
        return read_metadata(path)


def _plot_losses(history: list[tuple[int, int, dict]], path: Path, overwrite: bool) -> None:
    """A PNG of the weighted loss terms over all iterations (:func:`loss_figure`)."""
    from .._io import atomic_write

    fig = loss_figure(history)
    import matplotlib.pyplot as plt
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    finally:
        plt.close(fig)


def loss_figure(history: list[tuple[int, int, dict]]):
    """The matplotlib figure of ``--plot``: each weighted loss term and their total over the iterations of all
    scales (dotted lines between scales), on integer iteration ticks.

    The y axis is logarithmic above the smallest non-zero value and linear below it (``symlog``), so a term
    that starts at 0 (the content term of a run that starts from the content) is drawn from its real value,
    not from wherever it first becomes positive.
    """
    import math

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    names = sorted({k for _, _, t in history for k in t})
    xs = list(range(1, len(history) + 1))
    for name in names:
        ax.plot(xs, [t.get(name, float("nan")) for _, _, t in history], label=name)
    ax.plot(xs, [sum(t.values()) for _, _, t in history], label="total", color="black", lw=1)
    for i in range(1, len(history)):
        if history[i][0] != history[i - 1][0]:
            ax.axvline(i + 0.5, color="gray", ls=":", lw=1)
    positive = [v for _, _, t in history for v in t.values() if v > 0]
    # linear below the power of ten under the smallest positive value: one decade of axis from 0 up to it
    ax.set_yscale("symlog", linthresh=10.0 ** math.floor(math.log10(min(positive))) if positive else 1.0)
    ax.set_ylim(bottom=0.0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration (all scales; dotted lines: next scale)")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
