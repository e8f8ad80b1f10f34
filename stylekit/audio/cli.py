"""``stylekit audio``: parse, build the config, run the :class:`~stylekit.audio.job.AudioJob`, report.

Every option and its default come from :class:`~stylekit.audio.config.AudioStyleConfig` (and its spectrogram
config) and :class:`~stylekit.audio.job.AudioOutput`, so the command and :func:`stylekit.stylize_audio` agree.
"""
from __future__ import annotations

import click

from .._job import RunOptions
from .._options import build, click_options
from .config import AudioStyleConfig
from .job import AudioOutput

__all__ = ["audio"]


@click.command("audio")
@click.argument("content", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output WAV file.")
@click_options(AudioStyleConfig)
@click_options(AudioOutput)
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue an interrupted run from its OUT_STEM.ckpt.pt (its settings are used).")
@click_options(RunOptions)
def audio(content: str, styles: tuple[str, ...], output: str, resume: str | None, **values) -> None:
    """Put the texture of STYLE sound(s) onto the words and rhythm of CONTENT; write OUT.wav.

    Reads WAV, FLAC, OGG (and MP3 where librosa can); inputs are mixed to mono, resampled to 22,050 Hz and
    loudness-normalised. The output has the content's length, rate and loudness. Ctrl-C (or SIGTERM) saves
    the best result so far to OUT.wav and a checkpoint to OUT_STEM.ckpt.pt, and exits with code 130;
    --resume continues from it to the result an uninterrupted run gives.
    """
    from .._command import run_job
    from .._device import resolve_device
    from .job import AudioJob

    run = build(RunOptions, values)
    config = build(AudioStyleConfig, values)     # --threads 0 becomes None: torch's own setting
    job = AudioJob(content, styles, output, config, options=build(AudioOutput, values), overwrite=run.overwrite,
                   resume=resume)
    job.check()
    resolve_device(job.config.device)    # fail now, with one line, when CUDA is asked for and missing
    job.load()       # every input is read before any long work, so a bad file fails at once with its name
    run_job(job, quiet=run.quiet, unit="step")
