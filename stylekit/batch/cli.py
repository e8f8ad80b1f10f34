"""``stylekit batch``: stylize many inputs with one config (thin: parse, plan, run, report).

The image options are those of ``stylekit image`` and the audio options those of ``stylekit audio``; an option
both commands have (``--style-weight``, ``--seed``, ...) applies to both kinds, and when it is left out each
kind keeps its own default (read from :class:`ImageStyleConfig` / :class:`AudioStyleConfig`).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import click

from ..audio.cli import _OPTIONS as _AUDIO_CLI_OPTIONS
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
    click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default=None,
                 help="Optimiser, images and sounds."),
    click.option("--lr", type=float, default=None, help="Step size [default: 1 for L-BFGS, 0.02 for Adam]."),
    click.option("--content-weight", type=float, default=None,
                 help="Weight of the content term, images and sounds."),
    click.option("--style-weight", type=float, default=None,
                 help="Weight of the style term, images and sounds."),
    click.option("--tv-weight", type=float, default=_default("tv_weight"), show_default=True),
    click.option("--style-blend", default=None, help="Weights of the styles, e.g. 0.7,0.3 (images and sounds)."),
    click.option("--style-scale", type=float, default=_default("style_scale"), show_default=True,
                 help="Style image long edge relative to the output's."),
    click.option("--content-layers", default=_layers_text(_default("content_layers")), show_default=True,
                 help="Comma-separated layer[:weight] list."),
    click.option("--style-layers", default=_layers_text(_default("style_layers")), show_default=True,
                 help="Comma-separated layer[:weight] list."),
    click.option("--pooling", type=click.Choice(["max", "avg"]), default=_default("pooling"), show_default=True),
    click.option("--init", default=None,
                 help="content, noise, or (images) an image file."),
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
    click.option("--seed", type=int, default=None, help="Random seed, images and sounds."),
]

# (AudioStyleConfig / SpectrogramConfig field, option names, click arguments, help): the declarations of
# `stylekit audio` (its option table), for the settings that make sense per batch; defaults come from the
# config (see _audio_default), so they are those of `stylekit audio` too.
_BATCH_AUDIO = ("network", "steps", "band_weight", "envelope_weight", "rhythm_weight", "kind", "n_mels", "fmin",
                "fmax", "n_fft", "hop_length", "mel_inverse", "griffin_lim_iters", "chunk_seconds")
_AUDIO_OPTIONS = [(name, decls, kw, f"Audio: {help[0].lower()}{help[1:]}")
                  for name, decls, kw, help in _AUDIO_CLI_OPTIONS if name in _BATCH_AUDIO]


def _audio_default(name: str):
    from ..audio.pipeline import AudioStyleConfig
    cfg = AudioStyleConfig()
    return getattr(cfg, name) if hasattr(cfg, name) else getattr(cfg.spectrogram, name)


_SHARED = ("optimizer", "content_weight", "style_weight", "init", "seed")


def _interrupted_line(rows: list[dict]) -> str:
    """The one line an interrupted batch ends with."""
    saved = sum(r["status"] == "interrupted" for r in rows)
    left = sum(r["status"] == "pending" for r in rows)
    what = (f"saved the best result so far of {saved} input{'s' if saved != 1 else ''} in progress, with a "
            f"checkpoint (OUTPUT_STEM.ckpt.pt) beside each" if saved else "no input was in progress")
    return (f"interrupted: {what}; {left} not started; run the same command again to continue"
            + (" (it resumes them from their checkpoints)" if saved else ""))


def _shown(value) -> str:
    return "Nyquist" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class _BatchCommand(click.Command):
    """Appends the audio and shared options' defaults to their help at --help time (read from the configs,
    so they are those of ``stylekit image`` and ``stylekit audio``; building the command stays light)."""

    def get_help(self, ctx):
        audio = {n for n, *_ in _AUDIO_OPTIONS}
        for p in self.params:
            if not isinstance(p, click.Option) or "[default" in (p.help or ""):
                continue
            if p.name in audio:
                p.help = f"{p.help} [default: {_shown(_audio_default(p.name))}]"
            elif p.name in _SHARED:
                im, au = _shown(_default(p.name)), _shown(_audio_default(p.name))
                p.help = f"{p.help} [default: {im if im == au else f'image {im}, audio {au}'}]"
        return super().get_help(ctx)


def _image_options(f):
    for option in reversed(_IMAGE_OPTIONS):
        f = option(f)
    return f


def _audio_options(f):
    for name, decls, kw, help in reversed(_AUDIO_OPTIONS):
        f = click.option(*decls, name, default=None, help=help, **kw)(f)
    return f


@click.command("batch", cls=_BatchCommand)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (created when missing).")
@click.option("--style", "styles", multiple=True, type=click.Path(dir_okay=False),
              help="Style image or sound; repeat to blend several. Needed unless every manifest row names its "
                   "style.")
@click.option("--media", type=click.Choice(["auto", "image", "audio"]), default="auto", show_default=True,
              help="What the inputs are: decided per file (auto), or all images, or all sounds.")
@_image_options
@_audio_options
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "tif"]), default="png", show_default=True,
              help="Image output format (sounds are written as WAV).")
@click.option("--float", "float_out", is_flag=True, help="Write sounds as 32-bit float WAV instead of 16-bit.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (auto, ray://HEAD:10001); default: a local Ray.")
@click.option("--workers", type=int, default=None,
              help="Local engine: worker processes [default: one per GPU, else 1; 0 = in this process].")
@click.option("--threads", type=int, default=None,
              help="CPU threads per worker or Ray task [default: cores / workers; 1 per Ray task; sounds: 1, "
                   "as stylekit audio].")
@click.option("--max-retries", type=int, default=2, show_default=True,
              help="Times an input is retried after its worker died.")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="Results manifest, .jsonl or .csv [default: OUT_DIR/results.jsonl].")
@click.option("--overwrite", is_flag=True, help="Recompute and replace existing outputs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def batch(inputs, out_dir, styles, media, size, iterations, coarse_iterations, optimizer, lr, content_weight,
          style_weight, tv_weight, style_blend, style_scale, content_layers, style_layers, pooling, init, scales,
          preserve_color, weights, preprocessing, device, seed, fmt, float_out, engine, address, workers, threads,
          max_retries, results, overwrite, quiet, **audio_options):
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
    from ..pipelines import ImageStyleConfig, parse_layers
    from .engines import BatchInterrupted, run_batch
    from .manifest import AudioItemConfig, collect_items

    if not styles and not any(Path(i).suffix.lower() in (".csv", ".jsonl") for i in inputs):
        raise ConfigError("no style: pass --style (or use a manifest with a style column)")
    blend = _floats(style_blend, "--style-blend") if style_blend else None
    shared = {k: v for k, v in dict(optimizer=optimizer, content_weight=content_weight, style_weight=style_weight,
                                    init=init, seed=seed).items() if v is not None}
    cfg = ImageStyleConfig(
        size=size, iterations=iterations, coarse_iterations=coarse_iterations, lr=lr, tv_weight=tv_weight,
        style_blend=blend, style_scale=style_scale, content_layers=parse_layers(content_layers),
        style_layers=parse_layers(style_layers), pooling=pooling, scales=scales, preserve_color=preserve_color,
        weights=weights, preprocessing=preprocessing, device=device, **shared)
    # the audio settings are checked only when the batch has sounds (an image --init path means nothing there)
    from ..audio.pipeline import AudioStyleConfig, build_config
    audio_error = None
    try:
        acfg = build_config(AudioStyleConfig(), **audio_options, **shared)
        if threads is not None:
            acfg = dataclasses.replace(acfg, threads=threads)
        audio = AudioItemConfig(acfg, style_blend=blend, float_output=float_out)
    except ConfigError as e:
        audio_error, audio = e, None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    items = collect_items(inputs, out, styles=styles, config=cfg, audio_config=audio, fmt=fmt, media=media)
    if audio_error is not None and any(it.kind == "audio" for it in items):
        raise audio_error
    results_path = Path(results) if results else out / "results.jsonl"
    if results and not results_path.parent.is_dir():
        raise ConfigError(f"{results_path}: folder {results_path.parent} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    # Refuse before any work: otherwise every item would be computed and then fail to be written.
    for folder in dict.fromkeys([out, results_path.parent, *(Path(it.output).parent for it in items)]):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder}: output folder is not writable")

    counts = {"done": 0, "skipped": 0, "error": 0}
    bar = None
    if not quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), unit="file", dynamic_ncols=True, file=sys.stderr, desc="batch")

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
    except BatchInterrupted as e:
        if bar is not None:
            bar.close()
            bar = None
        click.echo(_interrupted_line(e.rows), err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
    n_err = sum(r["status"] == "error" for r in rows)
    if not quiet:
        click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {n_err} failed; "
                   f"results in {results_path}", err=True)
    return 1 if n_err else 0
