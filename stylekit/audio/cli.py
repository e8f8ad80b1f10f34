"""``stylekit audio``: parse, build the config, run the :class:`~stylekit.audio.job.AudioJob`, report.

Every option and its default come from :class:`~stylekit.audio.config.AudioStyleConfig` (and its spectrogram
config) and :class:`~stylekit.audio.job.AudioOutput`, so the command and :func:`stylekit.stylize_audio` agree.
"""
from __future__ import annotations

import click
from rich_click import RichOption

from .._command import command, examples
from .._job import RunOptions
from .._options import build, click_options
from .._preset import config_option
from .config import AudioStyleConfig
from .job import AudioOutput

__all__ = ["audio"]


@command("audio", examples=examples(
    "stylekit audio voice.wav organ.wav -o voice_organ.wav",
    "stylekit audio voice.wav organ.wav -o voice_organ.wav --style-weight 50 --plot",
    "stylekit audio voice.wav rain.wav bells.wav --style-blend 0.6,0.4 -o out.wav --float",
    "stylekit audio voice.wav organ.wav -o voice_organ.wav --resume voice_organ.ckpt.pt",
    "stylekit settings voice_organ.wav -o preset.toml"))
@click.argument("content", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), cls=RichOption,
              panel="Input and output", help="Output WAV file.")
@config_option
@click_options(AudioStyleConfig)
@click_options(AudioOutput)
@click.option("--resume", type=click.Path(dir_okay=False), default=None, cls=RichOption, panel="Resume",
              help="Continue an interrupted run from its OUT_STEM.ckpt.pt (its settings are used).")
@click_options(RunOptions)
def audio(content: str, styles: tuple[str, ...], output: str, resume: str | None, **values) -> None:
    """Put the texture of STYLE sound(s) onto the words and rhythm of CONTENT; write OUT.wav.

    Reads WAV, FLAC, OGG (and MP3 where librosa can), 8-192 kHz, up to 8 channels. The output has the content's
    length, rate, channels and loudness; --words sets how much of the content's words is kept. Ctrl-C (or
    SIGTERM) saves the best result so far to OUT.wav and a checkpoint to OUT_STEM.ckpt.pt, and exits with code 130;
    --resume continues from it to the result an uninterrupted run gives.
    """
    from .._command import run_job
    from .._device import resolve_device
    from .job import AudioJob

    run = build(RunOptions, values)
    config = build(AudioStyleConfig, values)     # --threads 0 becomes None: torch's own setting
    job = AudioJob(content, styles, output, config, options=build(AudioOutput, values), overwrite=run.overwrite,
                   resume=resume, full_paths=run.full_paths)
    job.check()
    resolve_device(job.config.device)    # fail now, with one line, when CUDA is asked for and missing
    job.load()       # every input is read before any long work, so a bad file fails at once with its name
    run_job(job, quiet=run.quiet, unit="step")
