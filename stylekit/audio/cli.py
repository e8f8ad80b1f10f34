"""``stylekit audio``: the audio style-transfer command (thin: parse, build the config, call the pipeline).

Every default shown here is read from :class:`stylekit.audio.pipeline.AudioStyleConfig` /
:class:`stylekit.audio.transform.SpectrogramConfig`, so the command and :func:`stylekit.stylize_audio` agree.
"""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import click

from .._checkpoint import checkpoint_path
from .._io import check_output_path
from ..errors import ConfigError

__all__ = ["audio"]


def _defaults() -> dict:
    # Imported lazily: `stylekit --help` must not import torch.
    from .pipeline import AudioStyleConfig

    cfg = AudioStyleConfig()
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "spectrogram"}
    out.update({f.name: getattr(cfg.spectrogram, f.name) for f in dataclasses.fields(cfg.spectrogram)
                if not f.name.startswith("_")})
    return out


class _Defaults(dict):
    """Defaults resolved on first use, so building the click command does not import torch."""

    def __missing__(self, key):
        self.update(_defaults())
        return dict.__getitem__(self, key)


D = _Defaults()


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


_OPTIONS = [
    ("network", ("--network",), dict(type=click.Choice(["random", "vgg19"])),
     "Feature network: random 1-D conv bank or VGG19 on the spectrogram image."),
    ("steps", ("--steps",), dict(type=int), "Optimisation steps per chunk."),
    ("style_weight", ("--style-weight",), dict(type=float), "Weight of the style (Gram) term."),
    ("content_weight", ("--content-weight",), dict(type=float), "Weight of the content feature term."),
    ("band_weight", ("--band-weight",), dict(type=float),
     "Weight of the band-statistics term (per-band mean, std and correlation of the log spectrogram)."),
    ("envelope_weight", ("--envelope-weight",), dict(type=float),
     "Weight of the loudness-contour term (keeps the content's rhythm)."),
    ("rhythm_weight", ("--rhythm-weight",), dict(type=float),
     "Weight of the style autocorrelation (rhythm) term; 0 is off (random network only)."),
    ("init", ("--init",), dict(type=click.Choice(["content", "noise", "style"])),
     "Start from the content, from noise, or from the (first) style repeated to the content's length."),
    ("variables", ("--variables",), dict(type=click.Choice(["linear", "mel"])),
     "With --kind mel: optimise the linear magnitude (losses on its log-mel) or the log-mel itself."),
    ("optimizer", ("--optimizer",), dict(type=click.Choice(["lbfgs", "adam"])), "Optimiser."),
    ("history", ("--history",), dict(type=int), "L-BFGS history length (memory: 2 x history x variables)."),
    ("seed", ("--seed",), dict(type=int), "Random seed (network weights, noise, phase)."),
    ("kind", ("--kind",), dict(type=click.Choice(["mel", "linear"])),
     "Representation: log-mel or linear log-magnitude STFT."),
    ("n_mels", ("--n-mels",), dict(type=int), "Mel bands."),
    ("fmin", ("--fmin",), dict(type=float), "Lowest mel frequency (Hz)."),
    ("fmax", ("--fmax",), dict(type=float), "Highest mel frequency (Hz; default: Nyquist)."),
    ("log_floor", ("--log-floor",), dict(type=float),
     "Added to the magnitude before the log (full scale = 1); sets how deep the quietest detail reaches."),
    ("n_fft", ("--n-fft",), dict(type=int), "FFT size."),
    ("hop_length", ("--hop-length",), dict(type=int), "STFT hop (samples)."),
    ("mel_inverse", ("--mel-inverse",), dict(type=click.Choice(["pinv", "nnls"])), "Mel to linear inversion."),
    ("griffin_lim_iters", ("--griffin-lim-iters",), dict(type=int), "Fast Griffin-Lim iterations."),
    ("chunk_seconds", ("--chunk-seconds",), dict(type=float), "Longest chunk processed at once (seconds)."),
    ("overlap_seconds", ("--overlap-seconds",), dict(type=float), "Cross-fade between chunks (seconds)."),
    ("device", ("--device",), dict(type=click.Choice(["auto", "cpu", "cuda"])),
     "Where everything runs: auto picks CUDA when available."),
    ("threads", ("--threads",), dict(type=int), "Torch CPU threads during the run (0 keeps torch's own setting)."),
]

# Options that do not change the result: a resumed run takes them from the command line, not the checkpoint.
_RUNTIME = ("device", "threads")


def _add_options(f):
    for name, decls, kw, help in reversed(_OPTIONS):
        f = click.option(*decls, name, default=None, help=help, **kw)(f)
    return f


class _AudioCommand(click.Command):
    """Appends the config's defaults to each option's help at --help time (keeps imports lazy)."""

    def get_help(self, ctx):
        for p in self.params:
            if isinstance(p, click.Option) and p.name in {n for n, *_ in _OPTIONS} and "[default" not in (p.help or ""):
                p.help = f"{p.help} [default: {D[p.name]}]"
        return super().get_help(ctx)


@click.command("audio", cls=_AudioCommand)
@click.argument("content", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output WAV file.")
@click.option("--style-blend", default=None, help="Comma-separated weights of several styles (default equal).")
@_add_options
@click.option("--float", "float_out", is_flag=True, help="Write 32-bit float WAV instead of 16-bit.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG of the content, style and result spectrograms.")
@click.option("--resume", "resume_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue an interrupted run from its OUT_STEM.ckpt.pt (its settings are used).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def audio(content: Path, styles: tuple[Path, ...], output: Path, style_blend: str | None, float_out: bool,
          plot: Path | None, resume_path: Path | None, overwrite: bool, quiet: bool, **options) -> None:
    """Put the texture of STYLE sound(s) onto the words and rhythm of CONTENT; write OUT.wav.

    Reads WAV, FLAC, OGG (and MP3 where librosa can); inputs are mixed to mono, resampled to 22,050 Hz and
    loudness-normalised. The output has the content's length, rate and loudness. Ctrl-C (or SIGTERM) saves
    the best result so far to OUT.wav and a checkpoint to OUT_STEM.ckpt.pt, and exits with code 130;
    --resume continues from it to the result an uninterrupted run gives.
    """
    if output.suffix.lower() != ".wav":
        raise ConfigError(f"{output}: the output must be a .wav file")
    check_output_path(output, overwrite=overwrite, inputs=(content, *styles))
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise ConfigError(f"{plot}: the plot must be a .png file")
        check_output_path(plot, overwrite=overwrite, inputs=(content, *styles, output))
    ckpt = checkpoint_path(output)
    check_output_path(ckpt, overwrite=True, inputs=(content, *styles, output))
    blend = _floats(style_blend, "--style-blend")
    if blend is not None and len(blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(blend)} weights for {len(styles)} styles")

    from .checkpoint import load_checkpoint, save_checkpoint
    from .io import write_audio
    from .pipeline import StylizeInterrupted, build_config, plot_spectrograms, resolve_device, stylize_audio

    progress = None
    if resume_path is not None:
        # The checkpoint's settings are the run's settings; only where and how fast it runs may change.
        stored, stored_blend, progress = load_checkpoint(resume_path, inputs=(content, *styles))
        runtime = {k: options[k] for k in _RUNTIME if options.get(k) is not None}
        options = {**{k: None for k in options}, **runtime}
        blend = None if stored_blend is None else tuple(stored_blend)
        base = stored
    else:
        base = None
    if options.get("threads") == 0:
        options["threads"] = None
        cfg = dataclasses.replace(build_config(base, **options), threads=None)
    else:
        cfg = build_config(base, **options)
    resolve_device(cfg.device)      # fail now, with one line, when CUDA is asked for and missing
    subtype = "float" if float_out else "pcm16"
    bar = None

    def callback(p):
        nonlocal bar
        if bar is None and not quiet:
            # Made at the first step, so that a bad input found while reading stays one clean error line.
            from tqdm.auto import tqdm
            bar = tqdm(total=p.steps * p.n_scales, unit="step", dynamic_ncols=True, file=sys.stderr)
        if bar is not None:
            bar.set_description(f"chunk {p.scale}/{p.n_scales}")
            bar.set_postfix({k: f"{v:.3g}" for k, v in p.terms.items()}, refresh=False)
            bar.update(1)

    from .._signals import sigterm_as_interrupt
    previous = sigterm_as_interrupt()
    t0 = time.perf_counter()
    try:
        result = stylize_audio(content, list(styles), config=cfg, style_weights=blend, callback=callback,
                               resume=progress)
    except StylizeInterrupted as e:
        if bar is not None:
            bar.close()
        save_checkpoint(ckpt, config=cfg, inputs=(content, *styles), style_blend=blend, progress=e.progress,
                        overwrite=True)
        if e.result is not None:
            write_audio(output, e.result.samples, e.result.sample_rate, subtype=subtype, overwrite=overwrite)
            saved = f"saved the best result so far to {output}"
        else:
            saved = "no result to save yet"
        again = " --overwrite" if e.result is not None or output.exists() else ""
        click.echo(f"interrupted: {saved}; continue with --resume {ckpt}{again}", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if bar is not None:
        bar.close()
    write_audio(output, result.samples, result.sample_rate, subtype=subtype, overwrite=overwrite)
    if plot is not None:
        plot_spectrograms(result, plot, overwrite=overwrite)
    if not quiet:
        secs = len(result.samples) / result.sample_rate
        click.echo(f"wrote {output} ({secs:.2f} s at {result.sample_rate} Hz, {time.perf_counter() - t0:.1f} s)",
                   err=True)
