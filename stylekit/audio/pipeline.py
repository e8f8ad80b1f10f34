"""Audio style transfer end to end: :func:`stylize_audio`, driven by one frozen :class:`AudioStyleConfig`.

file -> :mod:`.io` (the content's rate and channels, loudness) -> :mod:`.transform` (log spectrogram of the
channels' mean, network scale) -> :mod:`.networks` (features) -> :mod:`stylekit.losses` -> :mod:`stylekit.optim`
-> :mod:`.transform` (mel to linear, Griffin-Lim from the content's phase) -> :mod:`.stereo` (the content's
channels and image) -> :mod:`.io` (length, loudness, peaks).

A run is four steps, each its own function: the style side (:func:`style_targets`, computed once and
reusable by every content of a batch), the criterion (:class:`_Criterion`), the chunk loop
(:func:`_optimise_chunks`) and the way back to sound (:func:`_reconstruct`). The CLI and the batch runner
read their defaults from :class:`AudioStyleConfig`, so the command line and the Python API cannot disagree.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._device import resolve_device
from ..errors import ConfigError, StylizeInterrupted
from ..losses.audio import BandStatsLoss, EnvelopeLoss, RhythmLoss, RowStatsLoss, SpeechEnvelopeLoss, speech_bands
from . import io as aio
from .config import AudioStyleConfig, SpectrogramConfig
from .networks import VGG19_CONTENT_LAYERS, VGG19_ROW_LAYERS, VGG19_STYLE_LAYERS, RandomConvBank
from .transform import (LinearToMel, MelProjection, chunk_spans, content_phase, linear_magnitude, log_spectrogram,
                        overlap_add, row_frequencies, to_audio, to_network, to_spectrogram)

__all__ = ["AudioStyleConfig", "AudioResult", "AudioInput", "AudioStyleTargets", "stylize_audio", "style_targets",
           "read_input", "build_config", "plot_spectrograms", "check_progress", "fine_prior"]

_SPEC_FIELDS = {f.name for f in dataclasses.fields(SpectrogramConfig)}
_TOP_FIELDS = {f.name for f in dataclasses.fields(AudioStyleConfig)} - {"spectrogram"}
#: Settings that only turn a finished spectrogram back into sound: the style targets do not depend on them.
_INVERSE_ONLY = ("griffin_lim_iters", "momentum", "mel_inverse")
#: The most style frames kept for the inversion's fine structure (evenly spaced over longer styles).
_FINE_FRAMES = 2048


def build_config(config: AudioStyleConfig | None = None, **options) -> AudioStyleConfig:
    """Return ``config`` (default :class:`AudioStyleConfig`) with ``options`` replaced.

    Options may name fields of :class:`AudioStyleConfig` or of its :class:`SpectrogramConfig` (e.g.
    ``kind="linear"``, ``n_mels=96``); ``None`` values are ignored. Unknown names raise :class:`ConfigError`.

    Examples
    --------
    >>> build_config(n_mels=96, style_weight=10).spectrogram.n_mels
    96
    >>> build_config(colour=1)
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: ...
    """
    config = config or AudioStyleConfig()
    opts = {k: v for k, v in options.items() if v is not None}
    unknown = set(opts) - _SPEC_FIELDS - _TOP_FIELDS
    if unknown:
        raise ConfigError(f"unknown audio option(s): {', '.join(sorted(unknown))}")
    spec = {k: v for k, v in opts.items() if k in _SPEC_FIELDS}
    top = {k: v for k, v in opts.items() if k in _TOP_FIELDS}
    if spec:
        top["spectrogram"] = dataclasses.replace(config.spectrogram, **spec)
    return dataclasses.replace(config, **top) if top else config


@dataclass(frozen=True)
class AudioResult:
    """What :func:`stylize_audio` returns (the same shape as :class:`stylekit.image.pipeline.ImageResult`).

    Attributes
    ----------
    data : np.ndarray
        Shape (n,) for a mono content, (n, channels) for a multi-channel one; float32 in [-1, 1]: exactly the
        content's number of samples and channels at the content's own rate, at the content's loudness, peaks
        just under full scale (:data:`.io.PEAK_CEILING`).
    sample_rate : int
        The content's rate (Hz).
    config : AudioStyleConfig
    interrupted : bool
        True when the run was stopped early (the result is the best so far; unfinished chunks keep the
        content).
    working : np.ndarray
        The mono result at the working rate (``spectrogram.sample_rate``), before the channels are restored
        and before resampling back, shape (m,).
    content, styles : AudioClip, list of AudioClip
        The prepared inputs (for plots and measurements).
    spectrogram : SpectrogramConfig
        The spectrogram settings the run worked at: ``config.spectrogram`` moved to the content's rate with
        ``full_band`` (:func:`run_config`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> result = stylize_audio(voice, [rain], steps=2)
    >>> result.interrupted, result.data.dtype
    (False, dtype('float32'))
    """

    data: np.ndarray = field(repr=False)
    sample_rate: int
    config: AudioStyleConfig
    interrupted: bool = False
    working: np.ndarray | None = field(default=None, repr=False)
    content: aio.AudioClip | None = field(default=None, repr=False)
    styles: list = field(default_factory=list, repr=False)
    spectrogram: SpectrogramConfig | None = None     # the settings the run worked at (see run_config)

    @property
    def samples(self) -> np.ndarray:
        """The same as :attr:`data`."""
        return self.data

    @property
    def seconds(self) -> float:
        """The duration in seconds."""
        return len(self.data) / self.sample_rate

    def settings(self) -> dict:
        """The settings as plain data, as written into the output file."""
        return self.config.to_dict()


@dataclass(frozen=True)
class AudioInput:
    """A sound read and prepared once: the working clip, and the rate, length and loudness of the original
    (which the output of a content matches).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> isinstance(read_input(voice, AudioStyleConfig()), AudioInput)
    True
    """

    clip: aio.AudioClip
    rate: int
    length: int
    rms: float


@dataclass
class AudioStyleTargets:
    """The style side of a run, computed once by :func:`style_targets` and reusable by every content.

    Picklable plain data on the CPU. ``settings`` are the config fields the targets depend on (spectrogram,
    network, seed, chunking, loudness, blend, and which optional terms need them): :func:`stylize_audio`
    refuses targets made with other values.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> targets = style_targets([rain])
    >>> len(targets.spectrograms), targets.blend
    (1, [1.0])
    """

    clips: list = field(repr=False)
    settings: dict
    spectrograms: list = field(repr=False)     # network-scale style spectrograms, one per style chunk
    features: list = field(repr=False)         # their style-layer features
    rhythm: list = field(repr=False)           # their time-axis features for the rhythm term ({} when off)
    blend: list = field(repr=False)            # weight of each chunk: style weight x chunk length
    start: torch.Tensor | None = field(default=None, repr=False)   # the first style, for init="style"
    sources: list = field(default_factory=list, repr=False)  # the styles at their own rates, for other rates
    by_rate: dict = field(default_factory=dict, repr=False)  # the same targets made at other working rates
    fine: torch.Tensor | None = field(default=None, repr=False)  # style frames' linear magnitudes (K, S) ...
    fine_keys: torch.Tensor | None = field(default=None, repr=False)  # ... and their spectral shapes (F, S)


def run_config(config: AudioStyleConfig, rate: int) -> AudioStyleConfig:
    """The config a run actually works with for a content at ``rate`` Hz: with ``full_band`` the spectrogram
    settings moved to that rate (:meth:`SpectrogramConfig.at_rate`), else ``config`` itself."""
    if not config.full_band:
        return config
    return dataclasses.replace(config, spectrogram=config.spectrogram.at_rate(rate))


def _clip_rms(clip: aio.AudioClip) -> float:
    """The RMS of the original input (over all its channels when the clip keeps them)."""
    y = clip.samples if clip.channels is None else clip.channels
    return float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) / clip.gain


def read_input(x, config: AudioStyleConfig, what: str = "content", *, rate: int | None = None) -> AudioInput:
    """A path, an :class:`~.io.AudioClip` or ``(samples, sample_rate)``, prepared at a working rate and the
    config's loudness (an :class:`~stylekit.errors.InputError` naming the file when it is unusable).

    The working rate is ``rate`` when given, else the content's own rate for a ``"content"`` with
    ``config.full_band``, else the config's. A content keeps its channels (:attr:`.io.AudioClip.channels`);
    a style is mixed down to mono and must hold at least one analysis window (``n_fft`` samples at the
    working rate).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> audio = read_input(voice, AudioStyleConfig())
    >>> audio.rate, audio.length
    (22050, 11025)
    """
    content = what == "content"
    native = rate is None and content and config.full_band
    sr = None if native else int(rate or config.spectrogram.sample_rate)
    if isinstance(x, AudioInput):
        if sr is not None and x.clip.sample_rate != sr:
            raise ConfigError(f"{x.clip.source}: clip is at {x.clip.sample_rate} Hz, the run works at {sr} Hz")
        return x
    if isinstance(x, aio.AudioClip):
        if sr is None or x.sample_rate == sr:
            return AudioInput(x, x.sample_rate, len(x.samples), _clip_rms(x))
        data, x_rate, source = x.samples, x.sample_rate, x.source    # a clip at another rate: resampled
    elif isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], (str, os.PathLike)):
        data, x_rate = np.asarray(x[0]), int(x[1])
        source = f"<{what} array>"
    elif isinstance(x, (str, os.PathLike)):
        source = str(x)
        data, x_rate = aio.read_audio(Path(x))
    else:
        raise ConfigError(f"{what}: expected a path, an AudioClip or (samples, sample_rate), got {type(x).__name__}")
    usable = aio.RATE_RANGE[0] <= (sr or x_rate) <= aio.RATE_RANGE[1]    # else prepare_audio says why not
    n_fft = run_config(config, sr or x_rate).spectrogram.n_fft if usable else 1
    clip = aio.prepare_audio(data, x_rate, target_rate=sr, target_rms=config.target_rms, source=source,
                             min_samples=n_fft // 2 + 1 if content else n_fft, keep_channels=content,
                             window_name="its FFT" if content else "one analysis window")
    return AudioInput(clip, x_rate, int(np.asarray(data).shape[0]), _clip_rms(clip))


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
    from .networks import FrequencyBands, spectrogram_vgg19

    layers = sorted(set(VGG19_CONTENT_LAYERS) | set(VGG19_STYLE_LAYERS))
    net = spectrogram_vgg19(layers)
    n = config.vgg_bands
    if n <= 1:
        return net, dict(VGG19_CONTENT_LAYERS), dict(VGG19_STYLE_LAYERS)
    # a Gram per frequency band (FrequencyBands): the style's statistics stay where they are in frequency
    style = {f"{k}@{b}": w / n for k, w in VGG19_STYLE_LAYERS.items() for b in range(n)}
    return FrequencyBands(net, list(VGG19_STYLE_LAYERS), n_bands=n), dict(VGG19_CONTENT_LAYERS), style


def _min_frames(config: AudioStyleConfig) -> int:
    return max(config.widths) if config.network == "random" else 16


def _linear_vars(config: AudioStyleConfig) -> bool:
    """Whether the optimiser changes the linear log-magnitude (seen by the losses through its log-mel)."""
    return config.spectrogram.kind == "mel" and config.variables == "linear"


def _var_config(config: AudioStyleConfig) -> SpectrogramConfig:
    """The spectrogram config of the optimiser's variables."""
    cfg = config.spectrogram
    return dataclasses.replace(cfg, kind="linear") if _linear_vars(config) else cfg


def _tile_frames(z: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat a (1, 1, F, T) spectrogram in time (alternately reversed, so there are no jumps) to n frames."""
    reps = [z, z.flip(-1)] * (n // (2 * z.shape[-1]) + 1)
    return torch.cat(reps, dim=-1)[..., :n].clone()


#: Weight of the speech-envelope term at ``words=1`` (it is ``words`` times this; the style-side terms are
#: ``1 - words`` times theirs). Chosen with benchmarks/bench_audio.py so that the default ``words=0.5`` keeps
#: the words on the example pairs while the texture still moves.
_SPEECH_SCALE = 10.0
#: STOI's segment: intelligibility is judged on the band envelopes over 384 ms.
_SPEECH_SEGMENT_S = 0.384


# How far above the loudest level of the inputs a result's band may go (6 dB of magnitude).
_CEILING_NEPERS = math.log(2.0)


def _ceiling(style_max: torch.Tensor, content: torch.Tensor, span: float) -> torch.Tensor:
    """Per-band ceiling (F, 1) of a result, network scale: the loudest the band is in the styles or this content
    chunk, plus 6 dB.

    L-BFGS without a line search can leave a few cells of the optimised spectrogram far above any level either
    input has (a short low-frequency burst). Such a cell becomes a thump, and the peak limit of the output then
    turns the whole result down. No texture or content statistic asks for it, so it is cut to the ceiling
    before phase reconstruction.
    """
    return (torch.maximum(style_max, content[0, 0].amax(-1)) + _CEILING_NEPERS / span)[:, None]


def _pad_frames(z: torch.Tensor, need: int) -> torch.Tensor:
    """Reflect-pad a (1, 1, F, T) spectrogram in time to at least ``need`` frames (very short inputs)."""
    while z.shape[-1] < need:
        pad = min(need - z.shape[-1], z.shape[-1] - 1)
        z = torch.nn.functional.pad(z[0], (0, pad), mode="reflect")[None] if pad > 0 else z.repeat(1, 1, 1, 2)
    return z


@contextlib.contextmanager
def _threads(n: int | None):
    """Torch CPU threads ``n`` inside the block (None keeps torch's setting), restored after."""
    threads = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- the style side -----------------------------------------------------------------------------------------

def _target_settings(config: AudioStyleConfig) -> dict:
    """The config fields :class:`AudioStyleTargets` depend on, as plain data."""
    spec = {k: v for k, v in config.spectrogram.to_dict().items() if k not in _INVERSE_ONLY}
    return {"spectrogram": spec, "network": config.network, "widths": list(config.widths),
            "channels": config.channels, "vgg_bands": config.vgg_bands, "seed": config.seed,
            "chunk_seconds": config.chunk_seconds,
            "overlap_seconds": config.overlap_seconds, "target_rms": config.target_rms,
            "style_blend": None if config.style_blend is None else list(config.style_blend),
            "rhythm": config.rhythm_weight > 0,
            "start": _var_config(config).kind if config.init == "style" else None}


def _style_list(styles) -> list:
    if isinstance(styles, (list, tuple)) and not (len(styles) == 2 and isinstance(styles[0], np.ndarray)):
        return list(styles)
    return [styles]


def _style_clips(styles, config: AudioStyleConfig) -> list:
    """The styles as mono clips at ``config``'s working rate."""
    clips = [read_input(s, config, "style", rate=config.spectrogram.sample_rate).clip for s in _style_list(styles)]
    if not clips:
        raise ConfigError("at least one style is needed")
    blend = config.style_blend
    if blend is not None and len(blend) != len(clips):
        raise ConfigError(f"style-blend has {len(blend)} weights for {len(clips)} styles")
    return clips


def _make_targets(clips: list, config: AudioStyleConfig, extractor: nn.Module, content_layers, style_layers,
                  device: torch.device) -> AudioStyleTargets:
    """Every style, cut into chunks no longer than a content chunk (bounded memory), weighted by style weight x
    chunk length. Grams are normalised by the number of positions, so the blend is the Gram of the whole style."""
    cfg, sr = config.spectrogram, config.spectrogram.sample_rate
    chunk, overlap = int(round(config.chunk_seconds * sr)), int(round(config.overlap_seconds * sr))
    weights = config.style_blend or (1.0,) * len(clips)
    need = _min_frames(config)
    t = AudioStyleTargets(list(clips), _target_settings(config), [], [], [], [])
    fine, keys = [], []
    for clip, w in zip(clips, weights):
        samples = torch.from_numpy(np.ascontiguousarray(clip.samples, dtype=np.float32)).to(device)
        for a, b in chunk_spans(len(samples), chunk=chunk, overlap=0 if len(samples) <= chunk else overlap):
            mag = linear_magnitude(samples[a:b], cfg)     # one STFT for the spectrogram and the fine structure
            z = to_network(log_spectrogram(mag, cfg)[None, None], cfg)
            if cfg.kind == "mel":
                keys.append(_shape_keys(z[0, 0]).cpu())
                fine.append(mag.cpu())
            z = _pad_frames(z, need)
            with torch.no_grad():
                f = extractor(z)
            t.spectrograms.append(z.cpu())
            t.features.append({k: f[k].cpu() for k in style_layers})
            t.rhythm.append({k: f[k].cpu() for k in content_layers if f[k].dim() == 3}
                            if config.rhythm_weight else {})
            t.blend.append(float(w) * (b - a) / len(samples))
    if fine:
        t.fine, t.fine_keys = torch.cat(fine, -1), torch.cat(keys, -1)
        if t.fine.shape[1] > _FINE_FRAMES:      # bounded memory and matching time for long styles
            keep = torch.linspace(0, t.fine.shape[1] - 1, _FINE_FRAMES).round().long()
            t.fine, t.fine_keys = t.fine[:, keep].contiguous(), t.fine_keys[:, keep].contiguous()
    if config.init == "style":     # the first style in the optimiser's variables
        first = torch.from_numpy(np.ascontiguousarray(clips[0].samples, dtype=np.float32)).to(device)
        vcfg = _var_config(config)
        t.start = to_network(to_spectrogram(first, vcfg)[None, None], vcfg).cpu()
    return t


def style_targets(styles, *, config: AudioStyleConfig | None = None, **options) -> AudioStyleTargets:
    """Read the style sounds and compute everything a run takes from them (features, band statistics, rhythm).

    Pass the result to :func:`stylize_audio` in place of the styles: every content run with the same
    style-side settings (see :class:`AudioStyleTargets`) then reuses it, which is what a batch does. ``options``
    override fields of ``config`` as in :func:`stylize_audio`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> targets = style_targets([rain], steps=2)                  # made once ...
    >>> results = [stylize_audio(voice, targets, steps=2) for _ in range(2)]   # ... for several contents
    >>> len(results)
    2
    """
    config = build_config(config, **options)
    device = resolve_device(config.device)
    with _threads(config.threads):
        clips = _style_clips(styles, config)
        extractor, content_layers, style_layers = _extractor_and_layers(config)
        t = _make_targets(clips, config, extractor.to(device), content_layers, style_layers, device)
        if config.full_band:     # each content works at its own rate: keep the styles' full band for that
            t.sources = [read_input(s, config, "style", rate=_own_rate(s)).clip for s in _style_list(styles)]
        return t


def _own_rate(x) -> int:
    """The sample rate a style input has as it is (a file's, a clip's or an array's)."""
    if isinstance(x, AudioInput):
        return x.clip.sample_rate
    if isinstance(x, aio.AudioClip):
        return x.sample_rate
    if isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], (str, os.PathLike)):
        return int(x[1])
    import soundfile as sf

    try:
        return int(sf.info(str(x)).samplerate)
    except Exception:    # not a soundfile format (MP3): read it whole
        return aio.read_audio(Path(x))[1]


def _targets_for(targets: AudioStyleTargets, user: AudioStyleConfig, config: AudioStyleConfig) -> AudioStyleTargets:
    """``targets`` for a run with ``config`` (``user``'s config at the content's rate): as they are when they were
    made at its working rate; else, when they were made with ``user``'s config and ``full_band``, made again from
    their styles at that rate (once per rate, kept in ``targets.by_rate``)."""
    if targets.settings == _target_settings(config):
        return targets
    if not (config.full_band and targets.sources) or targets.settings != _target_settings(user):
        _check_targets(targets, config)
    sr = config.spectrogram.sample_rate
    if sr not in targets.by_rate:
        device = resolve_device(config.device)
        extractor, content_layers, style_layers = _extractor_and_layers(config)
        clips = [read_input(c, config, "style", rate=sr).clip for c in targets.sources]
        targets.by_rate[sr] = _make_targets(clips, config, extractor.to(device), content_layers, style_layers,
                                            device)
    return targets.by_rate[sr]


def _check_targets(targets: AudioStyleTargets, config: AudioStyleConfig) -> None:
    want = _target_settings(config)
    if targets.settings != want:
        differ = sorted(k for k in want if targets.settings.get(k) != want[k])
        raise ConfigError(f"the style targets were made with other settings ({', '.join(differ)}); make them "
                          "with this run's config")


# --- the criterion ------------------------------------------------------------------------------------------

class _Criterion:
    """The objective of one chunk: feature content + Gram style, band statistics, loudness contour, rhythm.

    It sees the optimiser's variables through ``project`` (:class:`~.transform.MelProjection` or
    :class:`~.transform.LinearToMel`) when there is one; :meth:`set_chunk` gives it each chunk's content.
    """

    def __init__(self, config: AudioStyleConfig, targets: AudioStyleTargets, extractor: nn.Module, content_layers,
                 style_layers, device: torch.device) -> None:
        from ..losses import StyleTransferLoss

        cfg = config.spectrogram
        self.config, self.device = config, device
        self.span = math.log(cfg.ref) - math.log(cfg.log_floor)
        self.tap = _Tap(extractor)
        texture = 1.0 - config.words
        self.weights = {"bands": config.band_weight * texture, "envelope": config.envelope_weight,
                        "rhythm": config.rhythm_weight * texture, "speech": config.words * _SPEECH_SCALE,
                        "rows": config.vgg_row_weight * texture}
        self.loss = StyleTransferLoss(self.tap, content_layers=content_layers, style_layers=style_layers,
                                      content_weight=config.content_weight, style_weight=config.style_weight * texture,
                                      tv_weight=0.0, normalize=True).to(device)
        self.loss.set_style_features([{k: v.to(device) for k, v in f.items()} for f in targets.features],
                                     blend=targets.blend)
        style_z = [z.to(device) for z in targets.spectrograms]
        self.bands = BandStatsLoss(style_z, blend=targets.blend).to(device) if self.weights["bands"] > 0 else None
        # The loudest each band gets in any style (network scale): with the content's, the ceiling of the result.
        self.style_ceiling = torch.stack([z[0, 0].amax(-1) for z in style_z]).amax(0)
        self.fine = None if targets.fine is None else (targets.fine.to(device), targets.fine_keys.to(device))
        self.rhythm = self._rhythm(targets) if config.rhythm_weight > 0 else None
        # vgg19 only: per-row feature statistics, so the image network's style term knows the frequency axis
        self.rows = self._rows(style_z, targets.blend) if config.network == "vgg19" and self.weights["rows"] else None
        self.envelope: EnvelopeLoss | None = None
        self.speech: SpeechEnvelopeLoss | None = None
        self.speech_basis = speech_bands(torch.from_numpy(row_frequencies(cfg))).to(device)
        if _linear_vars(config):
            self.project = LinearToMel(cfg).to(device)
        else:
            self.project = MelProjection(cfg).to(device) if cfg.kind == "mel" and config.project else None

    def _rhythm(self, targets: AudioStyleTargets) -> RhythmLoss:
        config = self.config
        if config.network != "random":
            raise ConfigError("the rhythm term needs the 'random' network (time must be the last feature axis)")
        cfg = config.spectrogram
        feats = [{k: v.to(self.device) for k, v in f.items()} for f in targets.rhythm]
        return RhythmLoss(feats, max_lag=max(1, int(config.rhythm_max_lag * cfg.sample_rate / cfg.hop_length)),
                          blend=targets.blend).to(self.device)

    def _rows(self, style_z: list, blend) -> RowStatsLoss:
        """The per-row feature statistics term (vgg19), from the style spectrograms (the targets keep only the
        style layers' bands)."""
        with torch.no_grad():
            feats = [{k: v for k, v in self.tap.inner(z).items() if k in VGG19_ROW_LAYERS} for z in style_z]
        return RowStatsLoss(feats, layers=VGG19_ROW_LAYERS, blend=blend).to(self.device)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x) if self.project is not None else x

    def set_chunk(self, z: torch.Tensor) -> None:
        """Use ``z`` (a content chunk, network scale) as the content of the following evaluations."""
        self.loss.set_content(z)
        if self.bands is not None:
            self.bands.set_content(z)
        if self.rows is not None:
            with torch.no_grad():
                self.rows.set_content(self.tap(z))
        floor = self.config.spectrogram.log_floor
        self.envelope = (EnvelopeLoss(z, span=self.span, offset=math.log(floor)).to(self.device)
                         if self.config.envelope_weight > 0 else None)
        cfg = self.config.spectrogram
        segment = max(2, round(_SPEECH_SEGMENT_S * cfg.sample_rate / cfg.hop_length))
        self.speech = (SpeechEnvelopeLoss(z, basis=self.speech_basis, span=self.span, offset=math.log(floor),
                                          segment=segment).to(self.device)
                       if self.weights["speech"] > 0 and len(self.speech_basis) else None)

    def __call__(self, x: torch.Tensor):
        x = self.prepare(x)
        total, terms = self.loss(x)
        extra = (("bands", self.bands, lambda t: t(x)), ("envelope", self.envelope, lambda t: t(x)),
                 ("rhythm", self.rhythm, lambda t: t(self.tap.last)), ("speech", self.speech, lambda t: t(x)),
                 ("rows", self.rows, lambda t: t(self.tap.last)))
        for name, term, apply in extra:
            if term is not None:
                v = self.weights[name] * apply(term)
                terms = {**terms, name: v}
                total = total + v
        return total, terms


# --- the chunks -----------------------------------------------------------------------------------------------

@dataclass
class _Progress:
    """Where a run is: the next chunk, the finished chunks' results, the optimiser state of the next chunk."""

    chunk: int
    done: list
    state: dict | None

    def as_state(self) -> dict:
        """The plain data :func:`stylize_audio` continues from (its ``resume``)."""
        return {"chunk": self.chunk, "done": [d.detach().cpu() for d in self.done], "state": self.state}


def check_progress(resume, n_chunks: int | None = None) -> tuple[int, list, dict | None]:
    """Validate a resume dict's structure (types only; shapes are checked against each chunk); a
    :class:`ConfigError` when it is not one :func:`stylize_audio` wrote.

    Examples
    --------
    >>> check_progress({"chunk": 0, "done": [], "state": None})
    (0, [], None)
    >>> check_progress({"step": 3})
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: the checkpoint's progress is not valid for these inputs and settings
    """
    bad = ConfigError("the checkpoint's progress is not valid for these inputs and settings")
    if not isinstance(resume, dict) or not {"chunk", "done", "state"} <= set(resume):
        raise bad
    chunk, done, state = resume["chunk"], resume["done"], resume["state"]
    if not isinstance(chunk, int) or not isinstance(done, list) or chunk < 0 or len(done) != chunk:
        raise bad
    if n_chunks is not None and chunk > n_chunks:
        raise bad
    if any(not torch.is_tensor(z) or z.dim() != 4 for z in done):
        raise bad
    if state is not None and (not isinstance(state, dict) or not torch.is_tensor(state.get("x"))
                              or not torch.is_tensor(state.get("best")) or "step" not in state):
        raise bad
    return chunk, done, state


def _chunk_inputs(y_dev: torch.Tensor, spans, config: AudioStyleConfig) -> tuple[list, list]:
    """The network-scale content spectrogram of every chunk (padded), and the same in the optimiser's
    variables (the linear spectrogram when ``variables="linear"``)."""
    cfg, var_cfg, need = config.spectrogram, _var_config(config), _min_frames(config)
    contents, starts = [], []
    for a, b in spans:
        contents.append(_pad_frames(to_network(to_spectrogram(y_dev[a:b], cfg)[None, None], cfg), need))
        starts.append(_pad_frames(to_network(to_spectrogram(y_dev[a:b], var_cfg)[None, None], var_cfg), need)
                      if _linear_vars(config) else contents[-1])
    return contents, starts


def _check_shapes(progress: _Progress, starts: list) -> None:
    bad = ConfigError("the checkpoint's progress is not valid for these inputs and settings")
    if progress.chunk > len(starts):
        raise bad
    for i, z in enumerate(progress.done):
        if tuple(z.shape) != tuple(starts[i].shape):
            raise bad
    if progress.state is not None and (progress.chunk >= len(starts)
                                       or tuple(progress.state["x"].shape) != tuple(starts[progress.chunk].shape)):
        raise bad


def _x0(config: AudioStyleConfig, v: torch.Tensor, i: int, start: torch.Tensor | None) -> torch.Tensor:
    """Where chunk ``i`` starts: the content, the first style tiled, or seeded noise."""
    if config.init == "content":
        return v.clone()
    if config.init == "style":
        return _tile_frames(start, v.shape[-1])
    g = torch.Generator().manual_seed(config.seed * 100_003 + i)    # per chunk, so resume can redo it
    return (v.mean() + v.std() * torch.randn(v.shape, generator=g).to(v.device)).clamp(0, 1)


def _chunk_callback(callback: Callable | None, i: int, n: int) -> Callable | None:
    if callback is None:
        return None
    return lambda p: callback(dataclasses.replace(p, scale=i + 1, n_scales=n))


def _optimise_chunks(crit: _Criterion, contents: list, starts: list, progress: _Progress, start,
                     callback: Callable | None) -> torch.Tensor | None:
    """Optimise every chunk from ``progress.chunk`` on (chunks are independent; each keeps its own content
    target), appending each result to ``progress.done``. On Ctrl-C, ``progress`` is left where the run stopped
    and the interrupted chunk's best iterate is returned (None when it had none); None when all are done."""
    from ..optim import OptimizationInterrupted, optimize

    config, first = crit.config, progress.chunk
    for i in range(first, len(starts)):
        state = progress.state if i == first else None
        try:
            crit.set_chunk(contents[i])
            x0 = _x0(config, starts[i], i, start)
            progress.done.append(optimize(x0, crit, optimizer=config.optimizer, steps=config.steps, clamp=(0.0, 1.0),
                                          history=min(config.history, config.steps),
                                          callback=_chunk_callback(callback, i, len(starts)), state=state))
        except OptimizationInterrupted as e:
            progress.chunk, progress.state = i, e.state
            return e.best
        except KeyboardInterrupt:
            progress.chunk, progress.state = i, state
            return None
    progress.chunk, progress.state = len(starts), None
    return None


# --- back to sound --------------------------------------------------------------------------------------------

def _shape_keys(z: torch.Tensor) -> torch.Tensor:
    """Each frame's spectral shape: the network-scale log-mel (F, T) less its mean over bands, unit length."""
    k = z - z.mean(0, keepdim=True)
    return k / k.norm(dim=0, keepdim=True).clamp(min=1e-9)


def fine_prior(fine: tuple | None, z: torch.Tensor) -> torch.Tensor | None:
    """The linear magnitude (K, T) whose fine structure the inversion gives each frame of ``z`` (network-scale
    log-mel, (F, T)): the style frame with the most similar spectral shape, so the partials of the style's note
    or chord that sounds most like the result's frame come back, not an average over all its notes. ``fine`` is
    (:attr:`AudioStyleTargets.fine`, :attr:`AudioStyleTargets.fine_keys`), or None (no prior).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(22050) / 22050
    >>> chord = (sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) / 3, 22050)
    >>> targets = style_targets(chord)
    >>> z = targets.spectrograms[0][0, 0, :, :5]                 # five frames of the style itself
    >>> prior = fine_prior((targets.fine, targets.fine_keys), z)
    >>> tuple(prior.shape), bool(torch.equal(prior[:, 2], targets.fine[:, 2]))   # a frame finds itself
    ((1025, 5), True)
    """
    if fine is None:
        return None
    frames, keys = fine
    best = torch.cat([(_shape_keys(z[:, a:a + 512]).T @ keys).argmax(1) for a in range(0, z.shape[1], 512)])
    return frames[:, best]


def _chunk_audio(crit: _Criterion, z: torch.Tensor, optimised: bool, content: torch.Tensor, seg: torch.Tensor,
                 n_chunks: int) -> np.ndarray:
    """One chunk's spectrogram (network scale, optimiser's variables) as sound: mel to linear with the style's
    fine structure (``mel_inverse="prior"``), then Griffin-Lim from the content's phase."""
    config = crit.config
    cfg, linear = config.spectrogram, _linear_vars(config)
    with torch.no_grad():
        if optimised:
            z = z if linear else crit.prepare(z)
            if not linear:
                z = torch.minimum(z, _ceiling(crit.style_ceiling, content, crit.span))
        z = z.clamp(0.0, 1.0)
    n = len(seg)
    z = z[0, 0, :, :cfg.n_frames(n)]
    shaped = optimised and not linear and cfg.mel_inverse == "prior"
    piece = to_audio(z * crit.span + math.log(cfg.log_floor), _var_config(config), length=n,
                     init_phase=content_phase(seg, cfg), seed=config.seed,
                     prior=fine_prior(crit.fine, z) if shaped else None)
    if n_chunks > 1:
        # Each chunk is optimised on its own, and its overall level is free (the band statistics and the
        # loudness contour ignore it), so chunks would come out at different levels. Each takes its content
        # chunk's RMS; the whole is matched to the content afterwards.
        got = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        want = float(seg.double().pow(2).mean().sqrt())
        piece = (piece * (want / got)).astype(np.float32) if got > 0 else piece
    return piece


def _reconstruct(crit: _Criterion, y_dev: torch.Tensor, spans, contents: list, starts: list, done: list,
                 stopped_at: int | None, best: torch.Tensor | None) -> np.ndarray:
    """The working-rate result: finished chunks, the interrupted chunk's best iterate, the content for the rest,
    cross-faded."""
    pieces = []
    for i, (a, b) in enumerate(spans):
        if i < len(done):
            z = done[i]
        elif i == stopped_at and best is not None:
            z = best.to(crit.device)
        else:
            z = starts[i]
        pieces.append(_chunk_audio(crit, z, z is not starts[i], contents[i], y_dev[a:b], len(spans)))
    return overlap_add(pieces, spans, len(y_dev)) if len(spans) > 1 else pieces[0]


def _to_output(working: np.ndarray, content: AudioInput, cfg: SpectrogramConfig) -> np.ndarray:
    """The working-rate mono result with the content's channels (:func:`.stereo.upmix`), at the content's own
    rate, length and loudness."""
    sr, out = cfg.sample_rate, working
    if content.clip.channels is not None:
        from .stereo import upmix

        out = upmix(working, content.clip.channels, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    if content.rate != sr:
        import librosa

        out = librosa.resample(out.astype(np.float64).T, orig_sr=sr, target_sr=content.rate, res_type="soxr_hq").T
    return aio.finalize_output(out, length=content.length, target_rms=content.rms, source=content.clip.source)


# --- the run ----------------------------------------------------------------------------------------------------

def stylize_audio(content, styles, *, config: AudioStyleConfig | None = None, callback: Callable | None = None,
                  resume: dict | None = None, style_weights: Sequence[float] | None = None,
                  **options) -> AudioResult:
    """Put the texture of one or several style sounds onto a content sound.

    Parameters
    ----------
    content : path, AudioClip, AudioInput or (samples, sample_rate)
        The sound whose words / rhythm are kept. Samples are (n,) or (n, channels); the result has its rate
        and channels.
    styles : path, AudioClip, (samples, sample_rate), a list of these, or :class:`AudioStyleTargets`
        The sound(s) whose texture is transferred; any length (shorter than the content is fine). The targets
        of :func:`style_targets` are reused as they are (a batch computes them once).
    config : AudioStyleConfig, optional
        Defaults to :class:`AudioStyleConfig()`; keyword ``options`` override its fields or those of its
        spectrogram config (see :func:`build_config`).
    callback : callable, optional
        Receives a :class:`stylekit.optim.Progress` after each step; ``progress.scale`` / ``n_scales`` are the
        chunk number and the number of chunks.
    resume : dict, optional
        The ``state`` of a :class:`~stylekit.errors.StylizeInterrupted` from a run with the same inputs and
        config: finished chunks are reused and the interrupted chunk continues from its optimiser state, so the
        result is the one an uninterrupted run gives (to float rounding).
    style_weights : sequence of float, optional
        The same as ``style_blend`` (the blend weights of several styles; default equal).

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
        On KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM to it): its ``result`` is the best result so far
        (finished chunks stylized, the interrupted chunk at its best iterate, later chunks the content), None
        when the interrupt came before the first step or while turning spectrograms back into sound; its
        ``state`` is what ``resume`` continues from.

    Notes
    -----
    Grinstein et al. (2018) and Ulyanov & Lebedev (2016) optimise a linear log-magnitude STFT; the default
    here is log-mel (the user's design), inverted to a linear magnitude by the pseudo-inverse, which for
    these settings agrees with librosa's NNLS solution and is much cheaper. Style statistics of several
    styles (and of the chunks of a long style) are blended by averaging Gram matrices, weighted by
    ``style_blend`` and by each chunk's length.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> result = stylize_audio(voice, [rain], steps=2)
    >>> result.data.shape, result.sample_rate
    ((11025,), 22050)
    """
    if style_weights is not None:
        options["style_blend"] = tuple(float(w) for w in style_weights)
    config = build_config(config, **options)
    device = resolve_device(config.device)
    with _threads(config.threads):
        return _stylize(content, styles, config, callback, device, resume)


def _setup(styles, config: AudioStyleConfig, device: torch.device) -> tuple[_Criterion, AudioStyleTargets]:
    """The criterion of the run, from the style targets (computed here unless ``styles`` already is them)."""
    torch.manual_seed(config.seed)
    extractor, content_layers, style_layers = _extractor_and_layers(config)
    extractor = extractor.to(device)
    if isinstance(styles, AudioStyleTargets):
        targets = styles
    else:
        targets = _make_targets(styles, config, extractor, content_layers, style_layers, device)
    return _Criterion(config, targets, extractor, content_layers, style_layers, device), targets


def _stylize(content, styles, config: AudioStyleConfig, callback, device: torch.device,
             resume: dict | None) -> AudioResult:
    user_config = config
    source = read_input(content, config, "content")
    config = run_config(user_config, source.clip.sample_rate)
    if isinstance(styles, AudioStyleTargets):
        styles = _targets_for(styles, user_config, config)
    else:
        styles = _style_clips(styles, config)
    sr = config.spectrogram.sample_rate
    y = source.clip.samples
    spans = chunk_spans(len(y), chunk=int(round(config.chunk_seconds * sr)),
                        overlap=int(round(config.overlap_seconds * sr)))
    progress = _Progress(*check_progress(resume, len(spans))) if resume is not None else _Progress(0, [], None)
    progress.done = list(progress.done)
    best = stopped_at = None
    try:      # Ctrl-C while setting up or turning spectrograms into sound: nothing to show yet
        crit, targets = _setup(styles, config, device)
        y_dev = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
        contents, starts = _chunk_inputs(y_dev, spans, config)
        _check_shapes(progress, starts)
        progress.done = [z.to(device) for z in progress.done]
        start = targets.start.to(device) if targets.start is not None else None
        best = _optimise_chunks(crit, contents, starts, progress, start, callback)
        stopped_at = progress.chunk if progress.chunk < len(spans) else None
        working = _reconstruct(crit, y_dev, spans, contents, starts, progress.done, stopped_at, best)
        out = _to_output(working, source, config.spectrogram)
    except KeyboardInterrupt:
        raise StylizeInterrupted(None, progress.as_state()) from None
    result = AudioResult(out, source.rate, user_config, stopped_at is not None, working.astype(np.float32),
                         source.clip, list(targets.clips), config.spectrogram)
    if stopped_at is not None:
        raise StylizeInterrupted(result, progress.as_state())
    return result


def _hz_ticks(ax, cfg: SpectrogramConfig) -> None:
    """Label a spectrogram's rows (one per mel band or STFT bin, evenly spaced) in Hz, as ``librosa.display``
    labels a mel axis: ticks at round frequencies, placed where those frequencies fall among the rows."""
    freqs = row_frequencies(cfg)
    rows = np.arange(len(freqs)) + 0.5
    hz, pos = [], []
    for f in (0, 125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000):
        p = float(np.interp(f, freqs, rows))
        if freqs[0] <= f <= freqs[-1] and (not pos or p - pos[-1] >= 0.07 * len(freqs)):   # labels apart
            hz.append(f)
            pos.append(p)
    ax.set_yticks(pos, [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in hz])
    ax.set_ylabel("frequency (Hz)")


def plot_spectrograms(result: AudioResult, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a PNG of the content, style(s) and result log spectrograms side by side (atomically).

    The panels share one colour scale (dB re full scale) so levels are comparable.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = (np.sin(2 * np.pi * 220 * np.arange(11025) / 22050) * np.hanning(11025), 22050)   # 0.5 s
    >>> rain = (rng.standard_normal(11025) * 0.1, 22050)
    >>> import tempfile
    >>> from pathlib import Path
    >>> result = stylize_audio(voice, [rain], steps=1)
    >>> plot_spectrograms(result, Path(tempfile.mkdtemp()) / "spectrograms.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_write

    cfg = result.spectrogram or result.config.spectrogram
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
        _hz_ticks(ax, cfg)
    fig.colorbar(im, ax=axes, label="dB re full scale")

    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=100, format="png")

    try:
        return atomic_write(path, write, overwrite=overwrite)
    finally:
        plt.close(fig)
