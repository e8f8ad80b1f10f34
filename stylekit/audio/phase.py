"""Phase reconstruction: fast Griffin-Lim with momentum, started from a given phase.

Notes
-----
librosa's :func:`librosa.griffinlim` implements the same fast Griffin-Lim (Perraudin, Balazs and Sondergaard
2013) but only starts from random or zero phase. Style transfer keeps the content's timing, so the content's
own STFT phase is a far better start (Grinstein et al. 2018 also re-use it); that one difference is why this
loop is written here, in torch, where it also runs on the device of the rest of the pipeline.
The update is exactly librosa's: ``c_n = P(x_n) - m / (1 + m) * P(x_{n-1})``, projected onto unit modulus.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["stft", "istft", "griffin_lim"]


def _window(n_fft: int, dtype=torch.float32, device=None) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device)


def stft(y: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT, hann window, centred with reflect padding.

    Parameters
    ----------
    y : torch.Tensor
        Shape (n,), float32, on any device (the result is on the same device).

    Returns
    -------
    torch.Tensor
        Shape (n_fft // 2 + 1, 1 + n // hop_length), complex64, *not* normalised (a full-scale sine of a bin
        frequency has magnitude ``n_fft / 4``).

    Examples
    --------
    >>> import torch
    >>> stft(torch.randn(2205), n_fft=256, hop_length=64).shape     # (n_fft // 2 + 1, frames), complex
    torch.Size([129, 35])
    """
    return torch.stft(y, n_fft, hop_length=hop_length, window=_window(n_fft, y.dtype, y.device), center=True,
                      pad_mode="reflect", return_complex=True)


def istft(spec: torch.Tensor, *, n_fft: int, hop_length: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add), returning exactly ``length`` samples (shape (length,)).

    Examples
    --------
    >>> import torch
    >>> y = torch.randn(2205)
    >>> torch.allclose(istft(stft(y, n_fft=256, hop_length=64), n_fft=256, hop_length=64, length=2205), y, atol=1e-4)
    True
    """
    return torch.istft(spec, n_fft, hop_length=hop_length, window=_window(n_fft, device=spec.device), center=True,
                       length=length)


def griffin_lim(magnitude: torch.Tensor | np.ndarray, *, n_fft: int, hop_length: int, length: int,
                n_iter: int = 32, momentum: float = 0.99, init_phase: torch.Tensor | np.ndarray | None = None,
                seed: int = 0, device: torch.device | str | None = None) -> np.ndarray:
    """Reconstruct a signal from an STFT magnitude by fast Griffin-Lim.

    Parameters
    ----------
    magnitude : torch.Tensor or np.ndarray
        Shape (n_fft // 2 + 1, frames), non-negative, on the scale of :func:`stft`.
    n_fft, hop_length : int
        STFT parameters (hann window, centred).
    length : int
        Number of output samples.
    n_iter : int, optional
        Iterations (0 returns the signal built from the initial phase).
    momentum : float, optional
        Fast Griffin-Lim momentum in [0, 1); 0 gives classic Griffin-Lim (default 0.99 as in librosa).
    init_phase : array, optional
        Shape like ``magnitude``, phase in radians to start from; random (seeded) when omitted.
    seed : int, optional
        Seed for the random start (drawn on the CPU, so every device starts from the same phase).
    device : torch.device or str, optional
        Where the FFTs run (default: the magnitude's device when it is a tensor, else the CPU).

    Returns
    -------
    np.ndarray
        Shape (length,), float32.

    Examples
    --------
    >>> import torch
    >>> y = torch.sin(torch.arange(2205) * 0.125)
    >>> spec = stft(y, n_fft=256, hop_length=64)
    >>> griffin_lim(spec.abs(), n_fft=256, hop_length=64, length=2205, n_iter=8, init_phase=spec.angle()).shape
    (2205,)
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    mag = torch.as_tensor(np.asarray(magnitude) if not torch.is_tensor(magnitude) else magnitude,
                          dtype=torch.float32)
    if device is not None:
        mag = mag.to(device)
    if init_phase is None:
        g = torch.Generator().manual_seed(seed)
        phase = (2 * np.pi * torch.rand(mag.shape, generator=g)).to(mag.device)
    else:
        phase = torch.as_tensor(np.asarray(init_phase) if not torch.is_tensor(init_phase) else init_phase,
                                dtype=torch.float32).to(mag.device)
        if phase.shape != mag.shape:
            raise ValueError(f"init_phase shape {tuple(phase.shape)} != magnitude shape {tuple(mag.shape)}")
    angles = torch.polar(torch.ones_like(mag), phase)
    prev = torch.zeros_like(angles)
    k = momentum / (1.0 + momentum)
    eps = 1e-16
    # One thread: these FFTs are too small to gain from more, and on a busy machine torch's thread pool
    # spin-waits for cores other processes hold (docs/benchmarks.md).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(n_iter):
                y = istft(mag * angles, n_fft=n_fft, hop_length=hop_length, length=length)
                rebuilt = stft(y, n_fft=n_fft, hop_length=hop_length)
                angles = rebuilt - k * prev
                prev = rebuilt
                angles = angles / (angles.abs() + eps)
            y = istft(mag * angles, n_fft=n_fft, hop_length=hop_length, length=length)
    finally:
        torch.set_num_threads(threads)
    return y.cpu().numpy().astype(np.float32)
