#!/usr/bin/env python3
"""Blend several styles: one photo painted after a weighted mix of two paintings.

What it shows
-------------
``stylize_image(content, [style_a, style_b], style_blend=(w, 1 - w))`` for a few weights ``w``: the style
target is the weighted mean of the paintings' Gram matrices (the weights are normalised), so ``w`` slides the
result from one painting's texture to the other's. The CLI spells it
``stylekit image photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 -o out.png``. The script writes one image per
weight plus a strip of all of them (``blend_strip.jpg``) into the output folder.

    python examples/blend_styles.py --out blends/                 # 5 weights at 256 px: 5 full runs at the defaults
    python examples/blend_styles.py --out /tmp/blends --fast      # seconds: 64 px, 3 weights, 3 iterations (CI)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", type=Path, default=IMAGES / "chelsea.png")
    ap.add_argument("--styles", type=Path, nargs=2, default=[IMAGES / "starry_night.jpg", IMAGES / "shipwreck.jpg"],
                    metavar=("A", "B"), help="two paintings [default: The Starry Night, The Shipwreck]")
    ap.add_argument("--out", type=Path, required=True, help="output folder (created)")
    ap.add_argument("--size", type=int, default=256, help="long edge in pixels [default: 256]")
    ap.add_argument("--fast", action="store_true", help="tiny smoke run: 64 px, 3 weights, 3 iterations")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()

    import torch

    from stylekit import ImageStyleConfig, StylekitError, stylize_image
    from stylekit.image import save_image

    weights = (1.0, 0.5, 0.0) if args.fast else (1.0, 0.75, 0.5, 0.25, 0.0)
    base = ImageStyleConfig(size=64, scales=1, iterations=3) if args.fast else ImageStyleConfig(size=args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for w in weights:
            # A weight of 0 leaves that painting out of the target, exactly as if it were not given.
            cfg = dataclasses.replace(base, style_blend=(w, 1.0 - w))
            out = stylize_image(args.content, list(args.styles), config=cfg).data
            path = save_image(out, args.out / f"blend_{w:.2f}.jpg", overwrite=args.overwrite,
                              metadata={"styles": [str(s) for s in args.styles], "config": cfg.to_dict()})
            results.append(out)
            print(f"style_blend=({w:.2f}, {1 - w:.2f}) -> {path}", flush=True)
        strip = torch.cat(results, dim=-1)  # same photo, same size: side by side
        save_image(strip, args.out / "blend_strip.jpg", overwrite=args.overwrite)
    except StylekitError as e:  # one readable line for a bad path, an existing output, a bad option
        sys.exit(f"error: {e}")
    print(f"wrote {len(results)} images and blend_strip.jpg to {args.out}")


if __name__ == "__main__":
    main()
