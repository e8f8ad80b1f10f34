#!/usr/bin/env python3
"""Make every picture of the image guide (docs/guide/) with stylekit itself, and record the settings used.

Each figure is a strip of results that differ in one option of :class:`stylekit.ImageStyleConfig`; all other
settings are the base settings below (short ones, so the whole script runs in a few minutes on a 2-core CPU).
The script writes ``docs/guide/*.jpg`` and ``docs/guide/settings.json`` (the base config, every panel's
overrides and its final loss terms). Runs are seeded and single-threaded, so re-running it reproduces the
pictures on the same machine and library versions.

    OMP_NUM_THREADS=1 python docs/make_figures.py                         # docs/guide/, a few minutes
    OMP_NUM_THREADS=1 python docs/make_figures.py --size 64 --iterations 2 --out /tmp/guide   # smoke run

Inputs are the bundled images in examples/images/ only. The torchvision VGG19 weights are used only when
they are already in the torch hub cache (nothing is downloaded); without them the weights figure shows the
caffe result alone and settings.json says so.

Other pictures in the docs come from their own scripts: docs/gallery/ from examples/gatys_fig2.py, docs/audio/
from examples/audio_style_transfer.py, docs/spectral/ from ``stylekit spectral compare`` (see docs/spectral.md).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGES = ROOT / "examples" / "images"
CONTENT = IMAGES / "chelsea.png"
STARRY = IMAGES / "starry_night.jpg"
SHIPWRECK = IMAGES / "shipwreck.jpg"

#: Base settings of every panel (each figure changes one option). Short, so the script runs in minutes.
BASE = {"size": 160, "scales": 2, "min_size": 96, "iterations": 30, "coarse_iterations": 20,
        "device": "cpu", "seed": 0}

LOW = {"relu1_1": 0.5, "relu2_1": 0.5}
DEEP = {"relu3_1": 1 / 3, "relu4_1": 1 / 3, "relu5_1": 1 / 3}

#: figure name -> list of (panel title, style images, overrides of BASE).
FIGURES: dict[str, list[tuple[str, list[Path], dict]]] = {
    "tradeoff": [
        ("style weight 0.5", [STARRY], {"style_weight": 0.5}),
        ("style weight 5 (default)", [STARRY], {}),
        ("style weight 50", [STARRY], {"style_weight": 50.0}),
    ],
    "style_scale": [
        ("style scale 0.5", [STARRY], {"style_scale": 0.5}),
        ("style scale 1 (default)", [STARRY], {}),
        ("style scale 2", [STARRY], {"style_scale": 2.0}),
    ],
    "preserve_color": [
        ("none (default)", [STARRY], {}),
        ("luminance", [STARRY], {"preserve_color": "luminance"}),
        ("histogram", [STARRY], {"preserve_color": "histogram"}),
    ],
    "pooling": [
        ("max pooling (default)", [STARRY], {}),
        ("average pooling", [STARRY], {"pooling": "avg"}),
    ],
    "layers": [
        ("style relu1_1, relu2_1", [STARRY], {"style_layers": LOW}),
        ("relu1_1 ... relu5_1 (default)", [STARRY], {}),
        ("style relu3_1, relu4_1, relu5_1", [STARRY], {"style_layers": DEEP}),
    ],
    "blend": [
        ("The Starry Night", [STARRY], {}),
        ("blend 0.5, 0.5", [STARRY, SHIPWRECK], {"style_blend": (0.5, 0.5)}),
        ("The Shipwreck", [SHIPWRECK], {}),
    ],
    "coarse_to_fine": [
        ("single scale, 50 it", [STARRY], {"scales": 1, "iterations": 50}),
        ("2 scales, 20 + 30 it (as above)", [STARRY], {}),
    ],
    "weights": [
        ("caffe (default)", [STARRY], {}),
        ("torchvision", [STARRY], {"weights": "torchvision"}),
    ],
    "style_losses": [
        ("gram (default)", [STARRY], {}),
        ("mean-std", [STARRY], {"style_loss": "mean-std"}),
        ("w2", [STARRY], {"style_loss": "w2"}),
        ("sw", [STARRY], {"style_loss": "sw"}),
        ("hist", [STARRY], {"style_loss": "hist"}),
    ],
    "masks": [
        ("mask of The Starry Night", [], {"show_mask": "halves"}),
        ("masked, two styles", [STARRY, SHIPWRECK], {"masks": "halves"}),
        ("blend 0.5, 0.5, no mask", [STARRY, SHIPWRECK], {"style_blend": (0.5, 0.5)}),
    ],
}


def mask_pair(name: str, hw: tuple[int, int]) -> list:
    """The style masks a figure names, as tensors at the photo's size: ``"halves"`` = a soft left/right split
    (white on the left for the first style; a grey band of a tenth of the width blends the two)."""
    import torch
    h, w = hw
    x = torch.linspace(0, 1, w)
    left = ((0.55 - x) / 0.1).clamp(0, 1).expand(h, w)
    return [left, 1 - left]


def torchvision_weights_cached() -> Path | None:
    """The cached torchvision VGG19 file, or None. Checked by path so that nothing is ever downloaded."""
    import torch
    from torchvision.models import VGG19_Weights

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_Weights.IMAGENET1K_V1.url).name
    return path if path.is_file() else None


def strip(panels: list[tuple[str, "torch.Tensor"]], path: Path, *, quality: int = 85) -> None:
    """Save images side by side with a title above each, as a JPEG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylekit._io import atomic_write

    h, w = panels[0][1].shape[-2:]
    dpi = 100
    pw, ph = max(w, 150) / dpi, h / dpi
    fig, axes = plt.subplots(1, len(panels), figsize=(pw * len(panels) * 1.04, ph + 0.3), dpi=dpi, squeeze=False)
    for ax, (title, x) in zip(axes[0], panels):
        ax.imshow(x[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=7.5, pad=3)
        ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.28 / (ph + 0.3), wspace=0.04)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="jpg", pil_kwargs={"quality": quality}),
                 overwrite=True)
    plt.close(fig)


def cover(x, like):
    """Resize ``x`` to cover ``like``'s height and width, then centre-crop it to them."""
    from stylekit.image import resize

    (h, w), (xh, xw) = like.shape[-2:], x.shape[-2:]
    s = max(h / xh, w / xw)
    x = resize(x, (max(h, round(xh * s)), max(w, round(xw * s))))
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def keep_previous(settings: dict, previous: Path) -> None:
    """With --only, keep the other figures' records (when they were made with the same base settings; options
    added since then count as the same when they are at their defaults)."""
    if not previous.is_file():
        return
    old = json.loads(previous.read_text())
    if all(settings["base"].get(k) == v for k, v in old.get("base", {}).items()):
        settings["figures"] = {**old.get("figures", {}), **settings["figures"]}
        settings["figures"] = {k: settings["figures"][k] for k in FIGURES if k in settings["figures"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "guide", help="output folder [default: docs/guide]")
    ap.add_argument("--size", type=int, default=None, help=f"override the long edge ({BASE['size']} px)")
    ap.add_argument("--iterations", type=int, default=None,
                    help="override every panel's iterations and coarse iterations (for a smoke run)")
    ap.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)  # identical results on every run: one thread, fixed seed

    from stylekit import ImageStyleConfig, stylize_image
    from stylekit.image import load_image, resize_long_edge

    base = dict(BASE)
    if args.size:
        base["size"] = args.size
    names = args.only.split(",") if args.only else list(FIGURES)
    unknown = set(names) - set(FIGURES)
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIGURES)}")
    tv_file = torchvision_weights_cached()
    args.out.mkdir(parents=True, exist_ok=True)

    runs: dict[str, dict] = {}
    cache: dict[str, torch.Tensor] = {}
    import stylekit
    settings = {"script": "docs/make_figures.py", "versions": {"stylekit": stylekit.__version__,
                                                               "torch": torch.__version__.split("+")[0]},
                "content": CONTENT.name, "base": ImageStyleConfig(**base).to_dict(),
                "torch_threads": 1, "torchvision_weights": "cached" if tv_file else
                "not in the torch hub cache: panel left out (nothing is downloaded)", "figures": {}}
    t_all = time.perf_counter()

    def run(styles: list[Path], over: dict) -> tuple[str, torch.Tensor]:
        over = dict(over)
        if args.iterations:
            over.update(iterations=args.iterations, coarse_iterations=args.iterations)
        key = json.dumps({"styles": [p.name for p in styles], **over}, sort_keys=True, default=list)
        if "show_mask" in over:      # a panel showing a mask itself
            return key, mask_pair(over["show_mask"], photo.shape[-2:])[0].expand(1, 3, *photo.shape[-2:])
        if key not in cache:
            extra = {"style_masks": mask_pair(over.pop("masks"), photo.shape[-2:])} if "masks" in over else {}
            cfg = ImageStyleConfig(**{**base, **over})
            last = {}
            t = time.perf_counter()
            cache[key] = stylize_image(CONTENT, styles, config=cfg, callback=lambda p: last.update(p.terms),
                                       **extra).data
            runs[key] = {"styles": [p.name for p in styles], "overrides": over,
                         "final_terms": {k: round(float(v), 5) for k, v in last.items()}}
            print(f"  {key}: {time.perf_counter() - t:.1f} s", flush=True)
        return key, cache[key]

    # The inputs, at the output's size (the paintings cropped to the photo's aspect ratio for the strip).
    photo = resize_long_edge(load_image(CONTENT), base["size"])
    inputs = [("photograph (content)", photo), ("The Starry Night (style)", cover(load_image(STARRY), photo)),
              ("The Shipwreck (style)", cover(load_image(SHIPWRECK), photo))]
    strip(inputs, args.out / "inputs.jpg")

    for name in names:
        print(f"{name}:", flush=True)
        panels, record = [], []
        for title, styles, over in FIGURES[name]:
            if over.get("weights") == "torchvision" and tv_file is None:
                record.append({"title": title, "skipped": "torchvision weights not in the torch hub cache"})
                continue
            key, img = run(styles, over)
            panels.append((title, img))
            record.append({"title": title, "run": key, **runs.get(key, {"overrides": over})})
        strip(panels, args.out / f"{name}.jpg")
        settings["figures"][name] = record

    if args.only:
        keep_previous(settings, args.out / "settings.json")

    from stylekit._io import atomic_write
    atomic_write(args.out / "settings.json", lambda tmp: tmp.write_text(json.dumps(settings, indent=2) + "\n"),
                 overwrite=True)
    print(f"wrote {len(names) + 1} figures and settings.json to {args.out} "
          f"({len(cache)} runs, {time.perf_counter() - t_all:.0f} s, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
