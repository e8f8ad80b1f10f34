"""Encode notes to latent sequences, decode them back to sound, and morph between two notes.

Decoding resynthesises with librosa's Griffin-Lim (the phase of a decoded spectrum is unknown), using the
checkpoint's own STFT config, so analysis and synthesis never disagree.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write
from ..errors import ConfigError, InputError, WeightsError
from .features import PHASE_METHODS, to_audio, to_features
from .models import SpectralModel, load_model
from .nsynth import load_audio

__all__ = ["DEFAULT_CHECKPOINT", "DEFAULT_CHECKPOINT_SHA256", "VAE_CHECKPOINT", "VAE_CHECKPOINT_SHA256",
           "default_checkpoint", "load", "encode_audio", "decode_latents", "morph_latents", "save_latents",
           "load_latents", "write_wav", "LATENTS_FORMAT", "LATENT_SET_FORMAT", "encode_notes", "sample_prior",
           "sweep_latents", "spectrogram_figure"]

LATENTS_FORMAT = "stylekit.spectral.latents/1"
#: The checkpoint shipped with stylekit (deep AE, latent 16; see weights/spectral/README.md).
# stylekit/weights links to the repository's weights/ (and is package data), so this works installed too.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "spectral" / "dae_l16.pt"
DEFAULT_CHECKPOINT_SHA256 = "f1c63a0d10a369196fcdf895182fe54b526b27e1a3ddc620d92e1b8864a7f6ac"
#: The shipped VAE (latent 16; see weights/spectral/README.md), used by ``sample`` and ``sweep``.
VAE_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("vae_l16.pt")
VAE_CHECKPOINT_SHA256 = "b64bd7a51a2d212527f2f7caba1e2f2ff0a983ffacaa6311b135d9fe76643d49"
LATENT_SET_FORMAT = "stylekit.spectral.latent_set/1"


def default_checkpoint(which: str = "dae") -> Path:
    """Path of a shipped checkpoint (``"dae"`` or ``"vae"``) after checking its sha256 (a
    :class:`WeightsError` says what to do).

    Examples
    --------
    >>> default_checkpoint().name, default_checkpoint("vae").name        # shipped in the package, hash-checked
    ('dae_l16.pt', 'vae_l16.pt')
    """
    import hashlib
    p, sha = {"dae": (DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT_SHA256),
              "vae": (VAE_CHECKPOINT, VAE_CHECKPOINT_SHA256)}[which]
    if not p.is_file():
        raise WeightsError(f"{p}: the shipped spectral checkpoint is missing; pass --model MODEL.pt "
                           "or restore weights/spectral/ from the stylekit repository")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != sha:
        raise WeightsError(f"{p}: sha256 {digest[:12]}... does not match the registered "
                           f"{sha[:12]}...; restore the file from the repository")
    return p


def load(path: str | os.PathLike | None = None, *, default: str = "dae"):
    """``load_model(path)``, or of the shipped checkpoint ``default`` (``"dae"``, ``"vae"``) when ``path`` is
    None. Returns (model, stft, meta).

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> type(model).__name__, model.latent, stft.sample_rate
    ('DeepAE', 16, 16000)
    """
    return load_model(default_checkpoint(default) if path is None else path)


@torch.no_grad()
def encode_audio(model: SpectralModel, stft, y: np.ndarray) -> torch.Tensor:
    """Mono audio ``(n_samples,)`` -> latent sequence ``(n_frames, latent)``.

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> z = encode_audio(model, stft, note)
    >>> z.shape[1]                                             # (frames, latent)
    16
    """
    return model.encode(torch.from_numpy(to_features(y, stft)))


@torch.no_grad()
def decode_latents(model: SpectralModel, stft, z: torch.Tensor, *, length: int | None = None,
                   seed: int = 0, method: str = PHASE_METHODS[0]) -> np.ndarray:
    """Latent sequence ``(n_frames, latent)`` -> mono audio ``(length,)`` in [-1, 1]; the phase is rebuilt
    by ``method`` (:data:`~stylekit.spectral.features.PHASE_METHODS`).

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> decode_latents(model, stft, encode_audio(model, stft, note), length=len(note)).shape
    (8000,)
    """
    if z.dim() != 2 or z.shape[1] != model.latent or z.shape[0] < 1:
        raise ConfigError(f"expected latents of shape (n_frames >= 1, {model.latent}), got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ConfigError("latents contain NaN or infinite values")
    if length is not None and 1 + length // stft.hop_length != z.shape[0]:
        raise ConfigError(f"{z.shape[0]} latent frames do not fit a length of {length} samples "
                          f"(that needs {1 + max(length, 0) // stft.hop_length} frames)")
    x = model.decode(z.float()).numpy()
    if not np.isfinite(x).all():
        raise ConfigError("latents decode to non-finite spectra (values far outside what the encoder makes)")
    return to_audio(np.clip(x, 0.0, 1.0), stft, length=length, seed=seed, method=method)


def morph_latents(za: torch.Tensor, zb: torch.Tensor, *, alpha: float | None = 0.5) -> torch.Tensor:
    """Interpolate two latent sequences frame by frame: ``(1 - a) za + a zb``.

    Parameters
    ----------
    za, zb : Tensor, shape (n_frames_a, L) and (n_frames_b, L)
        Truncated to the shorter one.
    alpha : float in [0, 1] or None
        Fixed mixing weight; ``None`` ramps it linearly from 0 (first frame, pure A) to 1 (last, pure B).

    Returns
    -------
    Tensor, shape (min(n_frames_a, n_frames_b), L)

    Examples
    --------
    >>> import torch
    >>> morph_latents(torch.zeros(3, 2), torch.ones(4, 2), alpha=0.25)       # truncated to the shorter one
    tensor([[0.2500, 0.2500],
            [0.2500, 0.2500],
            [0.2500, 0.2500]])
    """
    n = min(za.shape[0], zb.shape[0])
    za, zb = za[:n], zb[:n]
    if alpha is None:
        a = torch.linspace(0.0, 1.0, n, dtype=za.dtype).unsqueeze(1)
    else:
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        a = torch.full((n, 1), float(alpha), dtype=za.dtype)
    return (1 - a) * za + a * zb


def save_latents(path: str | os.PathLike, z: torch.Tensor, *, meta: dict, length: int,
                 overwrite: bool = False) -> Path:
    """Write a latent sequence with the digest of the checkpoint that made it and the audio length (refused
    when it is not finite: nothing is written that decodes to NaN).

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = save_latents(Path(tempfile.mkdtemp()) / "a4.pt", encode_audio(model, stft, note), meta=meta,
    ...                     length=len(note))
    >>> z, length = load_latents(path, meta=meta)
    >>> z.shape[1], length
    (16, 8000)
    """
    if not bool(torch.isfinite(z).all()):
        raise ConfigError(f"{path}: the latents are not finite (NaN or infinite); nothing written")
    obj = {"format": LATENTS_FORMAT, "latents": z.detach().cpu().float().contiguous(), "length": int(length),
           "checkpoint_digest": meta.get("checkpoint_digest", "")}
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, lambda t: t.write_bytes(buf.getvalue()), overwrite=overwrite)


def load_latents(path: str | os.PathLike, *, meta: dict) -> tuple[torch.Tensor, int]:
    """Read :func:`save_latents`' file; refuses latents made by another checkpoint. Returns (z, length).

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = save_latents(Path(tempfile.mkdtemp()) / "a4.pt", encode_audio(model, stft, note), meta=meta,
    ...                     length=len(note))
    >>> load_latents(path, meta=meta)[1]
    8000
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such latents file")
    from .._checkpoint import UnloadableFile, check_tensors, load_torch_file
    try:
        obj = load_torch_file(p)        # bounded before unpacking, weights_only
    except UnloadableFile as e:
        raise InputError(f"{p}: not a stylekit latents file ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != LATENTS_FORMAT or not isinstance(
            obj.get("latents"), torch.Tensor):
        raise InputError(f"{p}: not a stylekit latents file")
    if obj.get("checkpoint_digest") != meta.get("checkpoint_digest"):
        raise InputError(f"{p}: latents were made by another checkpoint; decode with the model that encoded them")
    length = obj.get("length", 0)
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise InputError(f"{p}: invalid length {length!r} in the latents file")
    bad = check_tensors(obj["latents"])
    if bad is not None:
        raise InputError(f"{p}: unusable latents ({bad})")
    return obj["latents"], length or None


def write_wav(path: str | os.PathLike, y: np.ndarray, sample_rate: int, *, overwrite: bool = False) -> Path:
    """Write mono 16-bit PCM atomically (through stylekit's one WAV writer, :func:`stylekit.audio.io.write_audio`).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> write_wav(Path(tempfile.mkdtemp()) / "a4.wav", 0.5 * np.sin(np.arange(8000) * 0.17), 16000).name
    'a4.wav'
    """
    from ..audio.io import write_audio
    return write_audio(path, np.clip(y, -1, 1), sample_rate, subtype="pcm16", overwrite=overwrite)


def read_note(path: str | os.PathLike, stft) -> np.ndarray:
    """Mono audio at the checkpoint's rate, at least one FFT window long (else an :class:`InputError` naming
    the file)."""
    y = load_audio(path, sample_rate=stft.sample_rate)
    if len(y) < stft.n_fft:
        raise InputError(f"{path}: too short ({len(y)} samples; a note needs at least one {stft.n_fft}-sample "
                         "FFT window)")
    return y


@torch.no_grad()
def encode_notes(model: SpectralModel, stft, data: str | os.PathLike, out: str | os.PathLike, *,
                 split: str | None = None, note_filter=None, meta: dict, overwrite: bool = False,
                 progress=None) -> int:
    """Encode the selected notes of a data set (root or split folder) and write one file holding, per note,
    the latent vector averaged over the note's frames ``(n_notes, latent)`` with its ``note_str``, pitch,
    velocity and family; returns the number of notes. The mean keeps the file small for any data set size.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> model, stft, meta = load()
    >>> encode_notes(model, stft, root, root / "latents.pt", meta=meta)         # the test split's two notes
    2
    """
    from .config import NoteFilter
    from .nsynth import read_split, select_notes
    notes = select_notes(read_split(data, split), note_filter or NoteFilter())
    if not notes:
        raise ConfigError(f"{data}: no notes match the selection")
    zs = []
    for note in notes:
        zs.append(encode_audio(model, stft, read_note(note.path, stft)).mean(0))
        if progress is not None:
            progress(1)
    obj = {"format": LATENT_SET_FORMAT, "latents": torch.stack(zs).float().contiguous(),
           "note_str": [n.note_str for n in notes], "pitch": torch.tensor([n.pitch for n in notes]),
           "velocity": torch.tensor([n.velocity for n in notes]),
           "family": [n.instrument_family_str for n in notes],
           "checkpoint_digest": meta.get("checkpoint_digest", "")}
    if not bool(torch.isfinite(obj["latents"]).all()):
        raise ConfigError(f"{out}: the latents are not finite (NaN or infinite); nothing written")
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(out, lambda t: t.write_bytes(buf.getvalue()), overwrite=overwrite)
    return len(notes)


def _require_vae(model: SpectralModel, what: str) -> None:
    if model.name != "vae":
        raise ConfigError(f"{what} needs a VAE checkpoint (its prior is N(0, I)); this one is a {model.name!r}")


@torch.no_grad()
def sample_prior(model: SpectralModel, *, n_frames: int, seed: int = 0, temperature: float = 1.0
                 ) -> torch.Tensor:
    """A latent sequence ``(n_frames, latent)`` from a VAE's prior: one ``z ~ N(0, temperature^2 I)`` held over
    every frame (the models code single frames, so a held code is a stationary note).

    Examples
    --------
    >>> vae, stft, meta = load(default="vae")
    >>> sample_prior(vae, n_frames=5, seed=1).shape              # one code, held over 5 frames
    torch.Size([5, 16])
    """
    _require_vae(model, "sampling from the prior")
    if not (0.0 < temperature <= 10.0):
        raise ConfigError(f"temperature must be in (0, 10], got {temperature}")
    g = torch.Generator().manual_seed(seed)
    return (temperature * torch.randn(1, model.latent, generator=g)).expand(n_frames, -1).contiguous()


def sweep_latents(z: torch.Tensor, *, dim: int, values) -> list[torch.Tensor]:
    """Copies of the latent sequence ``z`` ``(n_frames, L)`` with dimension ``dim`` shifted by each of
    ``values`` (in latent units: prior standard deviations for a VAE).

    Examples
    --------
    >>> import torch
    >>> [float(z[0, 0]) for z in sweep_latents(torch.zeros(5, 16), dim=0, values=[-1, 0, 1])]
    [-1.0, 0.0, 1.0]
    """
    if not 0 <= dim < z.shape[1]:
        raise ConfigError(f"--dim must be in 0-{z.shape[1] - 1}, got {dim}")
    out = []
    for v in values:
        w = z.clone()
        w[:, dim] += float(v)
        out.append(w)
    return out


def spectrogram_figure(panels, titles, stft, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """A row of spectrograms (feature frames ``(n_frames, n_bins)`` each, 0-1) with titles, in dB re full
    scale on one colour scale from the floor to the loudest bin of all panels; PNG/PDF/SVG.

    Examples
    --------
    >>> import numpy as np
    >>> model, stft, meta = load()                             # the shipped deep autoencoder, 16 latents
    >>> note = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / stft.sample_rate)     # 0.5 s of A4
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.features import to_features
    >>> frames = to_features(note, stft)
    >>> spectrogram_figure([frames, frames], ["A4", "again"], stft, Path(tempfile.mkdtemp()) / "a4.png").suffix
    '.png'
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .features import features_to_db
    dbs = [features_to_db(np.asarray(x), stft) for x in panels]
    loudest = max(float(d.max()) for d in dbs)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels) + 1.6, 3), sharey=True, squeeze=False,
                             layout="constrained")
    top = stft.sample_rate / 2 / 1000
    im = None
    for ax, d, t in zip(axes[0], dbs, titles):
        dur = d.shape[0] * stft.hop_length / stft.sample_rate
        im = ax.imshow(d.T, origin="lower", aspect="auto", cmap="magma", vmin=-stft.top_db,
                       vmax=max(loudest, -stft.top_db + 1), extent=(0, dur, 0, top))
        ax.set(title=t, xlabel="s")
    axes[0, 0].set_ylabel("kHz")
    fig.colorbar(im, ax=list(axes[0]), label="dB")
    try:
        return atomic_write(path, lambda t: fig.savefig(t, dpi=100), overwrite=overwrite)
    finally:
        plt.close(fig)
