"""``stylekit batch``: stylize many inputs with one config (thin: parse, plan, run, report)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..errors import ConfigError
from ..image_cli import _default, _floats, _layers_text

__all__ = ["batch"]

_IMAGE_OPTIONS = [
    click.option("--size", type=int, default=None,
                 help="Long edge of the outputs in pixels [default: 512 when the batch runs on GPUs, else 384]."),
    click.option("--iterations", type=int, default=_default("iterations"), show_default=True,
                 help="Iterations at the finest scale."),
    click.option("--coarse-iterations", type=int, default=_default("coarse_iterations"), show_default=True,
                 help="Iterations at each coarser scale."),
    click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default=_default("optimizer"),
                 show_default=True),
    click.option("--lr", type=float, default=None, help="Step size [default: 1 for L-BFGS, 0.02 for Adam]."),
    click.option("--content-weight", type=float, default=_default("content_weight"), show_default=True),
    click.option("--style-weight", type=float, default=_default("style_weight"), show_default=True),
    click.option("--tv-weight", type=float, default=_default("tv_weight"), show_default=True),
    click.option("--style-blend", default=None, help="Weights of the style images, e.g. 0.7,0.3."),
    click.option("--style-scale", type=float, default=_default("style_scale"), show_default=True,
                 help="Style image long edge relative to the output's."),
    click.option("--content-layers", default=_layers_text(_default("content_layers")), show_default=True,
                 help="Comma-separated layer[:weight] list."),
    click.option("--style-layers", default=_layers_text(_default("style_layers")), show_default=True,
                 help="Comma-separated layer[:weight] list."),
    click.option("--pooling", type=click.Choice(["max", "avg"]), default=_default("pooling"), show_default=True),
    click.option("--init", default=_default("init"), show_default=True, help="content, noise, or an image file."),
    click.option("--scales", type=int, default=_default("scales"), show_default=True,
                 help="Coarse-to-fine levels (1 = single scale)."),
    click.option("--preserve-color", type=click.Choice(["none", "luminance", "histogram"]),
                 default=_default("preserve_color"), show_default=True),
    click.option("--weights", default=_default("weights"), show_default=True,
                 help="caffe, torchvision, or a state_dict path."),
    click.option("--preprocessing", type=click.Choice(["caffe", "torchvision"]), default=None,
                 help="Input preprocessing of a --weights PATH."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=_default("device"),
                 show_default=True),
    click.option("--seed", type=int, default=_default("seed"), show_default=True),
]


def _image_options(f):
    for option in reversed(_IMAGE_OPTIONS):
        f = option(f)
    return f


@click.command("batch")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (created when missing).")
@click.option("--style", "styles", multiple=True, type=click.Path(dir_okay=False),
              help="Style image; repeat to blend several. Needed unless every manifest row names its style.")
@_image_options
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "tif"]), default="png", show_default=True,
              help="Output format.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (auto, ray://HEAD:10001); default: a local Ray.")
@click.option("--workers", type=int, default=None,
              help="Local engine: worker processes [default: one per GPU, else 1; 0 = in this process].")
@click.option("--threads", type=int, default=None,
              help="CPU threads per worker or Ray task [default: cores / workers; 1 per Ray task].")
@click.option("--max-retries", type=int, default=2, show_default=True,
              help="Times an input is retried after its worker died.")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="Results manifest, .jsonl or .csv [default: OUT_DIR/results.jsonl].")
@click.option("--overwrite", is_flag=True, help="Recompute and replace existing outputs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def batch(inputs, out_dir, styles, size, iterations, coarse_iterations, optimizer, lr, content_weight, style_weight,
          tv_weight, style_blend, style_scale, content_layers, style_layers, pooling, init, scales, preserve_color,
          weights, preprocessing, device, seed, fmt, engine, address, workers, threads, max_retries, results,
          overwrite, quiet):
    """Stylize every image of INPUTS (folders, glob patterns, image files, or .csv/.jsonl manifests with
    columns input, style, output and setting overrides) with one config, writing OUT_DIR.

    Finished outputs are skipped, so rerunning a stopped batch resumes it. One row per input (status,
    seconds, error) goes to the results manifest. Exit code 0 when every input is done or skipped, 1 when
    some failed.
    """
    from ..pipelines import ImageStyleConfig, parse_layers
    from .engines import run_batch
    from .manifest import collect_items

    if not styles and not any(Path(i).suffix.lower() in (".csv", ".jsonl") for i in inputs):
        raise ConfigError("no style image: pass --style (or use a manifest with a style column)")
    cfg = ImageStyleConfig(
        size=size, iterations=iterations, coarse_iterations=coarse_iterations, optimizer=optimizer, lr=lr,
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        style_blend=_floats(style_blend, "--style-blend") if style_blend else None, style_scale=style_scale,
        content_layers=parse_layers(content_layers), style_layers=parse_layers(style_layers), pooling=pooling,
        init=init, scales=scales, preserve_color=preserve_color, weights=weights, preprocessing=preprocessing,
        device=device, seed=seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    items = collect_items(inputs, out, styles=styles, config=cfg, fmt=fmt)
    results_path = Path(results) if results else out / "results.jsonl"
    if results and not results_path.parent.is_dir():
        raise ConfigError(f"{results_path}: folder {results_path.parent} does not exist")
    out.mkdir(parents=True, exist_ok=True)

    counts = {"done": 0, "skipped": 0, "error": 0}
    bar = None
    if not quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), unit="img", dynamic_ncols=True, file=sys.stderr, desc="batch")

    def on_result(row):
        counts[row["status"]] += 1
        if bar is not None:
            bar.set_postfix(counts, refresh=False)
            bar.update(1)
            if row["status"] == "error":
                bar.write(f"error: {row['error']}", file=sys.stderr)

    from .._signals import sigterm_as_interrupt
    previous = sigterm_as_interrupt()
    try:
        rows = run_batch(items, engine=engine, workers=workers, threads=threads, address=address,
                         overwrite=overwrite, max_retries=max_retries, results=results_path, on_result=on_result)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
    n_err = sum(r["status"] == "error" for r in rows)
    if not quiet:
        click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {n_err} failed; "
                   f"results in {results_path}", err=True)
    return 1 if n_err else 0
