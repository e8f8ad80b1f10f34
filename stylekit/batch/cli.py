"""``stylekit batch``: stylize many inputs with one config per medium (thin: parse, plan, run, report).

The options of each medium are generated from its config (:func:`stylekit._options.click_options`), so they
are those of ``stylekit image`` and ``stylekit audio``, declared once: an option both have (``--style-weight``,
``--seed``, ...) applies to both media, and when it is left out each keeps its own default. Of the output
options, those that make sense for a whole batch (a sound's ``--float``) come from the media's output options;
the image ``--format`` is the batch's own.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click
from rich_click import RichOption

from .._command import command, examples
from .._job import RunOptions
from .._options import build, click_options
from .._preset import config_option
from ..errors import ConfigError
from .media import MEDIA

__all__ = ["batch"]


def _interrupted_line(rows: list[dict]) -> str:
    """The one line an interrupted batch ends with."""
    saved = sum(r["status"] == "interrupted" for r in rows)
    left = sum(r["status"] == "pending" for r in rows)
    what = (f"saved the best result so far of {saved} input{'s' if saved != 1 else ''} in progress, with a "
            f"checkpoint (OUTPUT_STEM.ckpt.pt) beside each" if saved else "no input was in progress")
    return (f"interrupted: {what}; {left} not started; run the same command again to continue"
            + (" (it resumes them from their checkpoints)" if saved else ""))


def _media_options(f):
    """Every medium's config options (``--threads`` is the batch's own), then its batch output options."""
    for m in reversed(MEDIA.values()):
        if m.batch_outputs:
            f = click_options(m.options, only=m.batch_outputs, prefix={m.options: f"{m.name.capitalize()}: "})(f)
    configs = [m.config for m in MEDIA.values()]
    prefix = {m.config: f"{m.name.capitalize()}: " for m in MEDIA.values()}
    return click_options(*configs, exclude=("threads",), prefix=prefix)(f)


def _configs(values: dict) -> tuple[list, list, dict]:
    """``(configs, output options, {medium: error})`` built from the options: a medium whose settings are
    invalid is an error only when the batch has inputs of that medium (an image --init file means nothing to
    a sound)."""
    configs, options, errors = [], [], {}
    for m in MEDIA.values():
        try:
            configs.append(build(m.config, values))
            if m.batch_outputs:
                options.append(build(m.options, values))
        except ConfigError as e:
            errors[m.name] = e
    return configs, options, errors


def _check_folders(out: Path, results_path: Path, items, *, given: bool) -> None:
    """Refuse before any work: otherwise every item would be computed and then fail to be written."""
    if given and not results_path.parent.is_dir():
        raise ConfigError(f"{results_path}: folder {results_path.parent} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    for folder in dict.fromkeys([out, results_path.parent, *(Path(it.output).parent for it in items)]):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder}: output folder is not writable")


class _Progress:
    """The batch's progress bar (one step per input) and its counts."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.counts = {"done": 0, "skipped": 0, "error": 0}
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr, desc="batch")

    def __call__(self, row: dict) -> None:
        self.counts[row["status"]] += 1
        if self.bar is not None:
            self.bar.set_postfix(self.counts, refresh=False)
            self.bar.update(1)
            if row["status"] == "error":
                self.bar.write(f"error: {row['error']}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_IO = {"cls": RichOption, "panel": "Input and output"}
_BATCH = {"cls": RichOption, "panel": "Batch"}


@command("batch", examples=examples(
    "stylekit batch photos/ --style painting.jpg -o styled/",
    "stylekit batch 'shots/*.jpg' sounds/ --style painting.jpg --style organ.wav --media auto -o out/",
    "stylekit batch manifest.csv -o out/ --workers 2 --size 512",
    "stylekit batch photos/ --style painting.jpg -o styled/ --config preset.toml",
    "stylekit batch photos/ --style painting.jpg -o styled/ --engine ray --address auto"))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), **_IO,
              help="Output folder (created when missing).")
@click.option("--style", "styles", multiple=True, type=click.Path(dir_okay=False), **_IO,
              help="Style image or sound; repeat to blend several. Needed unless every manifest row names its "
                   "style.")
@click.option("--media", type=click.Choice(["auto", *MEDIA]), default="auto", show_default=True, **_IO,
              help="What the inputs are: decided per file (auto), or all of one medium.")
@config_option
@_media_options
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "tif"]), default="png", show_default=True, **_IO,
              help="Image output format (sounds are written as WAV).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, **_BATCH,
              help="Run the inputs in local worker processes, or as tasks on a Ray cluster.")
@click.option("--address", default=None, **_BATCH,
              help="Ray cluster address (auto, ray://HEAD:10001). [default: a local Ray]")
@click.option("--workers", type=int, default=None, **_BATCH,
              help="Local engine: worker processes (0 = in this process). [default: one per GPU, else 1]")
@click.option("--threads", type=int, default=None, **_BATCH,
              help="CPU threads per worker or Ray task. [default: cores / workers; 1 per Ray task; sounds: 1, "
                   "as stylekit audio]")
@click.option("--max-retries", type=int, default=2, show_default=True, **_BATCH,
              help="Times an input is retried after its worker died.")
@click.option("--results", type=click.Path(dir_okay=False), default=None, **_IO,
              help="Results manifest, .jsonl or .csv. [default: OUT_DIR/results.jsonl]")
@click_options(RunOptions)
def batch(inputs, out_dir, styles, media, fmt, engine, address, workers, threads, max_retries, results, **values):
    """Stylize every image and sound of INPUTS (folders, glob patterns, files, or .csv/.jsonl manifests with
    columns input, style, output and setting overrides) with one config, writing OUT_DIR.

    Images (PNG, JPEG, ...) take image styles and the image options; sounds (WAV, FLAC, OGG, MP3) take audio
    styles and the audio options, and are written as WAV. Finished outputs are skipped, so rerunning a
    stopped batch resumes it. One row per input (status, seconds, error) goes to the results manifest. Exit
    code 0 when every input is done or skipped, 1 when some failed.

    Ctrl-C (or SIGTERM) saves the best result so far of every input in progress to its output, with a
    checkpoint OUTPUT_STEM.ckpt.pt beside it, and exits with code 130; running the same command again
    continues those inputs to the results an uninterrupted batch gives.
    """
    from .._command import enable_fast_kernels, sigterm_as_interrupt
    from .._io import check_output_path
    from .._lock import batch_lock
    from .engines import BatchInterrupted, run_batch
    from .manifest import collect_items

    run = build(RunOptions, values)
    if not styles and not any(Path(i).suffix.lower() in (".csv", ".jsonl") for i in inputs):
        raise ConfigError("no style: pass --style (or use a manifest with a style column)")
    configs, options, errors = _configs({**values, "threads": threads})
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    items = collect_items(inputs, out, styles=styles, config=configs, options=options, fmt=fmt, media=media)
    for it in items:
        if it.medium in errors:
            raise errors[it.medium]
    results_path = Path(results) if results else out / "results.jsonl"
    _check_folders(out, results_path, items, given=bool(results))
    # the results manifest never replaces a manifest (or any other file) named as an input
    check_output_path(results_path, overwrite=True, inputs=[i for i in inputs if Path(i).is_file()])

    enable_fast_kernels()
    progress = _Progress(len(items), run.quiet)
    previous = sigterm_as_interrupt()
    try:
        with batch_lock(out):       # a second batch on this folder is refused, not run twice over
            rows = run_batch(items, engine=engine, workers=workers, threads=threads, address=address,
                             overwrite=run.overwrite, max_retries=max_retries, results=results_path,
                             on_result=progress, full_paths=run.full_paths)
    except BatchInterrupted as e:
        progress.close()
        click.echo(_interrupted_line(e.rows), err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    n_err = sum(r["status"] == "error" for r in rows)
    if not run.quiet:
        click.echo(f"{progress.counts['done']} done, {progress.counts['skipped']} skipped, {n_err} failed; "
                   f"results in {results_path}", err=True)
    return 1 if n_err else 0
