"""Morph a piano note into a violin note through the latent space of the shipped spectral autoencoder.

What it shows: the deep autoencoder of Roche et al. (SMC 2019) that stylekit ships (``weights/spectral/
dae_l16.pt``, latent size 16) encodes every 16 ms magnitude frame of a note into 16 numbers. Mixing the latent
sequences of two notes, ``(1 - a) z_piano + a z_violin``, and decoding gives spectra that move between the two
timbres; Griffin-Lim turns them back into sound. The script renders the two source notes itself with FluidSynth
(Debian's ``fluidsynth`` + ``fluid-soundfont-gm``), writes ``morph_a0.00.wav`` ... ``morph_a1.00.wav`` and a
figure of their spectrograms into the output folder, and prints the log-spectral distance of each morph to the
two sources (it falls from piano to violin as ``a`` grows).

Usage::

    python examples/spectral_morph.py --out /tmp/morph          # 5 morphs + figure
    python examples/spectral_morph.py --out /tmp/morph --fast   # 3 morphs, 8 Griffin-Lim iterations (CI)
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from stylekit._io import atomic_write
from stylekit.spectral.evaluate import rmse_db
from stylekit.spectral.features import to_features
from stylekit.spectral.nsynth import load_audio, read_split
from stylekit.spectral.resynth import decode_latents, encode_audio, load, morph_latents, write_wav
from stylekit.spectral.synth import SynthConfig, synthesize


def render_sources(tmp: Path) -> tuple[Path, Path]:
    """Render C4 (MIDI 60) at velocity 100 on GM piano (0) and violin (40) with FluidR3_GM (a third program,
    guitar, only because the generator needs three instruments for its three splits)."""
    cfg = SynthConfig(programs=(0, 40, 24), pitches=(60,), velocities=(100,),
                      soundfonts=("/usr/share/sounds/sf2/FluidR3_GM.sf2",))
    synthesize(tmp, cfg, jobs=1)
    notes = {n.instrument % 128: n.path for s in ("train", "valid", "test") for n in read_split(tmp, s)}
    return notes[0], notes[40]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (created; files are not overwritten)")
    ap.add_argument("--fast", action="store_true", help="3 morphs, 8 Griffin-Lim iterations, no figure")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped DAE, latent 16)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model, stft, _ = load(args.model)
    if args.fast:
        stft = dataclasses.replace(stft, griffin_lim_iters=8)
    alphas = (0.0, 0.5, 1.0) if args.fast else (0.0, 0.25, 0.5, 0.75, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        piano, violin = render_sources(Path(tmp))
        ya, yb = load_audio(piano, sample_rate=stft.sample_rate), load_audio(violin, sample_rate=stft.sample_rate)
    za, zb = encode_audio(model, stft, ya), encode_audio(model, stft, yb)
    xa, xb = to_features(ya, stft), to_features(yb, stft)
    specs = []
    for a in alphas:
        y = decode_latents(model, stft, morph_latents(za, zb, alpha=a), length=len(ya))
        path = write_wav(args.out / f"morph_a{a:.2f}.wav", y, stft.sample_rate)
        x = to_features(y, stft)
        specs.append(x)
        print(f"a={a:.2f}: {path}  log-spectral distance to piano {rmse_db(xa, x, stft):5.2f} dB, "
              f"to violin {rmse_db(xb, x, stft):5.2f} dB")
    if not args.fast:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(specs), figsize=(3 * len(specs), 3), sharey=True)
        for ax, a, x in zip(axes, alphas, specs):
            ax.imshow(x.T[:200], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
            ax.set(title=f"a = {a:.2f}", xlabel="frame")
        axes[0].set_ylabel("bin (0-3.1 kHz)")
        fig.tight_layout()
        atomic_write(args.out / "morph_spectrograms.png", lambda t: fig.savefig(t, dpi=100))
        print(args.out / "morph_spectrograms.png")


if __name__ == "__main__":
    main()
