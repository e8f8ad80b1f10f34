"""``stylekit video``: parse, build the config, run the :class:`~stylekit.video.job.VideoJob`, report."""
from __future__ import annotations

import click
from rich_click import RichOption

from .._command import command, examples
from .._job import RunOptions
from .._options import build, click_options
from .._preset import config_option
from .config import VideoStyleConfig
from .job import VideoOutput

__all__ = ["video"]


@command("video", examples=examples(
    "stylekit video clip.mp4 painting.jpg -o styled.mp4",
    "stylekit video clip.mp4 painting.jpg -o styled.mp4 --size 256 --temporal-weight 200 --dry-run",
    "stylekit video clip.mp4 painting.jpg -o frames_out",
    "stylekit video clip.mp4 painting.jpg -o styled.mp4 --resume styled.ckpt.pt"))
@click.argument("content", metavar="INPUT", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), cls=RichOption, panel="Input and output",
              help="Output video (.mp4), or a folder name without a suffix for PNG frames.")
@config_option
@click_options(VideoStyleConfig)
@click_options(VideoOutput)
@click.option("--dry-run", is_flag=True, cls=RichOption, panel="Input and output",
              help="Print the frames and the estimated memory and time of the first frame, and exit.")
@click.option("--resume", type=click.Path(dir_okay=False), default=None, cls=RichOption, panel="Resume",
              help="Continue an interrupted run from its OUTPUT_STEM.ckpt.pt (its settings are used).")
@click_options(RunOptions)
def video(content: str, styles: tuple[str, ...], output: str, dry_run: bool, resume: str | None, **values) -> None:
    """Paint every frame of INPUT (a video: MP4, MOV, WebM, MKV or GIF) in the style of STYLES (one or more
    images) and write OUTPUT, each frame consistent with the one before (Ruder et al. 2016).

    The output keeps the input's frame count, timing, rotation and audio. Ctrl-C (or SIGTERM) keeps the
    finished frames: it writes them to OUTPUT as a playable partial video and to a checkpoint
    OUTPUT_STEM.ckpt.pt, and exits with code 130; --resume continues with the next frame.
    """
    from .._command import enable_fast_kernels, run_job
    from .job import VideoJob

    run = build(RunOptions, values)
    job = VideoJob(content, styles, output, build(VideoStyleConfig, values), options=build(VideoOutput, values),
                   overwrite=run.overwrite, resume=resume, full_paths=run.full_paths)
    if dry_run:
        enable_fast_kernels()
        job.check_output()
        frames = job.load()[0]
        click.echo(f"{job.content}: {len(frames)} frames -> {frames.shape[2]}x{frames.shape[1]} px")
        click.echo(job.estimate().describe())
        return
    job.check()
    frames = job.load()[0]   # every input is read before any long work, so a bad file fails at once
    if not run.quiet:        # the bar starts after the first frame, the longest
        click.echo(f"{job.content}: {len(frames)} frames at {frames.shape[2]}x{frames.shape[1]} px", err=True)
    run_job(job, quiet=run.quiet, unit="frame")
