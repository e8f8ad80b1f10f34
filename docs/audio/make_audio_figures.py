"""Make the pictures and sounds of docs/audio.md: every feature network x every representation.

For the example voice (``examples/audio/voice.wav``, the first ``--seconds`` seconds) and one example texture
(``--style``, default ``texture_organ``), it runs :func:`stylekit.stylize_audio` once for each of

    network  in ("random", "vgg19")
    kind     in ("mel", "linear")

with every other setting at the library's defaults (:class:`stylekit.audio.pipeline.AudioStyleConfig`), and
writes into OUT_DIR (default: this folder)

- ``{network}_{kind}.wav``: the result, 16-bit, the content's length and loudness;
- ``{network}_{kind}.png``: content, style and result spectrograms side by side (the ``--plot`` figure);
- ``settings.json``: the full config of each run, the excerpt, the seconds each run took, and the machine.

Usage::

    python docs/audio/make_audio_figures.py [OUT_DIR] [--seconds 3] [--style texture_organ] [--overwrite]

Most of the time goes to VGG19 on the linear spectrogram (1025 x 130 "pixels"); the timings of each run are
recorded in settings.json (and discussed in docs/benchmarks.md). Nothing is overwritten without
``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples" / "audio"
NETWORKS = ("random", "vgg19")
KINDS = ("mel", "linear")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path, nargs="?", default=HERE)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the voice excerpt")
    ap.add_argument("--style", default="texture_organ", help="an example texture in examples/audio/")
    ap.add_argument("--only", default=None, help="run only NETWORK_KIND, e.g. random_mel")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()

    import dataclasses

    import torch

    import stylekit
    from stylekit._device import resolve_device
    from stylekit.audio.io import load_audio, write_audio
    from stylekit.audio.pipeline import build_config, plot_spectrograms

    torch.set_num_threads(1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    voice = load_audio(EXAMPLES / "voice.wav")
    n = int(round(args.seconds * voice.sample_rate))
    content = (voice.samples[:n] / voice.gain, voice.sample_rate)      # the excerpt at the file's own level
    style = EXAMPLES / f"{args.style}.wav"

    settings_path = args.out_dir / "settings.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    settings.update({"content": f"examples/audio/voice.wav, first {args.seconds:g} s",
                     "style": f"examples/audio/{args.style}.wav", "stylekit": stylekit.__version__,
                     "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads 1",
                     "device": str(resolve_device("auto"))})
    runs = settings.setdefault("runs", {})
    for network in NETWORKS:
        for kind in KINDS:
            tag = f"{network}_{kind}"
            if args.only and tag != args.only:
                continue
            cfg = build_config(network=network, kind=kind)
            t0 = time.perf_counter()
            result = stylekit.stylize_audio(content, [style], config=cfg)
            seconds = time.perf_counter() - t0
            wav = args.out_dir / f"{tag}.wav"
            write_audio(wav, result.data, result.sample_rate, overwrite=args.overwrite)
            plot_spectrograms(result, wav.with_suffix(".png"), overwrite=args.overwrite)
            changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                       if f.name != "spectrogram" and getattr(cfg, f.name) != f.default}
            changed.update({f"spectrogram.{f.name}": getattr(cfg.spectrogram, f.name)
                            for f in dataclasses.fields(cfg.spectrogram)
                            if getattr(cfg.spectrogram, f.name) != f.default})
            runs[tag] = {"changed_from_defaults": changed, "config": cfg.to_dict(),
                         "seconds": round(seconds, 1)}
            print(f"{wav.name}: {seconds:.1f} s ({', '.join(f'{k}={v}' for k, v in changed.items())})", flush=True)
    settings_path.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
