"""Audio style transfer end to end: :func:`stylize_audio`, driven by one frozen :class:`AudioStyleConfig`.

file -> :mod:`.io` (mono, 22,050 Hz, loudness) -> :mod:`.transform` (log spectrogram, network scale)
-> :mod:`.networks` (features) -> :mod:`stylekit.losses` -> :mod:`stylekit.optim` -> :mod:`.transform`
(mel to linear, Griffin-Lim from the content's phase) -> :mod:`.io` (length, loudness, peaks).

The CLI (:mod:`.cli`) reads its defaults from :class:`AudioStyleConfig`, so the command line and the Python
API cannot disagree.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from . import io as aio
from .networks import NETWORKS, BandStatsLoss, EnvelopeLoss, VGG19_CONTENT_LAYERS, VGG19_STYLE_LAYERS, RandomConvBank, RhythmLoss
from .transform import LinearToMel, MelProjection, SpectrogramConfig, chunk_spans, content_phase, overlap_add, to_audio, to_network, \
    to_spectrogram

__all__ = ["AudioStyleConfig", "AudioResult", "StylizeInterrupted", "stylize_audio", "build_config",
           "plot_spectrograms", "resolve_device", "config_to_dict", "config_from_dict"]

_INITS = ("content", "noise", "style")
_DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; ``"cuda"`` without a CUDA device -> :class:`ConfigError`."""
    if name not in _DEVICES:
        raise ConfigError(f"device must be one of {', '.join(_DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available (torch.cuda.is_available() "
                          "is False); use --device cpu or auto")
    return torch.device(name)


@dataclass(frozen=True)
class AudioStyleConfig:
    """All options of audio style transfer (the CLI's defaults are these).

    Attributes
    ----------
    spectrogram : SpectrogramConfig
        The representation and its inverse (log-mel, 224 bands, n_fft 2048, hop 512 by default).
    network : {"random", "vgg19"}
        Feature network (see :mod:`.networks`); ``"random"`` is the default (see docs/audio.md for why).
    widths, channels : tuple of int, int
        The random bank's filter widths (frames) and filters per width.
    content_weight, style_weight : float
        Weights of the (relative) content and Gram style terms of the feature network.
    band_weight : float
        Weight of the band-statistics term (:class:`.networks.BandStatsLoss`: per-band mean, std and
        band-band correlation of the log spectrogram, 1 at the content, 0 at the style).
    envelope_weight : float
        Weight of the loudness-contour term (:class:`.networks.EnvelopeLoss`, 1 - correlation).
    rhythm_weight : float
        Weight of the autocorrelation (rhythm) term; 0 (off) by default.
    rhythm_max_lag : float
        Longest lag compared by the rhythm term, in seconds.
    variables : {"mel", "linear"}
        With ``kind="mel"``: what the optimiser changes. ``"mel"`` (default): the log-mel itself (through
        :class:`.transform.MelProjection` when ``project``), inverted by ``mel_inverse``; ``"linear"``
        (experimental): the linear-frequency log-magnitude, whose log-mel (:class:`.transform.LinearToMel`)
        every loss sees and which goes to Griffin-Lim as it is. It keeps partials sharper, but L-BFGS without
        a line search is unstable on its eight times more variables (see docs/audio.md). Ignored for
        ``kind="linear"``.
    project : bool
        Optimise log-mel spectra through :class:`.transform.MelProjection`, so every iterate is a mel
        spectrum that a linear magnitude can have (mel only; default True).
    init : {"content", "noise", "style"}
        Start from the content spectrogram (default, as Grinstein et al. 2018), from seeded noise, or from
        the first style's spectrogram repeated (alternately reversed) to the content's length.
    optimizer : {"lbfgs", "adam"}
    steps : int
        Optimisation steps per chunk.
    history : int
        L-BFGS history (pairs kept); its memory is ``2 * history * n`` floats for ``n`` variables.
    seed : int
        Seeds the random bank, the noise start and Griffin-Lim's random phase (where used).
    chunk_seconds, overlap_seconds : float
        Inputs longer than ``chunk_seconds`` are processed in chunks overlapping by ``overlap_seconds``
        and cross-faded; memory is bounded by the chunk size.
    target_rms : float
        Working loudness of content and style (RMS); the output is matched back to the content's loudness.
    device : {"auto", "cpu", "cuda"}
        Where the spectrograms, the feature network, the losses, the optimisation and Griffin-Lim run;
        ``"auto"`` (default) picks CUDA when available. The result does not depend on it beyond float rounding.
    threads : int, optional
        Torch CPU threads during the run (restored afterwards); None keeps torch's setting. Default 1: on the
        shared 2-core development machine one thread ran a step in 0.3-0.4 s and two threads in 4-10 s
        (torch's thread pool spin-waits for cores held by other processes).
    """

    spectrogram: SpectrogramConfig = SpectrogramConfig()
    network: str = "random"
    widths: tuple[int, ...] = (3, 7, 15, 31)
    channels: int = 128
    content_weight: float = 1.0
    style_weight: float = 30.0
    band_weight: float = 3.0
    envelope_weight: float = 1.0
    rhythm_weight: float = 0.0
    rhythm_max_lag: float = 1.0
    variables: str = "mel"
    project: bool = True
    init: str = "content"
    optimizer: str = "lbfgs"
    steps: int = 50
    history: int = 100
    seed: int = 0
    chunk_seconds: float = 20.0
    overlap_seconds: float = 1.0
    target_rms: float = 0.1
    device: str = "auto"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.init not in _INITS:
            raise ConfigError(f"init must be one of {', '.join(_INITS)}, got {self.init!r}")
        for name in ("content_weight", "style_weight", "band_weight", "envelope_weight", "rhythm_weight"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {v}")
        if self.history < 1:
            raise ConfigError(f"history must be >= 1, got {self.history}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not self.chunk_seconds > 2 * self.overlap_seconds or self.overlap_seconds <= 0:
            raise ConfigError(f"chunk_seconds ({self.chunk_seconds}) must exceed twice overlap_seconds "
                              f"({self.overlap_seconds}), which must be > 0")
        if not 0 < self.target_rms < 1:
            raise ConfigError(f"target_rms must be in (0, 1), got {self.target_rms}")
        if self.variables not in ("linear", "mel"):
            raise ConfigError(f"variables must be 'linear' or 'mel', got {self.variables!r}")
        if self.device not in _DEVICES:
            raise ConfigError(f"device must be one of {', '.join(_DEVICES)}, got {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.rhythm_max_lag <= 0:
            raise ConfigError(f"rhythm_max_lag must be > 0, got {self.rhythm_max_lag}")


_SPEC_FIELDS = {f.name for f in dataclasses.fields(SpectrogramConfig) if not f.name.startswith("_")}
_TOP_FIELDS = {f.name for f in dataclasses.fields(AudioStyleConfig)} - {"spectrogram"}


def build_config(config: AudioStyleConfig | None = None, **options) -> AudioStyleConfig:
    """Return ``config`` (default :class:`AudioStyleConfig`) with ``options`` replaced.

    Options may name fields of :class:`AudioStyleConfig` or of its :class:`SpectrogramConfig` (e.g.
    ``kind="linear"``, ``n_mels=96``); ``None`` values are ignored (so CLI options left unset keep the
    defaults). Unknown names raise :class:`ConfigError`.
    """
    config = config or AudioStyleConfig()
    opts = {k: v for k, v in options.items() if v is not None}
    unknown = set(opts) - _SPEC_FIELDS - _TOP_FIELDS
    if unknown:
        raise ConfigError(f"unknown audio option(s): {', '.join(sorted(unknown))}")
    spec = {k: v for k, v in opts.items() if k in _SPEC_FIELDS}
    top = {k: v for k, v in opts.items() if k in _TOP_FIELDS}
    if "widths" in top:
        top["widths"] = tuple(int(w) for w in top["widths"])
    if spec:
        top["spectrogram"] = dataclasses.replace(config.spectrogram, **spec)
    return dataclasses.replace(config, **top) if top else config


@dataclass(frozen=True)
class AudioResult:
    """What :func:`stylize_audio` returns.

    Attributes
    ----------
    samples : np.ndarray
        Shape (n,), float32 in [-1, 1]: exactly the content's number of samples at the content's own rate,
        at the content's loudness, peaks at most about -0.2 dBFS.
    sample_rate : int
        The content's rate (Hz).
    working : np.ndarray
        The result at ``config.spectrogram.sample_rate`` (before resampling back), shape (m,).
    content, styles : AudioClip, list of AudioClip
        The prepared inputs (for plots and measurements).
    config : AudioStyleConfig
    interrupted : bool
        True when the run was stopped early (the result is the best so far; unfinished chunks keep the
        content).
    """

    samples: np.ndarray
    sample_rate: int
    working: np.ndarray
    content: aio.AudioClip
    styles: list
    config: AudioStyleConfig
    interrupted: bool = False


class StylizeInterrupted(KeyboardInterrupt):
    """Raised by :func:`stylize_audio` on Ctrl-C / SIGTERM.

    Attributes
    ----------
    result : AudioResult or None
        The best result so far (finished chunks stylized, the interrupted chunk at its best iterate, later
        chunks the content); None when the interrupt came before the first step or while the finished
        spectrograms were being turned back into sound.
    progress : dict
        What :func:`stylize_audio` needs to continue (its ``resume`` argument): ``{"chunk": int, "done":
        [tensor (1, 1, F, T_i), ...], "state": optimiser state or None}``, all tensors on the CPU, loadable with
        ``torch.load(..., weights_only=True)``.
    """

    def __init__(self, result: AudioResult | None, progress: dict) -> None:
        super().__init__("interrupted")
        self.result = result
        self.progress = progress


def config_to_dict(config: AudioStyleConfig) -> dict:
    """The config as plain data (for checkpoints and metadata); :func:`config_from_dict` inverts it."""
    d = dataclasses.asdict(config)
    d["widths"] = list(config.widths)
    return d


def config_from_dict(data: dict) -> AudioStyleConfig:
    """Rebuild an :class:`AudioStyleConfig` from :func:`config_to_dict`'s output (validated)."""
    if not isinstance(data, dict) or not isinstance(data.get("spectrogram"), dict):
        raise ConfigError("not an audio style config")
    spec = data["spectrogram"]
    unknown = (set(data) - _TOP_FIELDS - {"spectrogram"}) | (set(spec) - _SPEC_FIELDS)
    if unknown:
        raise ConfigError(f"unknown audio option(s): {', '.join(sorted(map(str, unknown)))}")
    top = {k: v for k, v in data.items() if k != "spectrogram"}
    if "widths" in top:
        top["widths"] = tuple(int(w) for w in top["widths"])
    try:
        return AudioStyleConfig(spectrogram=SpectrogramConfig(**spec), **top)
    except TypeError as e:
        raise ConfigError(f"not an audio style config ({e})") from None


@dataclass
class _Original:
    rate: int
    length: int
    rms: float


def _load(x, config: AudioStyleConfig, what: str) -> tuple[aio.AudioClip, _Original]:
    sr = config.spectrogram.sample_rate
    if isinstance(x, aio.AudioClip):
        if x.sample_rate != sr:
            raise ConfigError(f"{x.source}: clip is at {x.sample_rate} Hz, the config works at {sr} Hz")
        rms = float(np.sqrt(np.mean(x.samples.astype(np.float64) ** 2)))
        return x, _Original(sr, len(x.samples), rms / x.gain)
    if isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], (str, os.PathLike)):
        data, rate = np.asarray(x[0]), int(x[1])
        source = f"<{what} array>"
    elif isinstance(x, (str, os.PathLike)):
        source = str(x)
        data, rate = aio._read_raw(Path(x))
    else:
        raise ConfigError(f"{what}: expected a path, an AudioClip or (samples, sample_rate), got {type(x).__name__}")
    clip = aio.prepare_audio(data, rate, target_rate=sr, target_rms=config.target_rms, source=source)
    return clip, _Original(rate, int(np.asarray(data).shape[0]), config.target_rms / clip.gain)


class _Tap(nn.Module):
    """Wraps an extractor and remembers its last output, so the rhythm term reuses the loss's forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.layers = tuple(inner.layers)
        self.last: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.last = self.inner(x)
        return self.last


def _extractor_and_layers(config: AudioStyleConfig) -> tuple[nn.Module, dict[str, float], dict[str, float]]:
    if config.network == "random":
        net = RandomConvBank(config.spectrogram.n_bins, widths=config.widths, channels=config.channels,
                             seed=config.seed)
        w = 1.0 / len(net.layers)
        return net, {k: w for k in net.layers}, {k: w for k in net.layers}
    from .networks import spectrogram_vgg19

    layers = sorted(set(VGG19_CONTENT_LAYERS) | set(VGG19_STYLE_LAYERS))
    return spectrogram_vgg19(layers), dict(VGG19_CONTENT_LAYERS), dict(VGG19_STYLE_LAYERS)


def _min_frames(config: AudioStyleConfig) -> int:
    return max(config.widths) if config.network == "random" else 16


def _tile_frames(z: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat a (1, 1, F, T) spectrogram in time (alternately reversed, so there are no jumps) to n frames."""
    reps = [z, z.flip(-1)] * (n // (2 * z.shape[-1]) + 1)
    return torch.cat(reps, dim=-1)[..., :n].clone()


# How far above the loudest level of the inputs a result's band may go (6 dB of magnitude).
_CEILING_NEPERS = math.log(2.0)


def _ceiling(style_max: torch.Tensor, content: torch.Tensor, span: float) -> torch.Tensor:
    """Per-band ceiling (F, 1) of a result, network scale: the loudest the band is in the styles or this content
    chunk, plus 6 dB.

    L-BFGS without a line search can leave a few cells of the optimised spectrogram far above any level either
    input has (measured: a one-frame low-frequency burst about 19 dB above the rest of a 60 s result). Such a
    cell becomes a thump, and the peak limit of the output then turns the whole result down (there by 12 dB).
    No texture or content statistic asks for it, so it is cut to the ceiling before phase reconstruction.
    """
    return (torch.maximum(style_max, content[0, 0].amax(-1)) + _CEILING_NEPERS / span)[:, None]


def _pad_frames(z: torch.Tensor, need: int) -> torch.Tensor:
    """Reflect-pad a (1, 1, F, T) spectrogram in time to at least ``need`` frames (very short inputs)."""
    while z.shape[-1] < need:
        pad = min(need - z.shape[-1], z.shape[-1] - 1)
        z = torch.nn.functional.pad(z[0], (0, pad), mode="reflect")[None] if pad > 0 else z.repeat(1, 1, 1, 2)
    return z


def stylize_audio(content, styles, *, config: AudioStyleConfig | None = None,
                  style_weights: Sequence[float] | None = None,
                  callback: Callable | None = None, resume: dict | None = None, style_cache: dict | None = None,
                  **options) -> AudioResult:
    """Put the texture of one or several style sounds onto a content sound.

    Parameters
    ----------
    content : path, AudioClip or (samples, sample_rate)
        The sound whose words / rhythm are kept. Samples are (n,) or (n, channels).
    styles : path, AudioClip, (samples, sample_rate), or a list of these
        The sound(s) whose texture is transferred; any length (shorter than the content is fine).
    config : AudioStyleConfig, optional
        Defaults to :class:`AudioStyleConfig()`.
    style_weights : sequence of float, optional
        Blend weights of several styles (default equal).
    callback : callable, optional
        Receives a :class:`stylekit.optim.Progress` after each step; ``progress.scale`` / ``n_scales`` are the
        chunk number and the number of chunks.
    resume : dict, optional
        :attr:`StylizeInterrupted.progress` of an interrupted run with the same inputs and config: finished
        chunks are reused and the interrupted chunk continues from its optimiser state, so the result is the
        one an uninterrupted run gives (to float rounding).
    style_cache : dict, optional
        Shared between calls with the same styles (a batch job): the style targets (features, band statistics,
        rhythm) are computed once per set of settings and reused. One cache must not mix different styles.
    **options
        Field overrides of ``config`` or of its spectrogram config (see :func:`build_config`).

    Returns
    -------
    AudioResult

    Raises
    ------
    InputError
        An input is unreadable, too short, silent or non-finite (the message names it).
    ConfigError
        An option is invalid, CUDA was asked for and is missing, or ``resume`` does not fit these inputs.
    StylizeInterrupted
        On KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM to it), carrying the best result so far and the
        progress to resume from.

    Notes
    -----
    Grinstein et al. (2018) and Ulyanov & Lebedev (2016) optimise a linear log-magnitude STFT; the default
    here is log-mel (the user's design), inverted to a linear magnitude by the pseudo-inverse, which for
    these settings equals librosa's NNLS solution to 1e-7 and is ten times faster. Style statistics of
    several styles (and of the chunks of a long style) are blended by averaging Gram matrices, weighted by
    ``style_weights`` and by each chunk's length.
    """
    config = build_config(config, **options)
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _stylize(content, styles, config, style_weights, callback, device, resume, style_cache)
    finally:
        torch.set_num_threads(threads)


def _check_resume(resume: dict, n_chunks: int) -> tuple[int, list, dict | None]:
    """Validate a resume dict's structure (types only; shapes are checked against each chunk)."""
    bad = ConfigError("the checkpoint's progress is not valid for these inputs and settings")
    if not isinstance(resume, dict) or not {"chunk", "done", "state"} <= set(resume):
        raise bad
    chunk, done, state = resume["chunk"], resume["done"], resume["state"]
    if not isinstance(chunk, int) or not isinstance(done, list) or not 0 <= chunk <= n_chunks or len(done) != chunk:
        raise bad
    if any(not torch.is_tensor(z) or z.dim() != 4 for z in done):
        raise bad
    if state is not None and (not isinstance(state, dict) or not torch.is_tensor(state.get("x"))
                              or not torch.is_tensor(state.get("best")) or "step" not in state):
        raise bad
    return chunk, done, state


def _stylize(content, styles, config: AudioStyleConfig, style_weights, callback, device: torch.device,
             resume: dict | None, style_cache: dict | None = None) -> AudioResult:
    from ..losses import StyleTransferLoss
    from ..optim import OptimizationInterrupted, optimize

    cfg = config.spectrogram
    content_clip, orig = _load(content, config, "content")
    style_list = list(styles) if isinstance(styles, (list, tuple)) and not (
        len(styles) == 2 and isinstance(styles[0], np.ndarray)) else [styles]
    if not style_list:
        raise ConfigError("at least one style is needed")
    style_clips = [_load(s, config, "style")[0] for s in style_list]
    if style_weights is not None and len(style_weights) != len(style_clips):
        raise ConfigError(f"got {len(style_weights)} style weights for {len(style_clips)} styles")
    sweights = [1.0] * len(style_clips) if style_weights is None else [float(w) for w in style_weights]
    if any(not (math.isfinite(w) and w >= 0) for w in sweights) or sum(sweights) <= 0:
        raise ConfigError(f"style weights must be >= 0 and not all zero, got {list(sweights)}")

    sr = cfg.sample_rate
    chunk = int(round(config.chunk_seconds * sr))
    overlap = int(round(config.overlap_seconds * sr))
    y = content_clip.samples
    spans = chunk_spans(len(y), chunk=chunk, overlap=overlap)
    first, done, state = (0, [], None) if resume is None else _check_resume(resume, len(spans))
    done = list(done)

    def interrupted(result: AudioResult | None, at: int, st: dict | None) -> StylizeInterrupted:
        return StylizeInterrupted(result, {"chunk": at, "done": [d.detach().cpu() for d in done], "state": st})

    try:
        torch.manual_seed(config.seed)
        extractor, content_layers, style_layers = _extractor_and_layers(config)
        extractor = extractor.to(device)
        tap = _Tap(extractor)
        loss = StyleTransferLoss(tap, content_layers=content_layers, style_layers=style_layers,
                                 content_weight=config.content_weight, style_weight=config.style_weight,
                                 tv_weight=0.0, normalize=True).to(device)
        need = _min_frames(config)

        # Style targets: every style, cut into chunks no longer than a content chunk (bounded memory), blended
        # by style weight x chunk length. Grams are normalised by the number of positions, so this is the Gram
        # of the whole style.
        # Every setting can change the targets (the random network is seeded), so the whole config keys them.
        key = (repr(config), str(device), tuple(sweights))
        cached = style_cache.get(key) if style_cache is not None else None
        if cached is not None:
            feats, blend, rhythm_feats, style_z = cached
        else:
            feats, blend, rhythm_feats, style_z = [], [], [], []
            for clip, w in zip(style_clips, sweights):
                samples = torch.from_numpy(np.ascontiguousarray(clip.samples, dtype=np.float32)).to(device)
                sspans = chunk_spans(len(samples), chunk=chunk, overlap=0 if len(samples) <= chunk else overlap)
                for a, b in sspans:
                    z = _pad_frames(to_network(to_spectrogram(samples[a:b], cfg)[None, None], cfg), need)
                    style_z.append(z)
                    with torch.no_grad():
                        f = extractor(z)
                    feats.append({k: f[k] for k in style_layers})
                    rhythm_feats.append({k: f[k] for k in content_layers if f[k].dim() == 3}
                                        if config.rhythm_weight else {})
                    blend.append(w * (b - a) / len(samples))
            if style_cache is not None:
                style_cache[key] = (feats, blend, rhythm_feats, style_z)
        loss.set_style_features(feats, blend=blend)
        style_starts = []
        if config.init == "style":     # the first style in the optimiser's variables
            first_style = torch.from_numpy(np.ascontiguousarray(style_clips[0].samples, dtype=np.float32)).to(device)
            vcfg = dataclasses.replace(cfg, kind="linear") if cfg.kind == "mel" and config.variables == "linear" else cfg
            style_starts.append(to_network(to_spectrogram(first_style, vcfg)[None, None], vcfg))
        bands = BandStatsLoss(style_z, blend=blend).to(device) if config.band_weight > 0 else None
        # The loudest each band gets in any style (network scale): with the content's, the ceiling of the result.
        style_ceiling = torch.stack([z[0, 0].amax(-1) for z in style_z]).amax(0)
        del style_z
        rhythm = None
        if config.rhythm_weight > 0:
            if config.network != "random":
                raise ConfigError("the rhythm term needs the 'random' network (time must be the last feature axis)")
            rhythm = RhythmLoss(rhythm_feats, max_lag=max(1, int(config.rhythm_max_lag * sr / cfg.hop_length)),
                                blend=blend).to(device)
    except KeyboardInterrupt:
        raise interrupted(None, first, state) from None

    span = math.log(cfg.ref) - math.log(cfg.log_floor)
    envelope: EnvelopeLoss | None = None
    # What the optimiser changes: the linear log-magnitude (seen by the losses through its log-mel), or the
    # log-mel itself (optionally kept realisable by MelProjection), or the linear spectrogram of kind="linear".
    linear_vars = cfg.kind == "mel" and config.variables == "linear"
    var_cfg = dataclasses.replace(cfg, kind="linear") if linear_vars else cfg
    if linear_vars:
        project = LinearToMel(cfg).to(device)
    else:
        project = MelProjection(cfg).to(device) if cfg.kind == "mel" and config.project else None

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return project(x) if project is not None else x

    def criterion(x: torch.Tensor):
        x = prepare(x)
        total, terms = loss(x)
        if bands is not None:
            b = config.band_weight * bands(x)
            terms = {**terms, "bands": b}
            total = total + b
        if envelope is not None:
            e = config.envelope_weight * envelope(x)
            terms = {**terms, "envelope": e}
            total = total + e
        if rhythm is not None:
            r = config.rhythm_weight * rhythm(tap.last)
            terms = {**terms, "rhythm": r}
            total = total + r
        return total, terms

    y_dev = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    contents = []   # network-scale content spectrogram of every chunk (padded), on the device
    starts = []     # the same in the optimiser's variables (the linear spectrogram when linear_vars)
    for a, b in spans:
        contents.append(_pad_frames(to_network(to_spectrogram(y_dev[a:b], cfg)[None, None], cfg), need))
        starts.append(_pad_frames(to_network(to_spectrogram(y_dev[a:b], var_cfg)[None, None], var_cfg), need)
                      if linear_vars else contents[-1])
    for i, z in enumerate(done):
        if tuple(z.shape) != tuple(starts[i].shape):
            raise ConfigError("the checkpoint's progress is not valid for these inputs and settings")
    if state is not None and tuple(state["x"].shape) != tuple(starts[first].shape):
        raise ConfigError("the checkpoint's progress is not valid for these inputs and settings")
    done = [z.to(device) for z in done]

    # Optimise every chunk (chunks are independent; each keeps its own content targets).
    stop: tuple[int, torch.Tensor, dict | None] | None = None    # (chunk, best so far, optimiser state)
    for i in range(first, len(spans)):
        z = contents[i]
        try:
            loss.set_content(z)
            if bands is not None:
                bands.set_content(z)
            envelope = (EnvelopeLoss(z, span=span, offset=math.log(cfg.log_floor)).to(device)
                        if config.envelope_weight > 0 else None)
            v = starts[i]
            if config.init == "content":
                x0 = v.clone()
            elif config.init == "style":
                x0 = _tile_frames(style_starts[0], v.shape[-1])
            else:
                g = torch.Generator().manual_seed(config.seed * 100_003 + i)    # per chunk, so resume can redo it
                x0 = (v.mean() + v.std() * torch.randn(v.shape, generator=g).to(device)).clamp(0, 1)
            cb = None
            if callback is not None:
                def cb(p, _i=i):
                    return callback(dataclasses.replace(p, scale=_i + 1, n_scales=len(spans)))
            done.append(optimize(x0, criterion, optimizer=config.optimizer, steps=config.steps, clamp=(0.0, 1.0),
                                 history=min(config.history, config.steps), callback=cb,
                                 state=state if i == first else None))
        except OptimizationInterrupted as e:
            stop = (i, e.best, e.state)
            break
        except KeyboardInterrupt:
            stop = (i, None, state if i == first else None)
            break

    # Back to sound: finished chunks, the interrupted chunk's best iterate, the content for the rest.
    try:
        pieces: list[np.ndarray] = []
        for i, (a, b) in enumerate(spans):
            seg = y_dev[a:b]
            if i < len(done):
                z = done[i]
            elif stop is not None and i == stop[0] and stop[1] is not None:
                z = stop[1].to(device)
            else:
                z = starts[i]
            with torch.no_grad():
                if z is not starts[i]:
                    z = z if linear_vars else prepare(z)
                    if not linear_vars:
                        z = torch.minimum(z, _ceiling(style_ceiling, contents[i], span))
                z = z.clamp(0.0, 1.0)
            n_frames = cfg.n_frames(b - a)
            out_spec = z[0, 0, :, :n_frames] * span + math.log(cfg.log_floor)
            piece = to_audio(out_spec, var_cfg, length=b - a, init_phase=content_phase(seg, cfg), seed=config.seed)
            if len(spans) > 1:
                # Each chunk is optimised on its own, and its overall level is free (the band statistics and the
                # loudness contour ignore it), so chunks came out several dB apart (measured: 9 dB between the
                # chunks of a 60 s voice). Each takes its content chunk's RMS; the whole is matched below.
                got = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
                want = float(seg.double().pow(2).mean().sqrt())
                piece = (piece * (want / got)).astype(np.float32) if got > 0 else piece
            pieces.append(piece)
        working = overlap_add(pieces, spans, len(y)) if len(spans) > 1 else pieces[0]
        out = working
        if orig.rate != sr:
            import librosa

            out = librosa.resample(working.astype(np.float64), orig_sr=sr, target_sr=orig.rate, res_type="soxr_hq")
        out = aio.finalize_output(out, length=orig.length, target_rms=orig.rms, source=content_clip.source)
    except KeyboardInterrupt:
        if stop is None:
            raise interrupted(None, len(done), None) from None
        raise interrupted(None, stop[0], stop[2]) from None
    result = AudioResult(out, orig.rate, working.astype(np.float32), content_clip, style_clips, config,
                         stop is not None)
    if stop is not None:
        raise interrupted(result, stop[0], stop[2])
    return result


def plot_spectrograms(result: AudioResult, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a PNG of the content, style(s) and result log spectrograms side by side (atomically).

    The panels share one colour scale (dB re full scale) so levels are comparable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_write

    cfg = result.config.spectrogram
    panels = [("content", result.content.samples)]
    panels += [(f"style {i + 1}" if len(result.styles) > 1 else "style", s.samples) for i, s in enumerate(result.styles)]
    panels.append(("result", aio.normalize_loudness(result.working, target_rms=result.config.target_rms)))
    specs = [(name, 20 / math.log(10) * to_spectrogram(y, cfg)) for name, y in panels]
    vmax = max(float(s.max()) for _, s in specs)
    fig, axes = plt.subplots(1, len(specs), figsize=(4 * len(specs), 3.2), constrained_layout=True)
    hop_s = cfg.hop_length / cfg.sample_rate
    for ax, (name, s) in zip(axes, specs):
        im = ax.imshow(s, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                       extent=(0, s.shape[1] * hop_s, 0, s.shape[0]))
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mel band" if cfg.kind == "mel" else "STFT bin")
    fig.colorbar(im, ax=axes, label="dB re full scale")

    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=100, format="png")

    try:
        return atomic_write(path, write, overwrite=overwrite)
    finally:
        plt.close(fig)
