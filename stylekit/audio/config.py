"""The settings of an audio style transfer: :class:`AudioStyleConfig` and its :class:`SpectrogramConfig`.

Plain Python (no torch, numpy or librosa), so the command line builds its options and ``--help`` from these
fields without loading anything heavy. Every field the command line exposes is declared once, here, with its
help text (:func:`stylekit._options.option`); the command, :func:`stylekit.stylize_audio` and the batch
manifests read the same defaults.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import click

from .._device import DEVICE_METAVAR, check_device
from .._options import option, parse_floats
from .._validate import TORCH_SEEDS, check_float, check_int, check_threads, fold_seed
from ..errors import ConfigError

__all__ = ["AudioStyleConfig", "SpectrogramConfig", "NETWORKS", "INITS", "KINDS", "MEL_INVERSES", "VARIABLES",
           "OPTIMIZERS"]

NETWORKS = ("random", "vgg19")
INITS = ("content", "noise", "style")
KINDS = ("mel", "linear")
MEL_INVERSES = ("nnls", "pinv", "prior")
VARIABLES = ("linear", "mel")
OPTIMIZERS = ("lbfgs", "adam")

_SPEC = "Spectrogram"

def _from_dict(cls, data: Mapping, what: str, convert: Mapping | None = None):
    """``cls(**data)`` with unknown keys and wrong types reported as :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"not an {what}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown audio option(s): {', '.join(sorted(map(str, unknown)))}")
    d = dict(data)
    try:
        for k, fn in (convert or {}).items():
            if d.get(k) is not None:
                d[k] = fn(d[k])
        return cls(**d)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"not an {what} ({e})") from None


@dataclass(frozen=True)
class SpectrogramConfig:
    """Everything that defines the spectrogram representation and its inverse (:mod:`.transform`).

    Attributes
    ----------
    kind : {"mel", "linear"}
        Log-mel (default) or linear log-magnitude STFT.
    sample_rate : int
        Working rate in Hz (inputs are resampled to it).
    n_fft : int
        FFT size (= window length, hann).
    hop_length : int
        Hop in samples.
    n_mels : int
        Mel bands (``kind="mel"``). 224 by default, not the usual 128: the inverse spreads each band's energy
        evenly over its STFT bins, so narrower bands keep a style's partials sharper (docs/audio.md, "Mel
        bands"). At most as many as the STFT can tell apart (about 300 at n_fft 2048, 144 at 1024).
    fmin, fmax : float
        Mel band edges in Hz; ``fmax=None`` means ``sample_rate / 2``.
    log_floor : float
        Added to the magnitude before the log (about -100 dB re full scale); bounds the log and its gradient.
    ref : float
        Magnitude mapped to 1 on the network scale.
    mel_inverse : {"prior", "pinv", "nnls"}
        Mel to linear magnitude: non-negative multiplicative updates started, frame by frame, from the most
        similar style frame (its fine structure; :func:`~.transform.prior_inverse`), the clipped
        pseudo-inverse, or librosa's NNLS. Without a style (a plain :func:`~.transform.to_audio`), ``"prior"``
        is the pseudo-inverse.
    griffin_lim_iters : int
        Fast Griffin-Lim iterations in :func:`~.transform.to_audio`.
    momentum : float
        Fast Griffin-Lim momentum.

    Examples
    --------
    >>> config = SpectrogramConfig(n_fft=256, hop_length=64, n_mels=32)
    >>> config.n_bins, config.n_frames(2205)
    (32, 35)
    """

    kind: str = option("mel", type=click.Choice(KINDS), group=_SPEC,
                       help="Representation: log-mel or linear log-magnitude STFT.")
    sample_rate: int = option(22050, cli=False, help="Working rate in Hz.")
    n_fft: int = option(2048, type=int, group=_SPEC, help="FFT size.")
    hop_length: int = option(512, type=int, group=_SPEC, help="STFT hop (samples).")
    n_mels: int = option(224, type=int, group=_SPEC, help="Mel bands.")
    fmin: float = option(0.0, type=float, group=_SPEC, help="Lowest mel frequency (Hz).")
    fmax: float | None = option(None, type=float, group=_SPEC, help="Highest mel frequency (Hz).",
                                show=lambda v: "Nyquist" if v is None else f"{v:g}")
    log_floor: float = option(1e-5, type=float, group=_SPEC,
                              help="Added to the magnitude before the log (full scale = 1); sets how deep the "
                                   "quietest detail reaches.")
    ref: float = option(1.0, cli=False, help="Magnitude mapped to 1 on the network scale.")
    mel_inverse: str = option("prior", type=click.Choice(["prior", "pinv", "nnls"]), group=_SPEC,
                              help="Mel to linear inversion: 'prior' gives each band the fine structure of the "
                                   "most similar style frame (its partials); 'pinv' spreads the band evenly.")
    griffin_lim_iters: int = option(32, type=int, group=_SPEC, help="Fast Griffin-Lim iterations.")
    momentum: float = option(0.99, cli=False, help="Fast Griffin-Lim momentum.")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"spectrogram kind must be one of {KINDS}, got {self.kind!r}")
        if self.mel_inverse not in MEL_INVERSES:
            raise ConfigError(f"mel_inverse must be one of {MEL_INVERSES}, got {self.mel_inverse!r}")
        self._check_bounds()
        if self.sample_rate <= 0 or self.n_fft < 16 or not 0 < self.hop_length <= self.n_fft // 2:
            raise ConfigError(f"invalid STFT settings: sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
                              f"hop_length={self.hop_length} (need hop_length <= n_fft / 2)")
        if self.kind == "mel":
            top = self.sample_rate / 2 if self.fmax is None else self.fmax
            if not 0 <= self.fmin < top <= self.sample_rate / 2 or self.n_mels < 1:
                raise ConfigError(f"invalid mel settings: n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}")
        if not 0 < self.log_floor < self.ref:
            raise ConfigError(f"need 0 < log_floor < ref, got log_floor={self.log_floor}, ref={self.ref}")
        if self.griffin_lim_iters < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("griffin_lim_iters must be >= 0 and momentum in [0, 1)")

    def _check_bounds(self) -> None:
        # Types and upper bounds, for the options and for a checkpoint's stored settings alike: an edited
        # n_fft or griffin_lim_iters would otherwise exhaust memory or run for days.
        check_int("sample_rate", self.sample_rate, 1, 384_000)
        check_int("n_fft", self.n_fft, 16, 65_536)
        check_int("hop_length", self.hop_length, 1, 65_536)
        check_int("n_mels", self.n_mels, 1, 4096)
        check_int("griffin_lim_iters", self.griffin_lim_iters, 0, 10_000)
        for name in ("fmin", "log_floor", "ref", "momentum"):
            check_float(name, getattr(self, name), -1e9, 1e9)
        if self.fmax is not None:
            check_float("fmax", self.fmax, -1e9, 1e9)

    @property
    def n_bins(self) -> int:
        """Rows of the representation: ``n_mels`` or ``n_fft // 2 + 1``."""
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1

    def at_rate(self, rate: int) -> SpectrogramConfig:
        """The same analysis at another sample rate: the same window and hop durations, and, when ``fmax`` is
        the Nyquist frequency, as many more mel bands as the wider range needs at the same resolution.

        ``n_fft``, ``hop_length`` and ``n_mels`` are read as given at :attr:`sample_rate`; the result works at
        ``rate`` (the content's own rate with ``full_band``), so every frame covers the same time and the mel
        bands below the old Nyquist frequency stay the same width.
        """
        rate = int(rate)
        if rate == self.sample_rate:
            return self
        k = rate / self.sample_rate
        n_fft = max(16, 2 * round(self.n_fft * k / 2))
        hop = max(1, min(n_fft // 2, round(self.hop_length * k)))
        n_mels = self.n_mels
        if self.kind == "mel" and self.fmax is None:
            n_mels = max(1, round(self.n_mels * (_slaney_mel(rate / 2) - _slaney_mel(self.fmin))
                                  / (_slaney_mel(self.sample_rate / 2) - _slaney_mel(self.fmin))))
        return dataclasses.replace(self, sample_rate=rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of ``n_samples`` (centred STFT)."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict:
        """The settings as plain JSON-ready data; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SpectrogramConfig:
        """Rebuild a config from :meth:`to_dict`'s output (validated; unknown keys are a :class:`ConfigError`)."""
        return _from_dict(cls, data, "audio spectrogram config")


def _slaney_mel(hz: float) -> float:
    """Hz to mel on the Slaney scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    if hz < 1000.0:
        return 3.0 * hz / 200.0
    return 15.0 + 27.0 * math.log(hz / 1000.0) / math.log(6.4)


def _style_blend(text: str) -> tuple[float, ...]:
    return parse_floats(text, "--style-blend")


@dataclass(frozen=True)
class AudioStyleConfig:
    """Every setting of an audio style transfer; the CLI's defaults are read from here.

    Attributes
    ----------
    spectrogram : SpectrogramConfig
        The representation and its inverse (log-mel, 224 bands, n_fft 2048, hop 512 by default).
    network : {"random", "vgg19"}
        Feature network (see :mod:`.networks`); ``"random"`` is the default (see docs/audio.md for why).
    widths, channels : tuple of int, int
        The random bank's filter widths (frames) and filters per width.
    vgg_bands : int
        With ``network="vgg19"``: each style layer's Gram matrix is taken separately on this many frequency
        bands (:class:`~.networks.FrequencyBands`); 1 is the plain image Gram.
    vgg_row_weight : float
        With ``network="vgg19"``: weight of the per-frequency-row feature statistics term
        (:class:`stylekit.losses.audio.RowStatsLoss` on ``VGG19_ROW_LAYERS``), weighted by ``1 - words`` like
        every style-side term; 0 is off.
    content_weight, style_weight : float
        Weights of the (relative) content and Gram style terms of the feature network.
    band_weight : float
        Weight of the band-statistics term (:class:`stylekit.losses.audio.BandStatsLoss`: per-band mean, std
        and band-band correlation of the log spectrogram, 1 at the content, 0 at the style).
    envelope_weight : float
        Weight of the loudness-contour term (:class:`stylekit.losses.audio.EnvelopeLoss`, 1 - correlation).
    full_band : bool
        Work at the content's own rate (:meth:`SpectrogramConfig.at_rate`), so the result keeps the whole band
        up to the content's Nyquist frequency (default); False works at ``spectrogram.sample_rate`` (22,050 Hz,
        up to 11 kHz) as stylekit did before. Multi-channel contents keep their channels either way.
    words : float
        The one trade-off between the content's words and the style's texture, 0..1. The speech-envelope term
        (:class:`stylekit.losses.audio.SpeechEnvelopeLoss`) is weighted by ``words`` and every style-side term
        (Gram, band statistics, rhythm) by ``1 - words``: 0 is texture only, 1 keeps the content as it is.
    rhythm_weight : float
        Weight of the autocorrelation (rhythm) term; 0 (off) by default.
    rhythm_max_lag : float
        Longest lag compared by the rhythm term, in seconds.
    style_blend : tuple of float, optional
        One weight per style sound (normalised); default equal.
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
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
        Where the spectrograms, the feature network, the losses, the optimisation and Griffin-Lim run;
        ``"auto"`` (default) picks CUDA, then MPS, then the CPU. A runtime setting: the result does not depend on it
        beyond float rounding.
    threads : int, optional
        Torch CPU threads during the run (restored afterwards); None (or 0) keeps torch's setting. A runtime
        setting. Default 1: torch's thread pool spin-waits for cores that other processes hold, so on a small
        shared machine one thread is usually faster than several (docs/benchmarks.md).

    Examples
    --------
    >>> config = AudioStyleConfig(style_weight=10)
    >>> config.style_weight, config.network, config.spectrogram.kind
    (10, 'random', 'mel')
    """

    network: str = option("random", type=click.Choice(NETWORKS), group="Quality and speed",
                          help="Feature network: random 1-D conv bank or VGG19 on the spectrogram image.")
    widths: tuple[int, ...] = option((3, 7, 15, 31), cli=False, help="Filter widths of the random bank (frames).")
    channels: int = option(128, cli=False, help="Filters per width of the random bank.")
    vgg_bands: int = option(4, cli=False, help="Frequency bands with a Gram matrix of their own (vgg19).")
    vgg_row_weight: float = option(20.0, cli=False, help="Weight of the per-row feature statistics term (vgg19).")
    content_weight: float = option(1.0, type=float, group="Strength", help="Weight of the content feature term.")
    style_weight: float = option(30.0, type=float, group="Strength", help="Weight of the style (Gram) term.")
    band_weight: float = option(3.0, type=float, group="Strength",
                                help="Weight of the band-statistics term (per-band mean, std and correlation of "
                                     "the log spectrogram).")
    envelope_weight: float = option(1.0, type=float, group="Strength",
                                    help="Weight of the loudness-contour term (keeps the content's rhythm).")
    full_band: bool = option(True, type=bool, group="Spectrogram",
                             help="Work at the content's own sample rate, up to its Nyquist frequency (off: at "
                                  "22,050 Hz, up to 11 kHz, faster). --n-fft, --hop-length and --n-mels are given "
                                  "at 22,050 Hz and scaled.")
    words: float = option(0.5, type=float, group="Strength",
                          help="Words versus texture, 0..1: how strongly the content's speech-band envelopes are "
                               "kept (0: texture only; 1: the content unchanged).")
    rhythm_weight: float = option(0.0, type=float, group="Strength",
                                  help="Weight of the style autocorrelation (rhythm) term; 0 is off (random "
                                       "network only).")
    rhythm_max_lag: float = option(1.0, cli=False, help="Longest lag of the rhythm term (seconds).")
    style_blend: tuple[float, ...] | None = option(
        None, parse=_style_blend, metavar="W1,W2,...", group="Strength",
        show=lambda v: "equal" if v is None else str(v),
        help="Comma-separated weights of several styles.")
    variables: str = option("mel", type=click.Choice(VARIABLES), group="Quality and speed",
                            help="With --kind mel: optimise the linear magnitude (losses on its log-mel) or the "
                                 "log-mel itself.")
    project: bool = option(True, cli=False, help="Keep optimised log-mel spectra realisable (MelProjection).")
    init: str = option("content", type=click.Choice(INITS), group="Quality and speed",
                       help="Start from the content, from noise, or from the (first) style repeated to the "
                            "content's length.")
    optimizer: str = option("lbfgs", type=click.Choice(OPTIMIZERS), group="Quality and speed", help="Optimiser.")
    steps: int = option(50, type=int, group="Quality and speed", help="Optimisation steps per chunk.")
    history: int = option(100, type=int, group="Quality and speed",
                          help="L-BFGS history length (memory: 2 x history x variables).")
    seed: int = option(0, type=int, help="Random seed (network weights, noise, phase).")
    spectrogram: SpectrogramConfig = option(SpectrogramConfig(), nested=True, help="The spectrogram settings.")
    chunk_seconds: float = option(20.0, type=float, group="Device",
                                  help="Longest chunk processed at once (seconds).")
    overlap_seconds: float = option(1.0, type=float, group="Device",
                                    help="Cross-fade between chunks (seconds).")
    target_rms: float = option(0.1, cli=False, help="Working loudness (RMS) of content and styles.")
    device: str = option("auto", metavar=DEVICE_METAVAR, group="Device",
                         help="Where everything runs: auto picks CUDA, then MPS, then the CPU.")
    threads: int | None = option(1, type=int, group="Device",
                                 help="Torch CPU threads during the run (0 keeps torch's own setting).",
                                 show=lambda v: "torch's own" if v is None else str(v))

    def __post_init__(self) -> None:
        if not isinstance(self.spectrogram, SpectrogramConfig):
            raise ConfigError(f"spectrogram must be a SpectrogramConfig, got {type(self.spectrogram).__name__}")
        if self.threads == 0:
            object.__setattr__(self, "threads", None)       # 0: keep torch's own setting, as None
        object.__setattr__(self, "seed", fold_seed(self.seed, lo=TORCH_SEEDS[0], hi=TORCH_SEEDS[1]))
        if not isinstance(self.widths, tuple):
            object.__setattr__(self, "widths", tuple(self.widths))
        if self.style_blend is not None and not isinstance(self.style_blend, tuple):
            object.__setattr__(self, "style_blend", tuple(self.style_blend))
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        for name, allowed in (("network", NETWORKS), ("init", INITS), ("variables", VARIABLES),
                              ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        check_device(self.device)

    def _check_numbers(self) -> None:
        for name in ("content_weight", "style_weight", "band_weight", "envelope_weight", "rhythm_weight",
                     "vgg_row_weight"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {v}")
        if not (isinstance(self.words, (int, float)) and math.isfinite(self.words) and 0 <= self.words <= 1):
            raise ConfigError(f"words must be a number in 0..1, got {self.words}")
        check_int("history", self.history, 1, 10_000)
        check_int("steps", self.steps, 1, 1_000_000)
        check_int("channels", self.channels, 1, 4096)
        check_int("vgg_bands", self.vgg_bands, 1, 16)
        check_float("chunk_seconds", self.chunk_seconds, 0.0, 3600.0, low_open=True)
        check_float("overlap_seconds", self.overlap_seconds, 0.0, 600.0, low_open=True)
        check_float("rhythm_max_lag", self.rhythm_max_lag, 0.0, 600.0, low_open=True)
        if not self.chunk_seconds > 2 * self.overlap_seconds or self.overlap_seconds <= 0:
            raise ConfigError(f"chunk_seconds ({self.chunk_seconds}) must exceed twice overlap_seconds "
                              f"({self.overlap_seconds}), which must be > 0")
        if not 0 < self.target_rms < 1:
            raise ConfigError(f"target_rms must be in (0, 1), got {self.target_rms}")
        if self.threads is not None:
            check_threads(self.threads)
        if self.rhythm_max_lag <= 0:
            raise ConfigError(f"rhythm_max_lag must be > 0, got {self.rhythm_max_lag}")
        if (not self.widths or len(self.widths) > 16 or self.channels < 1
                or any(not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 1024 for w in self.widths)):
            raise ConfigError(f"widths must be 1 to 16 integers in 1..1024 and channels >= 1, got {self.widths}, "
                              f"{self.channels}")
        if self.style_blend is not None:
            if (not self.style_blend or any(not (math.isfinite(float(w)) and float(w) >= 0) for w in self.style_blend)
                    or sum(self.style_blend) <= 0):
                raise ConfigError(f"style weights must be >= 0 and not all zero, got {list(self.style_blend)}")

    def to_dict(self) -> dict:
        """The settings as plain JSON-ready data (the spectrogram settings nested); :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["style_blend"] = None if self.style_blend is None else [float(w) for w in self.style_blend]
        return d

    @classmethod
    def from_dict(cls, data: Mapping) -> AudioStyleConfig:
        """Rebuild a config from :meth:`to_dict`'s output (validated; unknown keys are a :class:`ConfigError`)."""
        if not isinstance(data, Mapping):
            raise ConfigError("not an audio style config")
        spec = data.get("spectrogram", {})
        convert = {"widths": lambda v: tuple(int(w) for w in v), "style_blend": lambda v: tuple(float(w) for w in v)}
        return _from_dict(cls, {**data, "spectrogram": SpectrogramConfig.from_dict(spec)}, "audio style config",
                          convert)
