"""Plain-Python configuration of :mod:`stylekit.spectral`: all ``stylekit spectral --help`` needs (no numpy,
no torch).

:class:`SpectralSTFTConfig`, :class:`SynthConfig` and :class:`TrainConfig` are frozen dataclasses validated on
construction; :data:`MODEL_NAMES` lists the models of :data:`stylekit.spectral.models.MODELS` in the same
order; :func:`parse_int_list` reads the CLI's ``21-108``/``36-84:4``/``60,64`` lists. The modules that do the
work (:mod:`.features`, :mod:`.synth`, :mod:`.train`, :mod:`.nsynth`) re-export these names, so
``from stylekit.spectral.features import SpectralSTFTConfig`` keeps working.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .._options import option
from .._validate import check_float, check_int, fold_seed
from ..errors import ConfigError

__all__ = ["SpectralSTFTConfig", "SynthConfig", "TrainConfig", "NoteFilter", "MODEL_NAMES", "parse_int_list",
           "gm_family", "DEFAULT_SOUNDFONTS", "DEFAULT_PROGRAMS", "FAMILIES", "SOURCES", "SPLITS", "check_int",
           "check_float", "fold_seed"]

#: Names of the five models, in the order of :data:`stylekit.spectral.models.MODELS`.
MODEL_NAMES = ("pca", "ae", "dae", "lstm", "vae")

#: NSynth's instrument families, index = ``instrument_family``.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
            "synth_lead", "vocal")
#: NSynth's instrument sources, index = ``instrument_source``.
SOURCES = ("acoustic", "electronic", "synthetic")
SPLITS = ("train", "valid", "test")
#: Soundfonts rendered when none is given (Debian/Ubuntu ``fluid-soundfont-gm`` and ``timgm6mb-soundfont``).
DEFAULT_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
#: GM programs rendered by default: every program 0-119 that sounds (peak above -60 dBFS) at MIDI pitches 36,
#: 60 and 84 in both default soundfonts; 43, 58, 67, 78 are silent at one of them in one soundfont.
DEFAULT_PROGRAMS = tuple(p for p in range(120) if p not in (43, 58, 67, 78))
#: Default pitches (every third MIDI note of the piano range) and velocities of the generator.
DEFAULT_PITCHES = tuple(range(21, 109, 3))
DEFAULT_VELOCITIES = (20, 40, 60, 80, 100, 127)
#: Upper bounds of the settings (for the command line and for what a checkpoint stores alike).
MAX_SAMPLE_RATE = 384_000
MAX_N_FFT = 65_536
MAX_TOP_DB = 300.0
MAX_GRIFFIN_LIM_ITERS = 10_000
MAX_LATENT = 4096
MAX_EPOCHS = 100_000
MAX_BATCH_FRAMES = 1 << 20
MAX_FRAMES = 1 << 28
MAX_LR = 10.0
MAX_BETA = 1e6


# GM program groups of 8 programs each -> NSynth family (groups 12-14: pads/effects/ethnic folded as noted).
_GROUP_FAMILY = ("keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "brass", "reed", "flute",
                 "synth_lead", "synth_lead", "synth_lead", "string", "mallet")


@dataclass(frozen=True)
class SpectralSTFTConfig:
    """How audio becomes frames and back.

    Parameters
    ----------
    sample_rate : int
        Hz; audio at another rate is refused, not resampled (NSynth is 16 kHz).
    n_fft : int
        FFT size; frames have ``n_fft // 2 + 1`` bins (513 for 1024).
    hop_length : int
        Hop in samples (256 = 16 ms at 16 kHz).
    top_db : float
        Dynamic range kept below 0 dB; also the scale between feature units and dB.
    griffin_lim_iters : int
        Griffin-Lim iterations used by :func:`stylekit.spectral.features.to_audio` when no phase is given.

    Examples
    --------
    >>> cfg = SpectralSTFTConfig()
    >>> cfg.sample_rate, cfg.n_fft // 2 + 1                     # 16 kHz, 513 bins a frame
    (16000, 513)
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    top_db: float = 80.0
    griffin_lim_iters: int = 64

    def __post_init__(self) -> None:
        # Bounded, as a checkpoint's stored STFT config is read through here too: griffin_lim_iters=1e9 from an
        # edited file would otherwise run for days.
        check_int("sample_rate", self.sample_rate, 1, MAX_SAMPLE_RATE)
        check_int("n_fft", self.n_fft, 16, MAX_N_FFT)
        if self.n_fft % 2:
            raise ConfigError(f"n_fft must be an even number >= 16, got {self.n_fft}")
        check_int("hop_length", self.hop_length, 1, self.n_fft)
        check_float("top_db", self.top_db, 0.0, MAX_TOP_DB, low_open=True)
        check_int("griffin_lim_iters", self.griffin_lim_iters, 1, MAX_GRIFFIN_LIM_ITERS)

    @property
    def n_bins(self) -> int:
        """Number of frequency bins per frame, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints); :meth:`from_dict` is the inverse."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpectralSTFTConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys are a :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError("the STFT config is not a mapping")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown STFT config keys: {sorted(unknown)}")
        return cls(**d)


def gm_family(program: int) -> str:
    """NSynth family of a GM program (0-119) from its group of 8: 0-7 keyboard, 8-15 mallet, 16-23 organ,
    24-31 guitar, 32-39 bass, 40-55 string, 56-63 brass, 64-71 reed, 72-79 flute, 80-103 synth_lead (leads,
    pads, synth effects), 104-111 string (ethnic: sitar, banjo, koto...), 112-119 mallet (percussive).

    Examples
    --------
    >>> gm_family(0), gm_family(40), gm_family(73)
    ('keyboard', 'string', 'flute')
    """
    if not 0 <= program < 120:
        raise ConfigError(f"GM program {program} not supported (0-119; 120-127 are sound effects)")
    return _GROUP_FAMILY[program // 8]


def format_int_list(values) -> str:
    """The inverse of :func:`parse_int_list` for runs of step 1: ``(0, 1, 2, 5)`` -> ``"0-2,5"``."""
    vals, parts, i = sorted(set(values)), [], 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ",".join(parts)


def parse_int_list(text: str, *, lo: int, hi: int, name: str) -> tuple[int, ...]:
    """Parse ``"21-108"``, ``"36-84:4"`` (with a step) or ``"60,64,67"`` (mixable) into sorted unique ints.

    Examples
    --------
    >>> (parse_int_list("60,64,67", lo=0, hi=127, name="--pitches"),
    ...  parse_int_list("36-48:6", lo=0, hi=127, name="--pitches"))
    ((60, 64, 67), (36, 42, 48))
    """
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            step = 1
            if ":" in part:
                part, s = part.split(":")
                step = int(s)
                if step < 1:
                    raise ValueError
            if "-" in part[1:]:
                a, b = (int(v) for v in part.split("-", 1))
                if not (lo <= a <= hi and lo <= b <= hi):   # before the range is built: 60-99999999999
                    raise ConfigError(f"{name}: values must be in {lo}-{hi}, got {text!r}")
                out.update(range(a, b + 1, step))
            else:
                out.add(int(part))
    except ValueError:
        raise ConfigError(f"{name}: cannot parse {text!r} (use e.g. 21-108, 36-84:4 or 60,64,67)") from None
    bad = [v for v in out if not lo <= v <= hi]
    if not out or bad:
        raise ConfigError(f"{name}: values must be in {lo}-{hi}, got {text!r}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`stylekit.spectral.synth.synthesize` renders.

    Parameters
    ----------
    programs : tuple of int
        GM programs (0-119); each one with each soundfont is one instrument.
    pitches : tuple of int
        MIDI pitches (21-108 is the piano range NSynth uses).
    velocities : tuple of int
        MIDI velocities (NSynth uses 25, 50, 75, 100, 127).
    soundfonts : tuple of str
        1-3 ``.sf2`` files; the i-th is labelled with source ``SOURCES[i]``.
    valid_fraction, test_fraction : float
        Share of *instruments* held out (at least one each).
    seed : int
        Seed of the instrument split.
    gain : float
        FluidSynth master gain (its default, 0.2, leaves many notes far below full scale).

    Examples
    --------
    >>> SynthConfig(programs=(0, 40), pitches=(60,)).programs
    (0, 40)
    """

    programs: tuple[int, ...] = DEFAULT_PROGRAMS
    pitches: tuple[int, ...] = DEFAULT_PITCHES
    velocities: tuple[int, ...] = DEFAULT_VELOCITIES
    soundfonts: tuple[str, ...] = DEFAULT_SOUNDFONTS
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    gain: float = 0.5

    def __post_init__(self) -> None:
        for p in self.programs:
            gm_family(p)
        if len(set(self.programs)) != len(self.programs):
            raise ConfigError("programs must be unique")
        if not self.pitches or any(not 0 <= p <= 127 for p in self.pitches):
            raise ConfigError("pitches must be MIDI notes 0-127")
        if not self.velocities or any(not 1 <= v <= 127 for v in self.velocities):
            raise ConfigError("velocities must be 1-127")
        if not 1 <= len(self.soundfonts) <= len(SOURCES):
            raise ConfigError(f"give 1 to {len(SOURCES)} soundfonts")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ConfigError("valid/test fractions must be in [0, 1)")
        if len(self.programs) * len(self.soundfonts) < 3:
            raise ConfigError("need at least 3 instruments (programs x soundfonts) for 3 disjoint splits")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (every model gets the same budget; nothing is tuned per model).

    Parameters
    ----------
    model : {"pca", "ae", "dae", "lstm", "vae"}
    latent : int
        Latent size L.
    epochs : int
        Passes over the training segments (ignored by PCA, which is fitted in closed form).
    batch_frames : int
        Frames per optimiser step (the LSTM-AE gets ``batch_frames // seq_len`` sequences).
    lr : float
        Adam learning rate.
    seed : int
        Any integer (one outside ``[0, 2**32)`` is folded into it, :func:`fold_seed`). Seeds the weights'
        initialisation, the segment choice, the shuffling and the VAE noise.
    seq_len : int
        Frames per training segment (the LSTM-AE's sequence length).
    segments_per_note : int
        Non-overlapping segments drawn at random from each note (0 = all): bounds memory and time.
    beta : float
        VAE only: KL weight.
    patience : int
        Early stopping: training stops after this many epochs without a lower loss on the valid split, and the
        weights of the best epoch are kept (0 = off; also off when the data set has no valid split).
    max_frames : int
        Most training frames held in memory: segments are drawn by reservoir sampling while the notes are
        streamed, so memory is bounded (``max_frames * n_bins * 4`` bytes) whatever the number of notes. The
        valid split gets an eighth of it.

    Examples
    --------
    >>> config = TrainConfig(model="vae", latent=8)
    >>> config.model, config.latent
    ('vae', 8)
    """

    model: str = "dae"
    latent: int = 16
    epochs: int = 25
    batch_frames: int = 256
    lr: float = 1e-3
    seed: int = 0
    seq_len: int = 16
    segments_per_note: int = 2
    beta: float = 1e-3
    patience: int = 5
    max_frames: int = 1 << 18

    def __post_init__(self) -> None:
        check_int("latent", self.latent, 1, MAX_LATENT)
        check_int("patience", self.patience, 0, MAX_EPOCHS)
        check_int("max_frames", self.max_frames, 1, MAX_FRAMES)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("batch_frames", self.batch_frames, 1, MAX_BATCH_FRAMES)
        check_int("seq_len", self.seq_len, 1, MAX_BATCH_FRAMES)
        check_int("segments_per_note", self.segments_per_note, 0, MAX_BATCH_FRAMES)
        # NaN, inf and absurd rates train to NaN weights; refused here rather than found in the output
        check_float("lr", self.lr, 0.0, MAX_LR, low_open=True)
        check_float("beta", self.beta, 0.0, MAX_BETA)
        object.__setattr__(self, "seed", fold_seed(self.seed))
        if self.batch_frames < self.seq_len:
            raise ConfigError("batch_frames must be >= seq_len")
        if self.max_frames < self.seq_len:
            raise ConfigError("max_frames must be >= seq_len")

    def model_kwargs(self) -> dict:
        return {"beta": self.beta} if self.model == "vae" else {}


def _names(allowed: tuple[str, ...], what: str):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(sorted({v.strip() for v in text.split(",") if v.strip()}))
        bad = [v for v in names if v not in allowed]
        if bad or not names:
            raise ConfigError(f"--{what}: unknown {what} {bad[0] if bad else text!r}; expected some of "
                              f"{', '.join(allowed)}")
        return names
    return parse


def _ints(name: str, lo: int, hi: int):
    return lambda text: parse_int_list(text, lo=lo, hi=hi, name=name)


def _show_all(v) -> str:
    return "all" if v is None else ",".join(map(str, v))


_SEL = "Note selection"


@dataclass(frozen=True)
class NoteFilter:
    """Which notes of a split a command reads (``train``, ``eval``, ``encode`` take it as options).

    Parameters
    ----------
    families, sources : tuple of str or None
        NSynth family / source names to keep (:data:`FAMILIES`, :data:`SOURCES`); None keeps all.
    pitches, velocities : tuple of int or None
        MIDI pitches / velocities to keep; None keeps all.
    max_notes : int or None
        At most this many of the kept notes, evenly spaced through them in ``note_str`` order (deterministic,
        and it spreads over instruments, since ``note_str`` starts with the instrument); None or 0 keeps all.

    Examples
    --------
    >>> NoteFilter(families=("keyboard",), pitches=(60, 62)).families
    ('keyboard',)
    """

    families: tuple[str, ...] | None = option(None, parse=_names(FAMILIES, "families"), show=_show_all,
                                               group=_SEL, metavar="NAMES",
                                               help="Instrument families to keep, e.g. string,brass.")
    sources: tuple[str, ...] | None = option(None, parse=_names(SOURCES, "sources"), show=_show_all,
                                              group=_SEL, metavar="NAMES",
                                              help="Instrument sources to keep (acoustic,electronic,synthetic).")
    pitches: tuple[int, ...] | None = option(None, parse=_ints("--pitches", 0, 127), show=_show_all, group=_SEL,
                                             metavar="LIST", help="MIDI pitches to keep, e.g. 21-108, 36-84:4.")
    velocities: tuple[int, ...] | None = option(None, parse=_ints("--velocities", 0, 127), show=_show_all,
                                                group=_SEL, metavar="LIST", help="MIDI velocities to keep.")
    max_notes: int | None = option(None, type=int, show=lambda v: "all" if not v else str(v), group=_SEL,
                                   help="At most this many notes, evenly spaced through the selection.")

    def __post_init__(self) -> None:
        for name, allowed in (("families", FAMILIES), ("sources", SOURCES)):
            vals = getattr(self, name)
            if vals is not None:
                bad = [v for v in vals if v not in allowed]
                if bad or not vals:
                    raise ConfigError(f"{name}: unknown value {bad[0] if bad else vals!r}; expected some of "
                                      f"{', '.join(allowed)}")
                object.__setattr__(self, name, tuple(vals))
        for name in ("pitches", "velocities"):
            vals = getattr(self, name)
            if vals is not None:
                if not vals or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 127
                                   for v in vals):
                    raise ConfigError(f"{name} must be MIDI values 0-127, got {vals!r}")
                object.__setattr__(self, name, tuple(vals))
        if self.max_notes is not None:
            check_int("max_notes", self.max_notes, 0, 1 << 40)

    @property
    def is_all(self) -> bool:
        """Whether the filter keeps every note."""
        return all(getattr(self, k) is None for k in ("families", "sources", "pitches", "velocities")) \
            and not self.max_notes

    def to_dict(self) -> dict:
        """Plain dict (recorded in checkpoints and results)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
