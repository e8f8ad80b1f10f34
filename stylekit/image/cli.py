"""``stylekit image``: parse, build the config, run the :class:`~stylekit.image.job.ImageJob`, report."""
from __future__ import annotations

import click
from rich_click import RichOption

from .._command import command, examples
from .._job import RunOptions
from .._options import build, click_options
from .._preset import config_option
from .config import ImageStyleConfig
from .job import ImageOutput

__all__ = ["image"]


@command("image", examples=examples(
    "stylekit image photo.jpg painting.jpg -o out.png",
    "stylekit image photo.jpg painting.jpg -o out.png --size 768 --style-weight 10 --preserve-color luminance",
    "stylekit image photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 -o out.png --plot",
    "stylekit image photo.jpg painting.jpg -o out.png --resume out.ckpt.pt",
    "stylekit settings out.png -o preset.toml",
    "stylekit image other.jpg painting.jpg -o other.png --config preset.toml"))
@click.argument("content", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), cls=RichOption,
              panel="Input and output", help="Output image (.png, .jpg or .tif).")
@config_option
@click_options(ImageStyleConfig)
@click_options(ImageOutput)
@click.option("--dry-run", is_flag=True, cls=RichOption, panel="Input and output",
              help="Print the estimated peak memory and time, and exit.")
@click.option("--resume", type=click.Path(dir_okay=False), default=None, cls=RichOption, panel="Resume",
              help="Continue an interrupted run from its OUTPUT_STEM.ckpt.pt (its settings are used).")
@click_options(RunOptions)
def image(content: str, styles: tuple[str, ...], output: str, dry_run: bool, resume: str | None, **values) -> None:
    """Paint CONTENT in the style of STYLES (one or more images) and write OUTPUT.

    Ctrl-C (or SIGTERM) saves the best result so far to OUTPUT and a checkpoint to OUTPUT_STEM.ckpt.pt, and
    exits with code 130; --resume continues from it to the result an uninterrupted run gives.
    """
    from .._command import enable_fast_kernels, run_job
    from .job import ImageJob

    run = build(RunOptions, values)
    job = ImageJob(content, styles, output, build(ImageStyleConfig, values), options=build(ImageOutput, values),
                   overwrite=run.overwrite, resume=resume, full_paths=run.full_paths)
    if dry_run:
        enable_fast_kernels()
        job.check_output()
        _dry_run(job)
        for line in job.notes():
            click.echo(line)
        return
    job.check()
    job.load()       # every input is read before any long work, so a bad file fails at once with its name
    run_job(job, quiet=run.quiet)


def _dry_run(job) -> None:
    from .._device import resolve_device
    from .io import resize_long_edge

    content = job.load()[0]
    est = job.estimate()
    width = resize_long_edge(content, job.config.resolved_size(resolve_device(job.config.device))).shape[-1]
    click.echo(f"{job.content}: {content.shape[-1]}x{content.shape[-2]} px -> {width} px wide output")
    click.echo(est.describe())


