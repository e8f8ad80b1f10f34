"""Reading, normalising and writing audio: the one place where stylekit touches audio files.

Reading (:func:`read_audio`) goes through soundfile (WAV, FLAC, OGG, and the other formats libsndfile knows)
and falls back to librosa/audioread for MP3 and anything soundfile cannot open. For style transfer every file
is checked (finite samples, long enough, not silent, at most :data:`MAX_CHANNELS` channels, a rate in
:data:`RATE_RANGE`), mixed down to mono (a content also keeps its channels), resampled to the working rate,
DC-free, and loudness-normalised before it reaches the spectrogram transform. Every failure a user can cause
is an :class:`~stylekit.errors.InputError` whose one-line message names the file.

Writing (:func:`write_audio`) is the one WAV writer of the package (style transfer and the spectral
autoencoders): atomic, 16-bit or float, with the settings that made the file embedded as JSON in its comment
(:func:`read_metadata` reads them back), so a run can tell its own finished output from a foreign file.
"""
from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["AudioClip", "read_audio", "audio_header", "load_audio", "prepare_audio", "normalize_loudness", "finalize_output",
           "write_audio", "read_metadata", "MIN_DURATION", "SILENCE_RMS", "MAX_COMMENT", "ESSENTIAL_KEYS",
           "MAX_DECODED_BYTES", "MAX_CHANNELS", "RATE_RANGE"]

#: Shortest usable input in seconds: below this there is not one analysis window of speech or texture.
MIN_DURATION = 0.1
#: An input whose RMS (after removing DC) is below this (-100 dBFS) is treated as silent.
SILENCE_RMS = 1e-5
#: Output peaks are kept at or below this (about -0.2 dBFS), so 16-bit output never clips.
PEAK_CEILING = 0.977
#: Most channels an input may have (7.1 surround); more is refused rather than guessed at.
MAX_CHANNELS = 8
#: Sample rates (Hz) an input may have: telephone speech to high-resolution studio audio.
RATE_RANGE = (8_000, 192_000)


@dataclass(frozen=True)
class AudioClip:
    """A mono clip at the working rate, as the pipeline uses it.

    Attributes
    ----------
    samples : np.ndarray
        Shape (n,), float32, loudness-normalised so that its RMS is ``target_rms`` (peaks may exceed 1).
    sample_rate : int
        The working rate (Hz).
    source : str
        The file (or a label) the clip came from, used in error messages.
    gain : float
        The linear gain that loudness normalisation applied to the mono mix.
    channels : np.ndarray, optional
        Shape (n, C), float32: every channel at the working rate, DC removed, with the same ``gain`` (kept only
        when asked for, for the content, whose stereo image the result takes; ``samples`` is their mean).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)        # 1 s of A4
    >>> wav = write_audio(folder / "tone.wav", tone, 22050, metadata={"seed": 0})
    >>> clip = load_audio(wav)
    >>> clip.sample_rate, clip.samples.shape, round(float(np.sqrt(np.mean(clip.samples ** 2))), 3)
    (22050, (22050,), 0.1)
    """

    samples: np.ndarray
    sample_rate: int
    source: str
    gain: float
    channels: np.ndarray | None = None


#: The most memory the decoded samples of one input may take. A file whose samples would take more is mixed
#: down to mono while it is read (every use of a file mixes it down anyway); one whose mono mix would still take
#: more is refused, with its size and this limit.
MAX_DECODED_BYTES = 2 * 2 ** 30


def _regular_file(path: Path) -> None:
    """Refuse before opening: a missing file, a folder, or a FIFO, device or socket (opening a FIFO waits for
    a writer forever; a device never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, expected an audio file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or socket); expected an audio file")


def _too_large(path: Path, frames: int, channels: int, rate: int, itemsize: int) -> InputError:
    gb = frames * itemsize / 2 ** 30
    return InputError(f"{path}: too long to read ({frames / max(rate, 1) / 60:.1f} min at {rate} Hz: "
                      f"{gb:.1f} GiB of samples even mixed down to mono; the limit is "
                      f"{MAX_DECODED_BYTES / 2 ** 30:.1f} GiB)")


def _read_soundfile(path: Path, dtype: str) -> tuple[np.ndarray, int]:
    """soundfile's read, bounded by :data:`MAX_DECODED_BYTES`: whole when it fits, else mixed down to mono
    block by block, else refused before anything is decoded."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        frames, channels, rate = f.frames, f.channels, int(f.samplerate)
        itemsize = np.dtype(dtype).itemsize
        if frames * channels * itemsize <= MAX_DECODED_BYTES:
            return f.read(dtype=dtype, always_2d=True), rate
        if frames * itemsize > MAX_DECODED_BYTES:
            raise _too_large(path, frames, channels, rate, itemsize)
        out = np.empty((frames, 1), dtype=dtype)
        pos = 0
        for block in f.blocks(blocksize=1 << 16, dtype=dtype, always_2d=True):
            out[pos:pos + len(block), 0] = block.mean(axis=1)
            pos += len(block)
        return out[:pos], rate


def _check_decoded_size(path: Path, itemsize: int) -> None:
    """For a file soundfile cannot open (MP3): refuse it before decoding when its header says it is too long."""
    try:
        import audioread
        with audioread.audio_open(str(path)) as f:
            frames = int(f.duration * f.samplerate)
            rate = int(f.samplerate)
    except Exception:  # noqa: BLE001 - no header to go by: the decoder says what is wrong
        return
    if frames * itemsize > MAX_DECODED_BYTES:
        raise _too_large(path, frames, 1, rate, itemsize)


def audio_header(path: str | os.PathLike) -> tuple[str | None, int, int]:
    """``(format, frames, sample rate)`` as a sound file's header declares them, without decoding the samples:
    what a length limit needs before :func:`read_audio` reads the whole file. ``(None, 0, 0)`` when libsndfile
    cannot read the header (:func:`read_audio`'s fallback decoder then decides).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import soundfile as sf
    >>> path = Path(tempfile.mkdtemp()) / "tone.wav"
    >>> sf.write(path, np.zeros(8000), 16000)
    >>> audio_header(path)
    ('WAV', 8000, 16000)
    """
    import soundfile as sf
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - libsndfile's errors have no common type; the reader decides
        return None, 0, 0
    return info.format, int(info.frames), int(info.samplerate)


def read_audio(path: str | os.PathLike, *, dtype: str = "float64", fallback: bool = True) -> tuple[np.ndarray, int]:
    """The samples of an audio file as it is: ``(samples (n, channels) of dtype, rate)``.

    Only regular files are opened (a FIFO or device is refused, never waited on). The decoded samples are
    bounded by :data:`MAX_DECODED_BYTES`: a file over it is mixed down to one channel while it is read, and
    one whose mono mix is over it too is refused. ``fallback`` tries librosa/audioread (MP3) when soundfile
    cannot read the file. Raises InputError naming ``path`` for a missing, unreadable or foreign file.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)        # 1 s of A4
    >>> wav = write_audio(folder / "tone.wav", tone, 22050, metadata={"seed": 0})
    >>> samples, rate = read_audio(wav)
    >>> samples.shape, rate
    ((22050, 1), 22050)
    """
    path = Path(path)
    _regular_file(path)
    sf_error: Exception | None = None
    try:
        return _read_soundfile(path, dtype)
    except InputError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError for unknown or corrupt files
        sf_error = e
    if not fallback:
        reason = str(sf_error).splitlines()[0] if str(sf_error) else "unknown format"
        raise InputError(f"{path}: cannot read audio ({reason})") from None
    # MP3 and formats libsndfile lacks: librosa hands them to audioread (ffmpeg / gstreamer where present).
    _check_decoded_size(path, np.dtype(dtype).itemsize)
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=None, mono=False)
        y = np.asarray(y, dtype=dtype)
        y = y[:, None] if y.ndim == 1 else y.T
        return y, int(sr)
    except Exception:
        reason = str(sf_error).splitlines()[0] if sf_error is not None and str(sf_error) else "unknown format"
        raise InputError(f"{path}: not a readable audio file ({reason})") from None


def prepare_audio(data: np.ndarray, sample_rate: int, *, target_rate: int | None = 22050, target_rms: float = 0.1,
                  source: str = "<array>", min_samples: int = 0, keep_channels: bool = False,
                  window_name: str = "its FFT") -> AudioClip:
    """Check, mix down, resample, remove DC and loudness-normalise raw samples.

    Parameters
    ----------
    data : np.ndarray
        Shape (n,) or (n, channels); any float or integer dtype (integers are scaled to [-1, 1)).
    sample_rate : int
        Rate of ``data`` in Hz.
    target_rate : int or None, optional
        Working rate in Hz (default 22,050); None keeps the input's own rate.
    target_rms : float, optional
        RMS of the returned clip (default 0.1, i.e. -20 dBFS).
    source : str, optional
        Name used in error messages.
    min_samples : int, optional
        Fewest samples the clip must have at ``target_rate`` (a centred STFT needs more than half its FFT size:
        pass ``n_fft // 2 + 1``); ``window_name`` names what needs them in the message.
    keep_channels : bool, optional
        Also keep every channel (:attr:`AudioClip.channels`), resampled and scaled like the mono mix.

    Returns
    -------
    AudioClip

    Raises
    ------
    InputError
        Empty, shorter than :data:`MIN_DURATION` or ``min_samples``, non-finite (NaN/inf) or silent input, more
        than :data:`MAX_CHANNELS` channels, or a rate outside :data:`RATE_RANGE`.

    Notes
    -----
    Loudness is plain RMS over the whole clip rather than ITU-R BS.1770 LUFS: the pipeline only needs content
    and style at the same level (the transform's log floor and the network input scale assume it), and the
    output is matched back to the content's own level.

    Examples
    --------
    >>> import numpy as np
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 44100)       # 0.5 s at 44.1 kHz
    >>> prepare_audio(tone, 44100).samples.shape                               # at 22,050 Hz
    (11025,)
    >>> prepare_audio(np.zeros(22050), 22050)
    Traceback (most recent call last):
    ...
    stylekit.errors.InputError: ...
    """
    a = np.asarray(data)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputError(f"{source}: expected samples of shape (n,) or (n, channels), got {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    a = a.astype(np.float64, copy=False)
    if not RATE_RANGE[0] <= sample_rate <= RATE_RANGE[1]:
        raise InputError(f"{source}: sample rate {sample_rate} Hz is outside the supported "
                         f"{RATE_RANGE[0] // 1000}-{RATE_RANGE[1] // 1000} kHz")
    if a.shape[1] > MAX_CHANNELS:
        raise InputError(f"{source}: has {a.shape[1]} channels; at most {MAX_CHANNELS} are supported")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{source}: contains no samples")
    if not np.isfinite(a).all():
        raise InputError(f"{source}: contains NaN or infinite samples")
    duration = a.shape[0] / sample_rate
    if duration < MIN_DURATION:
        raise InputError(f"{source}: too short ({duration:.3f} s, need at least {MIN_DURATION} s)")
    target_rate = int(sample_rate if target_rate is None else target_rate)
    y = a.mean(axis=1)
    if sample_rate != target_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sample_rate, target_sr=target_rate, res_type="soxr_hq")
    if len(y) < min_samples:
        raise InputError(f"{source}: too short for the spectrogram ({len(y)} samples at {target_rate} Hz; "
                         f"{window_name} needs at least {min_samples}: use a longer clip or a smaller --n-fft)")
    y = y - y.mean()  # DC offset carries no texture and would inflate the RMS used for loudness
    rms = float(np.sqrt(np.mean(y * y)))
    if not rms > SILENCE_RMS:
        raise InputError(f"{source}: is silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS)")
    gain = target_rms / rms
    channels = None
    if keep_channels and a.shape[1] > 1:
        c = a
        if sample_rate != target_rate:
            import librosa

            c = librosa.resample(a.T, orig_sr=sample_rate, target_sr=target_rate, res_type="soxr_hq").T
        channels = ((c - c.mean(axis=0)) * gain).astype(np.float32)
    return AudioClip((y * gain).astype(np.float32), int(target_rate), source, float(gain), channels)


def load_audio(path: str | os.PathLike, *, target_rate: int = 22050, target_rms: float = 0.1) -> AudioClip:
    """Read an audio file and return it as a checked, mono, resampled, loudness-normalised clip.

    Parameters
    ----------
    path : str or PathLike
        WAV, FLAC, OGG (soundfile) or MP3 (librosa/audioread) file.
    target_rate, target_rms
        See :func:`prepare_audio`.

    Returns
    -------
    AudioClip

    Raises
    ------
    InputError
        The file is missing, not audio, corrupt, too short, silent or holds NaN/inf samples; the message names
        the file.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)        # 1 s of A4
    >>> wav = write_audio(folder / "tone.wav", tone, 22050, metadata={"seed": 0})
    >>> load_audio(wav, target_rate=16000).samples.shape
    (16000,)
    """
    p = Path(path)
    data, sr = read_audio(p)
    return prepare_audio(data, sr, target_rate=target_rate, target_rms=target_rms, source=str(p))


def normalize_loudness(y: np.ndarray, *, target_rms: float) -> np.ndarray:
    """Scale ``y`` (shape (n,)) to the given RMS; a silent ``y`` is returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> y = normalize_loudness(np.sin(np.arange(1000.0)), target_rms=0.1)
    >>> round(float(np.sqrt(np.mean(y ** 2))), 3)
    0.1
    """
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    return y if rms <= 0 else (y * (target_rms / rms)).astype(y.dtype)


def finalize_output(y: np.ndarray, *, length: int, target_rms: float, peak: float = PEAK_CEILING,
                    source: str = "result") -> np.ndarray:
    """Make the final output: exact length, content loudness, peaks under full scale, never NaN or silent.

    Parameters
    ----------
    y : np.ndarray
        Shape (m,) or (m, channels), the reconstructed signal.
    length : int
        Required number of samples (the content's length); ``y`` is trimmed or zero-padded.
    target_rms : float
        RMS to match (the content's RMS at the output rate).
    peak : float, optional
        Peak ceiling; when matching loudness would exceed it, the gain is lowered so the peak equals it.

    Returns
    -------
    np.ndarray
        Shape (length,) or (length, channels), float32 in [-peak, peak]; the RMS is over all channels.

    Raises
    ------
    StylekitError
        If the result is not finite or silent (this indicates a bug, never a user error).

    Examples
    --------
    >>> import numpy as np
    >>> finalize_output(np.sin(np.arange(1000.0)), length=800, target_rms=0.1).shape
    (800,)
    """
    from ..errors import StylekitError

    y = np.asarray(y, dtype=np.float64)
    y = y[:length] if y.shape[0] >= length else np.pad(y, [(0, length - y.shape[0])] + [(0, 0)] * (y.ndim - 1))
    if not np.isfinite(y).all():
        raise StylekitError(f"{source}: reconstruction produced non-finite samples")
    y = y - y.mean(axis=0)
    rms = float(np.sqrt(np.mean(y * y)))
    if not rms > SILENCE_RMS * 1e-2:
        raise StylekitError(f"{source}: reconstruction is silent")
    g = target_rms / rms
    pk = float(np.abs(y).max())
    if pk * g > peak:
        g = peak / pk
    return (y * g).astype(np.float32)


_SUBTYPES = {"pcm16": "PCM_16", "float": "FLOAT"}
#: The longest comment libsndfile keeps in a WAV's INFO chunk (a longer one is silently dropped).
MAX_COMMENT = 2000
#: The metadata kept when the whole of it is longer than :data:`MAX_COMMENT`: enough to tell whose output a
#: file is and whether it is finished (the inputs and the config are dropped first).
ESSENTIAL_KEYS = ("stylekit", "settings_sha256", "seconds", "interrupted_at", "inputs_sha256")


def _comment(metadata: dict) -> str:
    """``metadata`` as one line of ASCII JSON that fits :data:`MAX_COMMENT` (shortened as documented)."""
    import json

    text = json.dumps(metadata, sort_keys=True, default=str)
    if len(text) <= MAX_COMMENT:
        return text
    short = {k: v for k, v in metadata.items() if k not in ("content", "styles", "config")}
    short["metadata_shortened"] = True
    text = json.dumps(short, sort_keys=True, default=str)
    if len(text) <= MAX_COMMENT:
        return text
    short = {k: metadata[k] for k in ESSENTIAL_KEYS if k in metadata}
    short["metadata_shortened"] = True
    return json.dumps(short, sort_keys=True, default=str)[:MAX_COMMENT]


def write_audio(path: str | os.PathLike, y: np.ndarray, sample_rate: int, *, subtype: str = "pcm16",
                metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Write samples atomically as a WAV file (the one WAV writer of stylekit).

    Parameters
    ----------
    path : str or PathLike
        Output path (``.wav``).
    y : np.ndarray
        Shape (n,) or (n, channels), float in [-1, 1]; 16-bit output clips anything outside.
    sample_rate : int
        Hz.
    subtype : {"pcm16", "float"}
        16-bit integer or 32-bit float WAV.
    metadata : dict, optional
        Embedded as JSON in the WAV's comment (RIFF INFO ``ICMT``); :func:`read_metadata` reads it back. When
        the JSON is longer than :data:`MAX_COMMENT`, the inputs and the config are dropped (and then all but
        :data:`ESSENTIAL_KEYS`), and ``"metadata_shortened": true`` is added.
    overwrite : bool
        Replace an existing file.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)        # 1 s of A4
    >>> wav = write_audio(folder / "tone.wav", tone, 22050, metadata={"seed": 0})
    >>> wav.name, read_audio(wav)[1]
    ('tone.wav', 22050)
    """
    import soundfile as sf

    from .._io import atomic_write

    if subtype not in _SUBTYPES:
        raise ConfigError(f"subtype must be one of {sorted(_SUBTYPES)}, got {subtype!r}")
    y = np.asarray(y, dtype=np.float32)
    if subtype == "pcm16":
        y = np.clip(y, -1.0, 1.0)
    comment = _comment(metadata) if metadata else None

    def write(tmp: Path) -> None:
        try:
            with sf.SoundFile(str(tmp), "w", int(sample_rate), 1 if y.ndim == 1 else y.shape[1],
                              subtype=_SUBTYPES[subtype], format="WAV") as f:
                if comment is not None:
                    f.comment = comment
                f.write(y)
        except RuntimeError as e:   # libsndfile's errors are not OSErrors: make them one (a full disk, mostly)
            raise _as_os_error(tmp, e) from None

    return atomic_write(path, write, overwrite=overwrite)


def _as_os_error(tmp: Path, e: Exception) -> OSError:
    """An OSError for a failed libsndfile write: "No space left on device" when the disk is full (libsndfile
    does not say so itself), else its own message. :func:`stylekit._io.atomic_write` names the output."""
    import errno
    try:
        st = os.statvfs(tmp.parent)
        full = st.f_bavail * st.f_frsize < 64 * 1024
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    return OSError(errno.EIO, f"cannot write the WAV file ({' '.join(str(e).split())[:120]})", str(tmp))


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata :func:`write_audio` embedded in a WAV file; ``{}`` when it has none (or another comment).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)        # 1 s of A4
    >>> wav = write_audio(folder / "tone.wav", tone, 22050, metadata={"seed": 0})
    >>> read_metadata(wav)
    {'seed': 0}
    """
    import json

    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            text = f.comment
    except Exception:  # noqa: BLE001 - an unreadable file has no stylekit metadata
        return {}
    try:
        data = json.loads(text) if text else {}
    except (ValueError, RecursionError):      # another program's comment, or JSON nested too deeply
        return {}
    return data if isinstance(data, dict) else {}
