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
from .features import to_audio, to_features
from .models import SpectralModel, load_model
from .nsynth import load_audio

__all__ = ["DEFAULT_CHECKPOINT", "DEFAULT_CHECKPOINT_SHA256", "default_checkpoint", "load", "encode_audio",
           "decode_latents", "morph_latents", "save_latents", "load_latents", "write_wav", "LATENTS_FORMAT"]

LATENTS_FORMAT = "stylekit.spectral.latents/1"
#: The checkpoint shipped with stylekit (deep AE, latent 16; see weights/spectral/README.md).
# stylekit/weights links to the repository's weights/ (and is package data), so this works installed too.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "spectral" / "dae_l16.pt"
DEFAULT_CHECKPOINT_SHA256 = "f1c63a0d10a369196fcdf895182fe54b526b27e1a3ddc620d92e1b8864a7f6ac"


def default_checkpoint() -> Path:
    """Path of the shipped checkpoint after checking its sha256 (a :class:`WeightsError` says what to do)."""
    import hashlib
    p = DEFAULT_CHECKPOINT
    if not p.is_file():
        raise WeightsError(f"{p}: the shipped spectral checkpoint is missing; pass --model MODEL.pt "
                           "or restore weights/spectral/ from the stylekit repository")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != DEFAULT_CHECKPOINT_SHA256:
        raise WeightsError(f"{p}: sha256 {digest[:12]}... does not match the registered "
                           f"{DEFAULT_CHECKPOINT_SHA256[:12]}...; restore the file from the repository")
    return p


def load(path: str | os.PathLike | None = None):
    """``load_model(path)``, or of the shipped checkpoint when ``path`` is None. Returns (model, stft, meta)."""
    return load_model(default_checkpoint() if path is None else path)


@torch.no_grad()
def encode_audio(model: SpectralModel, stft, y: np.ndarray) -> torch.Tensor:
    """Mono audio ``(n_samples,)`` -> latent sequence ``(n_frames, latent)``."""
    return model.encode(torch.from_numpy(to_features(y, stft)))


@torch.no_grad()
def decode_latents(model: SpectralModel, stft, z: torch.Tensor, *, length: int | None = None,
                   seed: int = 0) -> np.ndarray:
    """Latent sequence ``(n_frames, latent)`` -> mono audio ``(length,)`` in [-1, 1] via Griffin-Lim."""
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
    return to_audio(np.clip(x, 0.0, 1.0), stft, length=length, seed=seed)


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
    when it is not finite: nothing is written that decodes to NaN)."""
    if not bool(torch.isfinite(z).all()):
        raise ConfigError(f"{path}: the latents are not finite (NaN or infinite); nothing written")
    obj = {"format": LATENTS_FORMAT, "latents": z.detach().cpu().float().contiguous(), "length": int(length),
           "checkpoint_digest": meta.get("checkpoint_digest", "")}
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, lambda t: t.write_bytes(buf.getvalue()), overwrite=overwrite)


def load_latents(path: str | os.PathLike, *, meta: dict) -> tuple[torch.Tensor, int]:
    """Read :func:`save_latents`' file; refuses latents made by another checkpoint. Returns (z, length)."""
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
    """Write mono 16-bit PCM atomically (through stylekit's one WAV writer, :func:`stylekit.audio.io.write_audio`)."""
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
