#!/usr/bin/env python3
"""Write the held-out voice/texture pairs of docs/audio.md into a folder (none of them is in the repository).

    python benchmarks/make_heldout.py DIR [--set heldout|recorded]

Needs espeak-ng, sox and (for ``recorded``) fluidsynth with the FluidR3_GM soundfont on the PATH. Contents:
espeak-ng sentences (``voice1``: ``-v en-gb -s 150``, ``voice2``: ``-v en-us+f3 -s 130``, ``voice3``:
``-v en-us -s 140``; 22.05 kHz mono). Styles, 6 s each:

- ``heldout`` (the seven pairs of docs/audio.md): ``brown`` (sox brown noise with a 3 Hz tremolo), ``chord``
  (sox sawtooth A-C#-E chord low-passed at 2 kHz), ``guitar`` (a NumPy Karplus-Strong arpeggio, 4 notes/s),
  ``pluck`` (sox plucked C-E-G every 0.25 s), ``shaker`` (44.1 kHz stereo: high-passed noise bursts and bells,
  NumPy);
- ``recorded`` (four more, with sampled instruments): ``piano``, ``violin``, ``flute`` (FluidSynth, General
  MIDI programs 0, 40, 73, a short overlapping melody) and ``wind`` (sox white noise band-passed at 800 Hz
  with a slow tremolo).

Writes every file, and prints the set's pairs as ``--pair CONTENT:STYLE`` arguments for ``bench_audio.py``.
"""
from __future__ import annotations

import argparse
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from stylekit.spectral.synth import _vlq     # MIDI variable-length numbers, as the note renderer writes them

VOICES = {
    "voice1": (["-v", "en-gb", "-s", "150"],
               "The quick brown fox jumps over the lazy dog, and then it runs back home before dark."),
    "voice2": (["-v", "en-us+f3", "-s", "130"],
               "Style transfer puts the texture of one sound on the words of another."),
    "voice3": (["-v", "en-us", "-s", "140"],
               "A small boat drifted past the harbour lights while the band played on the pier."),
}
SETS = {"heldout": [("voice1", "brown"), ("voice2", "chord"), ("voice1", "guitar"), ("voice2", "pluck"),
                    ("voice1", "shaker"), ("voice2", "brown"), ("voice1", "chord")],
        "recorded": [("voice3", "piano"), ("voice1", "violin"), ("voice2", "flute"), ("voice3", "wind")]}
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def _sox(out: Path, *args: str) -> None:
    subprocess.run(["sox", "-R", "-n", "-r", "22050", "-c", "1", "-b", "16", str(out), *args], check=True)


def _guitar(sr: int = 22050, seconds: float = 6.0) -> np.ndarray:
    """Karplus-Strong plucks of an A minor arpeggio, 4 notes per second, each ringing into the next."""
    rng = np.random.default_rng(0)
    notes = [220.0, 261.63, 329.63, 440.0, 329.63, 261.63, 196.0, 246.94]
    y = np.zeros(int(sr * seconds) + 2 * sr)
    step = sr // 4
    for i in range(int(seconds * 4)):
        f = notes[i % len(notes)]
        period = int(round(sr / f))
        buf = rng.uniform(-1, 1, period)
        n = int(1.5 * sr)
        out = np.empty(n)
        for k in range(n):
            out[k] = buf[k % period]
            buf[k % period] = 0.996 * 0.5 * (buf[k % period] + buf[(k + 1) % period])
        y[i * step:i * step + n] += out
    y = y[:int(sr * seconds)]
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _shaker(sr: int = 44100, seconds: float = 6.0) -> np.ndarray:
    """Stereo: high-passed noise bursts 8 per second, alternating sides, with two bells ringing over them."""
    rng = np.random.default_rng(1)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    noise = rng.standard_normal((n, 2))
    spec = np.fft.rfft(noise, axis=0)
    spec[np.fft.rfftfreq(n, 1 / sr) < 5000] = 0
    hp = np.fft.irfft(spec, n, axis=0)
    env = np.exp(-((t * 8) % 1) * 12)
    side = ((t * 8).astype(int) % 2)
    gains = np.stack([np.where(side == 0, 1.0, 0.4), np.where(side == 0, 0.4, 1.0)], 1)
    bells = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t - t0) % 1.5) * 3) * (t >= t0)
                for f, t0 in ((2637.0, 0.0), (3951.0, 0.75)))
    y = hp * env[:, None] * gains + 0.2 * bells[:, None] * np.array([0.7, 1.0])
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _melody(path: Path, program: int, seconds: float = 6.0) -> None:
    """Render a melody (D minor, 3 notes/s, each held 0.45 s so neighbours overlap) with FluidSynth."""
    pitches = [62, 65, 69, 74, 72, 69, 65, 67, 70, 69, 65, 62]
    events = []      # (ms, bytes)
    for i in range(int(seconds * 3)):
        t, p = i * 333, pitches[i % len(pitches)]
        events += [(t, bytes([0x90, p, 90])), (t + 450, bytes([0x80, p, 0]))]
    ev = bytearray(_vlq(0) + bytes([0xFF, 0x51, 3]) + (1_000_000).to_bytes(3, "big") + _vlq(0)
                   + bytes([0xC0, program]))
    now = 0
    for t, msg in sorted(events, key=lambda e: e[0]):
        ev += _vlq(t - now) + msg
        now = t
    ev += _vlq(0) + bytes([0xFF, 0x2F, 0])
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "m.mid", Path(tmp) / "m.wav"
        mid.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(ev))
                        + bytes(ev))
        subprocess.run(["fluidsynth", "-ni", "-q", "-r", "22050", "-T", "wav", "-F", str(wav), SOUNDFONT, str(mid)],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        subprocess.run(["sox", "-R", str(wav), "-c", "1", str(path), "trim", "0", str(seconds), "gain", "-n", "-6"],
                       check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--set", choices=sorted(SETS), default="heldout")
    args = ap.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (opts, text) in VOICES.items():
        subprocess.run(["espeak-ng", *opts, "-w", str(out / f"{name}.raw.wav"), text], check=True)
        subprocess.run(["sox", "-R", str(out / f"{name}.raw.wav"), "-r", "22050", str(out / f"{name}.wav")], check=True)
        (out / f"{name}.raw.wav").unlink()
    _sox(out / "brown.wav", "synth", "6", "brownnoise", "tremolo", "3", "60")
    _sox(out / "chord.wav", "synth", "6", "sawtooth", "220", "sawtooth", "277.18", "sawtooth", "329.63",
         "remix", "-", "lowpass", "2000", "gain", "-n", "-6")
    sf.write(out / "guitar.wav", _guitar(), 22050)
    _sox(out / "pluck1.wav", "synth", "0.25", "pluck", "C4", "pluck", "E4", "pluck", "G4", "remix", "-")
    subprocess.run(["sox", "-R", str(out / "pluck1.wav"), str(out / "pluck.wav"), "repeat", "23", "gain", "-n", "-6"],
                   check=True)
    (out / "pluck1.wav").unlink()
    sf.write(out / "shaker.wav", _shaker(), 44100)
    if args.set == "recorded":
        for name, program in (("piano", 0), ("violin", 40), ("flute", 73)):
            _melody(out / f"{name}.wav", program)
        _sox(out / "wind.wav", "synth", "6", "whitenoise", "sinc", "600-1000", "tremolo", "0.4", "70", "gain", "-n",
             "-6")
    print(" ".join(f"--pair {out / c}.wav:{out / s}.wav" for c, s in SETS[args.set]))


if __name__ == "__main__":
    main()
