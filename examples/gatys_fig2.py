#!/usr/bin/env python3
"""Render one photograph in several styles, as in Gatys et al. (2016), Fig. 2, with stylekit's defaults.

What it shows
-------------
The bundled cat photo painted after Van Gogh's *The Starry Night*, after Turner's *The Shipwreck* (one of the
styles of Fig. 2), and after a 50/50 blend of both, every one at stylekit's default settings (nothing tuned per
image). It writes each result plus a contact sheet to docs/gallery/ and the settings to
docs/gallery/settings.json; re-running it reproduces them (deterministic on the CPU).

    python examples/gatys_fig2.py                 # defaults: 384 px on the CPU, 512 px on a GPU
    python examples/gatys_fig2.py --size 48 --iterations 2 --out /tmp/fig2   # CI smoke run
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=None, help="override iterations (and coarse iterations)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    args = ap.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylekit import ImageStyleConfig, stylize_image
    from stylekit._io import atomic_write
    from stylekit.image import load_image, save_image

    img = HERE / "images"
    content = img / "chelsea.png"
    styles = {"starry_night": [img / "starry_night.jpg"], "shipwreck": [img / "shipwreck.jpg"],
              "blend": [img / "starry_night.jpg", img / "shipwreck.jpg"]}
    overrides = {}
    if args.size:
        overrides["size"] = args.size
    if args.iterations:
        overrides.update(iterations=args.iterations, coarse_iterations=args.iterations)
    cfg = ImageStyleConfig(**overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    results, settings = {}, {"config": cfg.to_dict(), "content": content.name, "runs": {}}
    for name, paths in styles.items():
        t = time.perf_counter()
        out = stylize_image(content, paths, config=cfg).data
        dt = time.perf_counter() - t
        save_image(out, args.out / f"chelsea_{name}.jpg", overwrite=True, metadata={"config": cfg.to_dict()})
        results[name] = out
        settings["runs"][name] = {"styles": [p.name for p in paths], "seconds": round(dt, 1)}
        print(f"{name}: {dt:.0f} s")

    fig, axes = plt.subplots(2, 4, figsize=(16, 6.2), dpi=100)
    panels = [("photograph", load_image(content)), ("The Starry Night", load_image(styles["starry_night"][0])),
              ("The Shipwreck", load_image(styles["shipwreck"][0])), ("", None),
              ("", None), ("after The Starry Night", results["starry_night"]),
              ("after The Shipwreck", results["shipwreck"]), ("blend of both", results["blend"])]
    for ax, (title, x) in zip(axes.flat, panels):
        ax.axis("off")
        if x is not None:
            ax.imshow(x[0].permute(1, 2, 0).numpy())
            ax.set_title(title)
    fig.tight_layout()
    atomic_write(args.out / "fig2.jpg", lambda tmp: fig.savefig(tmp, format="jpg"), overwrite=True)
    atomic_write(args.out / "settings.json", lambda tmp: tmp.write_text(json.dumps(settings, indent=2)), overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
