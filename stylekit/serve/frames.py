"""Pictures for the page as raw 8-bit pixels: previews of a run, and spectrograms of sounds.

The page draws them on a canvas (``putImageData``), so the server encodes nothing: a frame is its size, its
channels (3: RGB, 1: a spectrogram the page colours) and its bytes, row by row from the top.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

__all__ = ["Frame", "image_frame", "spectrogram_frame", "MAX_SPECTROGRAM_COLUMNS", "DB_RANGE"]

#: A spectrogram wider than this is averaged down in time (a minute of sound is ~2,600 frames).
MAX_SPECTROGRAM_COLUMNS = 1200
#: The dB range a spectrogram shows below its peak (as :func:`stylekit.audio.pipeline.plot_spectrograms`).
DB_RANGE = 80.0


@dataclass(frozen=True)
class Frame:
    """``height`` rows of ``width`` pixels of ``channels`` bytes each.

    Examples
    --------
    >>> import torch
    >>> frame = image_frame(torch.rand(1, 3, 4, 6))
    >>> frame.width, frame.height, frame.channels, len(frame.data)
    (6, 4, 3, 72)
    """

    width: int
    height: int
    channels: int
    data: bytes

    def to_json(self) -> dict:
        return {"w": self.width, "h": self.height, "c": self.channels, "data": base64.b64encode(self.data).decode()}


def image_frame(x) -> Frame:
    """A ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in [0, 1] (clamped) as an RGB frame.

    Examples
    --------
    >>> import torch
    >>> list(image_frame(torch.ones(1, 3, 1, 2)).data)          # two white pixels, RGB bytes
    [255, 255, 255, 255, 255, 255]
    """
    if x.dim() == 4:
        x = x[0]
    arr = x.detach().float().clamp(0, 1).mul(255).round().to("cpu").byte().permute(1, 2, 0).contiguous().numpy()
    return Frame(arr.shape[1], arr.shape[0], 3, arr.tobytes())


def _pool_columns(a: np.ndarray, most: int) -> np.ndarray:
    if a.shape[1] <= most:
        return a
    k = -(-a.shape[1] // most)
    n = a.shape[1] // k * k
    pooled = a[:, :n].reshape(a.shape[0], -1, k).mean(axis=2)
    return np.concatenate([pooled, a[:, n:].mean(axis=1, keepdims=True)], axis=1) if n < a.shape[1] else pooled


def spectrogram_frame(spec: np.ndarray, *, span: tuple[float, float] | None = None) -> Frame:
    """A ``(bins, frames)`` spectrogram as a one-channel frame, low frequencies at the bottom.

    ``spec`` is a natural-log magnitude (:func:`stylekit.audio.transform.to_spectrogram`), shown over the
    :data:`DB_RANGE` dB below its peak; or, with ``span``, values mapped linearly from ``span`` to 0..255 (the
    optimiser's [0, 1] variables during a run).

    Examples
    --------
    >>> frame = spectrogram_frame(np.random.default_rng(0).random((32, 50)))
    >>> (frame.height, frame.width) == (32, 50) or frame.height <= 32
    True
    """
    a = np.asarray(spec, dtype=np.float32)
    if span is None:
        a = a * (20.0 / np.log(10.0))          # natural log -> dB
        top = float(a.max()) if a.size else 0.0
        span = (top - DB_RANGE, top)
    lo, hi = span
    a = _pool_columns(a, MAX_SPECTROGRAM_COLUMNS)
    img = np.clip((a - lo) / max(hi - lo, 1e-12), 0.0, 1.0)[::-1]
    img = np.ascontiguousarray(np.round(img * 255).astype(np.uint8))
    return Frame(img.shape[1], img.shape[0], 1, img.tobytes())
