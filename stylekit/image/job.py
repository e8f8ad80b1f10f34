"""The image Job: the run protocol of :mod:`stylekit._job` for one picture (``stylekit image``, batch, preview)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .._io import check_output_path
from .._job import Job
from .._options import option
from ..errors import ConfigError, InputError
from .config import OUTPUT_FORMATS, ImageStyleConfig

__all__ = ["ImageJob", "ImageOutput", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "stylekit-image-checkpoint/1"


@dataclass(frozen=True)
class ImageOutput:
    """What an image job writes besides the picture's pixels."""

    bit_depth: int = option(8, type=click.Choice(["8", "16"]), parse=int, group="Output",
                            help="Bits per channel; 16 for TIFF only.")
    save_every: int = option(0, type=int, group="Output",
                             help="Also save the current result every N iterations (OUTPUT_STEM.stepNNNNN).")
    plot: bool = option(False, is_flag=True, group="Output",
                        help="Write OUTPUT_STEM.loss.png, the loss terms over iterations.")

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
        return [_sibling(self.output, "loss", ".png")] if self.options.plot else []

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

    def total_steps(self) -> int:
        from .._device import resolve_device
        from .pipeline import _shapes
        size = self.config.resolved_size(resolve_device(self.config.device))
        n = len(_shapes(self.config, tuple(self.load()[0].shape[-2:]), size))
        return self.config.coarse_iterations * (n - 1) + self.config.iterations

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
        if self.history and "interrupted_at" not in extra:
            meta.update(iterations_run=len(self.history), final_loss=sum(self.history[-1][2].values()))
        return meta

    def write(self, result, path: Path, metadata: dict, *, overwrite: bool) -> None:
        from .io import save_image
        save_image(result.data, path, metadata=metadata, overwrite=overwrite, bit_depth=self.options.bit_depth)
        if self.options.plot and self.history:
            _plot_losses(self.history, _sibling(self.output, "loss", ".png"), overwrite=True)

    @classmethod
    def read_metadata(cls, path: Path) -> dict:
        from .io import read_metadata
        return read_metadata(path)


def _plot_losses(history: list[tuple[int, int, dict]], path: Path, overwrite: bool) -> None:
    """A PNG of the weighted loss terms over all iterations (dotted lines between scales)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    names = sorted({k for _, _, t in history for k in t})
    xs = list(range(1, len(history) + 1))
    for name in names:
        ax.plot(xs, [t.get(name, float("nan")) for _, _, t in history], label=name)
    ax.plot(xs, [sum(t.values()) for _, _, t in history], label="total", color="black", lw=1)
    for i in range(1, len(history)):
        if history[i][0] != history[i - 1][0]:
            ax.axvline(i + 0.5, color="gray", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (all scales; dotted lines: next scale)")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    finally:
        plt.close(fig)
