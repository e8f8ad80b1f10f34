"""``stylekit image``: the image style-transfer command (thin: parse, build the config, call the pipeline)."""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import click

from ._checkpoint import checkpoint_path
from ._io import check_output_path
from .errors import ConfigError
from .image_checkpoint import load_checkpoint as _load_checkpoint
from .image_checkpoint import save_checkpoint as _save_checkpoint

__all__ = ["image"]


def _default(name: str):
    from .pipelines import ImageStyleConfig
    f = {f.name: f for f in dataclasses.fields(ImageStyleConfig)}[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _layers_text(layers: dict) -> str:
    return ",".join(f"{k}:{w:g}" for k, w in layers.items())


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _sibling(out: Path, tag: str, suffix: str | None = None) -> Path:
    return out.with_name(f"{out.stem}.{tag}{suffix or out.suffix}")


def _plot_losses(history: list[tuple[int, int, dict]], path: Path, overwrite: bool) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    names = sorted({k for _, _, t in history for k in t})
    xs = list(range(1, len(history) + 1))
    for name in names:
        ax.plot(xs, [t.get(name, float("nan")) for _, _, t in history], label=name)
    total = [sum(t.values()) for _, _, t in history]
    ax.plot(xs, total, label="total", color="black", lw=1)
    for i in range(1, len(history)):
        if history[i][0] != history[i - 1][0]:
            ax.axvline(i + 0.5, color="gray", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (all scales; dotted lines: next scale)")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    plt.close(fig)


def _tile_option(text: str):
    if text in ("auto", "off"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--tile must be auto, off or a number of pixels, got {text!r}") from None


@click.command("image")
@click.argument("content", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output image (.png, .jpg or .tif).")
@click.option("--size", type=int, default=None, help="Long edge of the output in pixels [default: 384 on CPU, 512 on GPU].")
@click.option("--iterations", type=int, default=_default("iterations"), show_default=True,
              help="Iterations at the finest scale.")
@click.option("--coarse-iterations", type=int, default=_default("coarse_iterations"), show_default=True,
              help="Iterations at each coarser scale.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default=_default("optimizer"), show_default=True)
@click.option("--lr", type=float, default=None, help="Step size [default: 1 for L-BFGS, 0.02 for Adam].")
@click.option("--content-weight", type=float, default=_default("content_weight"), show_default=True)
@click.option("--style-weight", type=float, default=_default("style_weight"), show_default=True)
@click.option("--tv-weight", type=float, default=_default("tv_weight"), show_default=True)
@click.option("--style-blend", default=None, help="Weights of the style images, e.g. 0.7,0.3.")
@click.option("--style-scale", type=float, default=_default("style_scale"), show_default=True,
              help="Style image long edge relative to the output's.")
@click.option("--content-layers", default=_layers_text(_default("content_layers")), show_default=True,
              help="Comma-separated layer[:weight] list.")
@click.option("--style-layers", default=_layers_text(_default("style_layers")), show_default=True,
              help="Comma-separated layer[:weight] list.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default=_default("pooling"), show_default=True)
@click.option("--init", default=_default("init"), show_default=True, help="content, noise, or an image file.")
@click.option("--scales", type=int, default=_default("scales"), show_default=True,
              help="Coarse-to-fine levels (1 = single scale).")
@click.option("--min-size", type=int, default=_default("min_size"), show_default=True,
              help="Long edge of the coarsest scale.")
@click.option("--preserve-color", type=click.Choice(["none", "luminance", "histogram"]),
              default=_default("preserve_color"), show_default=True)
@click.option("--weights", default=_default("weights"), show_default=True, help="caffe, torchvision, or a state_dict path.")
@click.option("--preprocessing", type=click.Choice(["caffe", "torchvision"]), default=None,
              help="Input preprocessing of a --weights PATH.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=_default("device"), show_default=True)
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "tf32", "bf16"]), default=_default("precision"),
              show_default=True, help="Convolution precision: auto = TF32 on CUDA, fp32 on the CPU; Grams stay fp32.")
@click.option("--compile", "compile_", is_flag=True,
              help="Compile the objective with torch.compile (CUDA graphs on CUDA): for long runs on a GPU; each "
                   "scale first waits for compilation.")
@click.option("--tile", default=str(_default("tile")), show_default=True,
              help="auto (tile only when the image would not fit in memory), off, or a tile size in pixels: "
                   "exact tiled optimisation for outputs of any size.")
@click.option("--max-memory", type=float, default=None,
              help="Memory budget in GB for tiling and the fit check [default: 80% of free memory].")
@click.option("--dry-run", is_flag=True, help="Print the estimated peak memory and time, and exit.")
@click.option("--save-every", type=int, default=0, help="Also save the current result every N iterations.")
@click.option("--plot", is_flag=True, help="Write OUTPUT_STEM.loss.png, the loss terms over iterations.")
@click.option("--bit-depth", type=click.Choice(["8", "16"]), default="8", show_default=True, help="16 for TIFF only.")
@click.option("--resume", "resume_path", type=click.Path(dir_okay=False), default=None,
              help="Continue an interrupted run from its OUTPUT_STEM.ckpt.pt (its settings are used).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def image(content, styles, output, size, iterations, coarse_iterations, optimizer, lr, content_weight, style_weight,
          tv_weight, style_blend, style_scale, content_layers, style_layers, pooling, init, scales, min_size, preserve_color,
          weights, preprocessing, device, seed, precision, compile_, tile, max_memory, dry_run, save_every, plot, bit_depth, resume_path, overwrite, quiet):
    """Paint CONTENT in the style of STYLES (one or more images) and write OUTPUT.

    Ctrl-C (or SIGTERM) saves the best result so far to OUTPUT and a checkpoint to OUTPUT_STEM.ckpt.pt, and
    exits with code 130; --resume continues from it to the result an uninterrupted run gives.
    """
    from . import __version__
    from .image import OUTPUT_FORMATS, load_image, save_image
    from .optim import OptimizationInterrupted
    from .pipelines import (ImageStyleConfig, estimate_image_run, finish_image, parse_layers, resolve_device,
                            stylize_image)

    out = Path(output)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"{out}: unsupported output format {out.suffix or '(none)'}; use .png, .jpg or .tif")
    if bit_depth == "16" and OUTPUT_FORMATS[out.suffix.lower()] != "TIFF":
        raise ConfigError(f"{out}: --bit-depth 16 needs a .tif output")
    if save_every < 0:
        raise ConfigError(f"--save-every must be >= 0, got {save_every}")
    inputs = [content, *styles] + ([init] if init not in ("content", "noise") else [])
    if not dry_run:
        check_output_path(out, overwrite=overwrite, inputs=inputs)
    plot_path = _sibling(out, "loss", ".png")
    if plot and not dry_run:
        check_output_path(plot_path, overwrite=overwrite, inputs=inputs)
    resume_state = None
    if resume_path:
        stored, resume_state = _load_checkpoint(resume_path, content, styles)
        stored["style_blend"] = tuple(stored["style_blend"]) if stored.get("style_blend") else None
        cfg = ImageStyleConfig(**stored)
    else:
        cfg = None
    cfg = cfg or ImageStyleConfig(
        size=size, iterations=iterations, coarse_iterations=coarse_iterations, optimizer=optimizer, lr=lr,
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        style_blend=_floats(style_blend, "--style-blend") if style_blend else None, style_scale=style_scale,
        content_layers=parse_layers(content_layers), style_layers=parse_layers(style_layers), pooling=pooling,
        init=init, scales=scales, min_size=min_size, preserve_color=preserve_color, weights=weights, preprocessing=preprocessing,
        device=device, seed=seed, precision=precision, tile=_tile_option(tile), max_memory=max_memory,
        compile=compile_)
    dev = resolve_device(cfg.device)
    # Read every input before any long work, so a bad file fails at once with its name.
    content_img = load_image(content)
    style_imgs = [load_image(s) for s in styles]
    if dry_run:
        from .image import resize_long_edge
        est = estimate_image_run(tuple(content_img.shape[-2:]), config=cfg)
        click.echo(f"{content}: {content_img.shape[-1]}x{content_img.shape[-2]} px -> "
                   f"{resize_long_edge(content_img, cfg.resolved_size(dev)).shape[-1]} px wide output")
        click.echo(est.describe())
        return
    meta = {"stylekit": __version__, "content": str(content), "styles": [str(s) for s in styles],
            "config": cfg.to_dict(), "device": str(dev)}

    history: list[tuple[int, int, dict]] = []
    bar = None

    def callback(p):
        nonlocal bar
        history.append((p.scale, p.step, p.terms))
        if bar is None and not quiet:
            # Made at the first iteration, so that errors found while setting up stay one clean line.
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.coarse_iterations * (p.n_scales - 1) + cfg.iterations, unit="it",
                       dynamic_ncols=True, file=sys.stderr)
        if bar is not None:
            bar.set_description(f"scale {p.scale}/{p.n_scales} {p.image.shape[-1]}x{p.image.shape[-2]}")
            bar.set_postfix({k: f"{v:.3g}" for k, v in p.terms.items()}, refresh=False)
            bar.update(1)
        if save_every and len(history) % save_every == 0:
            snap = finish_image(p.image, content_at_size, cfg.preserve_color)
            save_image(snap, _sibling(out, f"step{len(history):05d}"),
                       metadata={**meta, "step": len(history)}, overwrite=overwrite)

    from .image import resize_long_edge
    content_at_size = resize_long_edge(content_img, cfg.resolved_size(dev))

    from ._signals import sigterm_as_interrupt
    previous = sigterm_as_interrupt()
    t0 = time.perf_counter()
    try:
        result = stylize_image(content_img, style_imgs, config=cfg, callback=callback, resume=resume_state,
                                style_names=[str(s) for s in styles])
    except OptimizationInterrupted as e:
        if bar is not None:
            bar.close()
        meta.update(interrupted_at=len(history), seconds=round(time.perf_counter() - t0, 2))
        save_image(e.best, out, metadata=meta, overwrite=overwrite, bit_depth=int(bit_depth))
        ckpt = checkpoint_path(out)
        _save_checkpoint(ckpt, cfg, content, styles, e.state, overwrite=True)
        if plot and history:
            _plot_losses(history, plot_path, overwrite)
        click.echo(f"interrupted: saved the best result so far to {out}; continue with --resume {ckpt}", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if bar is not None:
        bar.close()
    meta.update(seconds=round(time.perf_counter() - t0, 2), iterations_run=len(history),
                final_loss=sum(history[-1][2].values()) if history else None)
    save_image(result, out, metadata=meta, overwrite=overwrite, bit_depth=int(bit_depth))
    if plot and history:
        _plot_losses(history, plot_path, overwrite)
    if not quiet:
        click.echo(f"wrote {out} ({result.shape[-1]}x{result.shape[-2]}, {meta['seconds']:.0f} s)", err=True)
