#!/usr/bin/env python3
"""Make the listening examples of docs/audio.md: inputs, results and spectrograms with Hz on the axis.

    python docs/audio/make_examples.py [OUT_DIR]        # default: docs/audio

Every example runs :func:`stylekit.stylize_audio` at the defaults except for the option named in its entry of
``EXAMPLES``, on the example voice (``examples/audio/voice.wav``) and the example textures. The stereo example
makes its inputs here, from the example voice (at 44.1 kHz, panned to the left) and a bright 44.1 kHz texture
synthesised from a seed (shaker noise above 6 kHz and bells up to 9 kHz), so that the page shows the content's
rate, its channels and the band above 11 kHz. Writes ``ex_NAME.wav`` (result), ``ex_NAME.png`` (figure) and the
inputs ``in_NAME.wav``; nothing else.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"

#: name -> (content, style, options, caption)
EXAMPLES = {
    "organ": ("voice", "texture_organ", {}, "voice x organ, defaults"),
    "marimba": ("voice", "texture_marimba", {}, "voice x marimba (percussive), defaults"),
    "rain": ("voice", "texture_rain", {}, "voice x rain, defaults"),
    "organ_words02": ("voice", "texture_organ", {"words": 0.2}, "voice x organ, --words 0.2"),
    "organ_words08": ("voice", "texture_organ", {"words": 0.8}, "voice x organ, --words 0.8"),
    "stereo": ("voice_stereo44k", "shaker44k", {}, "44.1 kHz stereo voice (panned left) x bright texture"),
}


def _made_inputs(out: Path) -> dict[str, Path]:
    """The inputs of the stereo example, written beside the results."""
    import librosa
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    sr = 44100
    v, _ = librosa.load(str(AUDIO / "voice.wav"), sr=sr, mono=True)
    voice = out / "in_voice_stereo44k.wav"
    sf.write(str(voice), np.stack([0.9 * v, 0.35 * v], 1).astype(np.float32), sr, subtype="PCM_16")
    rng = np.random.default_rng(0)
    t = np.arange(5 * sr) / sr
    shaker = sosfilt(butter(4, 6000, "hp", fs=sr, output="sos"), rng.standard_normal(len(t)))
    shaker *= np.exp(-(t % 0.125) / 0.02)
    bells = sum(np.sin(2 * np.pi * f * t) * np.exp(-3 * (t % 1.0)) for f in (880, 2637, 5274, 9000))
    y = 0.25 * shaker / np.abs(shaker).max() + 0.25 * bells / np.abs(bells).max()
    style = out / "in_shaker44k.wav"
    sf.write(str(style), np.stack([y, np.roll(y, 300)], 1).astype(np.float32), sr, subtype="PCM_16")
    return {"voice_stereo44k": voice, "shaker44k": style}


def _copy_input(name: str, out: Path) -> Path:
    import soundfile as sf

    y, sr = sf.read(str(AUDIO / f"{name}.wav"))
    path = out / f"in_{name}.wav"
    sf.write(str(path), y, sr, subtype="PCM_16")
    return path


def _db(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """STFT level in dB re full scale of the mono mix, with its frequencies (Hz) and times (s)."""
    import librosa

    y = y.mean(1) if y.ndim == 2 else y
    n_fft = 2048 if sr <= 24000 else 4096
    s = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=n_fft // 4)) / (n_fft / 4)
    return (20 * np.log10(s + 1e-6), librosa.fft_frequencies(sr=sr, n_fft=n_fft),
            librosa.frames_to_time(np.arange(s.shape[1]), sr=sr, hop_length=n_fft // 4))


def figure(panels: list[tuple[str, np.ndarray, int]], path: Path, title: str) -> None:
    """Spectrograms side by side: frequency in Hz (log axis), time in s, one colour scale in dB."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [(name, *_db(y, sr)) for name, y, sr in panels]
    top = max(float(s.max()) for _, s, _, _ in specs)
    fig, axes = plt.subplots(1, len(specs), figsize=(4.2 * len(specs), 3.4), constrained_layout=True)
    for ax, (name, s, f, t) in zip(axes, specs):
        im = ax.pcolormesh(t, f[1:], s[1:], shading="auto", cmap="magma", vmin=top - 80, vmax=top)
        ax.set_yscale("log")
        ax.set_ylim(50, f[-1])
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
    fig.colorbar(im, ax=axes, label="dB re full scale")
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(out: Path) -> None:
    import soundfile as sf

    import stylekit
    out.mkdir(parents=True, exist_ok=True)
    made = _made_inputs(out)
    for name, (content, style, options, caption) in EXAMPLES.items():
        c = made.get(content) or _copy_input(content, out)
        s = made.get(style) or _copy_input(style, out)
        r = stylekit.stylize_audio(str(c), str(s), **options)
        sf.write(str(out / f"ex_{name}.wav"), r.data, r.sample_rate, subtype="PCM_16")
        panels = [(f"content ({Path(c).stem[3:]})", *sf.read(str(c))),
                  (f"style ({Path(s).stem[3:]})", *sf.read(str(s))), ("result", r.data, r.sample_rate)]
        figure(panels, out / f"ex_{name}.png", caption)
        print(name, r.sample_rate, r.data.shape, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
