#!/usr/bin/env python3
"""Video benchmarks for ``stylekit video`` (issue 21): temporal consistency, speed, and per-frame quality.

    python benchmarks/bench_video.py all --out /tmp/video_results.md    # everything (minutes on a CPU)
    python benchmarks/bench_video.py consistency --size 96 --frames 5          # a quick look
    python benchmarks/bench_video.py speed --size 192 --frames 3               # three scales for the first frame
    python benchmarks/bench_video.py figure --size 128 --out docs/video/objects.jpg   # the picture of the docs

Clips (made here, from the photos in ``/work/shared/data/content``, at exactly the run's frame size so that no
resampling blurs the known motion; H.264 at CRF 12 through ``stylekit.video.io``):

- **pan**: a window sliding 4 px per frame to the right across ``coffee.png``: a camera pan whose motion is known.
- **objects**: a still crop of ``astronaut.png`` with two things moving over it in different directions (the
  cat's face from ``chelsea.png`` and a striped disc): occlusions and motion boundaries.

Measures:

- **pan-compensated error**: mean |r_t(x) - r_{t-1}(x + 4)| over the pixels both frames show, in 0..255 RGB,
  averaged over consecutive pairs; the same for the input frames is the floor the codec leaves.
- **flow-compensated error** (objects): mean |r_t - warp(r_{t-1})| over the pixels the forward-backward check
  marks reliable, with the flow of the input frames (``stylekit.video.flow``), averaged over pairs.
- **speed**: seconds of the first frame and the mean of the others (each includes its flow and set-up).
- **ratios**: ``style_ratio`` and ``content_ratio`` of ``/work/shared/tools/eval_image.py`` for frames of the
  video result and for ``stylekit image`` run on the same input frame with the same settings.

Each figure compares ``--temporal-weight W`` with ``--temporal-weight 0`` (every frame stylized on its own, as
``stylekit image`` would), everything else equal and at the defaults unless given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "content"
STYLE = ROOT / "examples" / "images" / "starry_night.jpg"
EVAL = ROOT.parent / "shared" / "tools" / "eval_image.py"
PAN_DX = 4


def _photo(name: str) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(DATA / name).convert("RGB"))


def _shape(size: int, aspect: float = 1.5) -> tuple[int, int]:
    from stylekit.video.io import frame_shape
    return frame_shape(round(size / aspect), size, size)


def pan_frames(n: int, size: int) -> np.ndarray:
    """``n`` frames of a window moving ``PAN_DX`` px right per frame over coffee.png, at long edge ``size``."""
    h, w = _shape(size)
    img = _photo("coffee.png")
    scale = min(img.shape[0] / (h + 8), img.shape[1] / (w + PAN_DX * n + 8), 1.0)
    if scale < 1.0:
        from PIL import Image
        img = np.asarray(Image.fromarray(img).resize((round(img.shape[1] / scale), round(img.shape[0] / scale))))
    y0, x0 = (img.shape[0] - h) // 2, 4
    return np.stack([img[y0:y0 + h, x0 + PAN_DX * i:x0 + PAN_DX * i + w] for i in range(n)])


def object_frames(n: int, size: int) -> np.ndarray:
    """A still background with the cat's face moving right and down and a striped disc moving left."""
    from PIL import Image
    h, w = _shape(size)
    bg = np.asarray(Image.fromarray(_photo("astronaut.png")[40:380, 0:510]).resize((w, h))).astype(np.float32)
    cat = _photo("chelsea.png")[60:200, 130:300]
    ch, cw = round(h * 0.45), round(h * 0.45 * cat.shape[1] / cat.shape[0])
    cat = np.asarray(Image.fromarray(cat).resize((cw, ch))).astype(np.float32)
    yy, xx = np.mgrid[0:ch, 0:cw]
    cat_alpha = (((yy - ch / 2) / (ch / 2)) ** 2 + ((xx - cw / 2) / (cw / 2)) ** 2 <= 1)[..., None]
    r = round(h * 0.18)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    disc_alpha = (dy ** 2 + dx ** 2 <= r * r)[..., None]
    disc = np.where(((dx + dy) // 4) % 2 == 0, 1.0, 0.0)[..., None] * np.array([230, 40, 40]) + 20
    frames = []
    for i in range(n):
        f = bg.copy()
        _paste(f, cat, cat_alpha, 4 + round(i * w * 0.04), 6 + round(i * h * 0.02))
        _paste(f, disc, disc_alpha, w - 2 * r - 6 - round(i * w * 0.035), h - 2 * r - 8)
        frames.append(f.clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def _paste(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    h, w = src.shape[:2]
    region = dst[y:y + h, x:x + w]
    region[:] = np.where(alpha[:region.shape[0], :region.shape[1]], src[:region.shape[0], :region.shape[1]], region)


def write_clip(frames: np.ndarray, path: Path) -> Path:
    """The frames as an H.264 MP4 (CRF 12, 12 frames per second): the clip a user would give."""
    from fractions import Fraction

    import torch

    from stylekit.video.io import VideoInfo, write_video
    n, h, w = frames.shape[:3]
    info = VideoInfo(str(path), "h264", w, h, n, tuple(range(n)), Fraction(1, 12), Fraction(12))
    write_video(torch.from_numpy(frames), path, info=info, crf=12, overwrite=True)
    return path


def stylize(clip: Path, size: int, weight: float, extra: dict) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(input frames, result frames, wall seconds per frame, CPU seconds per frame) of one run on ``clip``.

    CPU time (this process, all threads) is reported beside wall time: on a shared machine it is the steadier
    of the two."""
    from stylekit.video import VideoStyleConfig, read_video, stylize_video
    from stylekit.video.pipeline import video_style_targets
    frames = read_video(clip, size=size)[0]
    cfg = VideoStyleConfig(size=size, temporal_weight=weight, device="cpu", **extra)
    targets = video_style_targets([str(STYLE)], cfg, max(frames.shape[1:3]))
    cpu = [time.process_time()]
    res = stylize_video(frames, targets, config=cfg, on_frame=lambda p: cpu.append(time.process_time()))
    return frames.numpy(), res.data.numpy(), list(res.seconds), list(np.diff(cpu))


def pan_error(frames: np.ndarray, dx: int = PAN_DX) -> float:
    """Mean |f_t(x) - f_{t-1}(x + dx)| (0..255) over the pixels both show, averaged over consecutive pairs."""
    f = frames.astype(np.float32)
    return float(np.mean([np.abs(f[t][:, :-dx] - f[t - 1][:, dx:]).mean() for t in range(1, len(f))]))


def flow_error(inputs: np.ndarray, frames: np.ndarray) -> float:
    """Mean |r_t - warp(r_{t-1})| (0..255) over reliable pixels, warped by the input frames' flow."""
    from stylekit.video.flow import optical_flow, reliable, warp_flow
    errs = []
    for t in range(1, len(frames)):
        back = optical_flow(inputs[t], inputs[t - 1])
        mask = reliable(back, optical_flow(inputs[t - 1], inputs[t])).astype(bool)
        warped, _ = warp_flow(frames[t - 1].astype(np.float32), back)
        errs.append(float(np.abs(frames[t].astype(np.float32) - warped)[mask].mean()))
    return float(np.mean(errs))


def consistency(args, out: list[str]) -> dict:
    """Both clips, with and without the temporal term: the errors and the speed."""
    extra = _extra(args)
    rows, times = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, measure in (("pan", pan_frames, lambda i, r: pan_error(r)),
                                    ("objects", object_frames, flow_error)):
            clip = write_clip(make(args.frames, args.size), Path(tmp) / f"{name}.mp4")
            for w in (args.weight, 0.0):
                t0 = time.perf_counter()
                inputs, result, secs, cpu = stylize(clip, args.size, w, extra)
                rows[(name, w)] = measure(inputs, result)
                times[(name, w)] = (secs, cpu)
                print(f"{name} temporal-weight {w:g}: error {rows[(name, w)]:.2f}, first frame {secs[0]:.1f} s "
                      f"({cpu[0]:.1f} s CPU), others {np.mean(secs[1:]):.1f} s ({np.mean(cpu[1:]):.1f} s CPU), "
                      f"{time.perf_counter() - t0:.0f} s in all", flush=True)
            rows[(name, "input")] = measure(inputs, inputs)
    out += ["## Temporal consistency", "",
            f"{args.frames} frames at {_shape(args.size)[1]}x{_shape(args.size)[0]} px, style `starry_night.jpg`, "
            f"settings {json.dumps(extra) if extra else 'the defaults'}; error in 0..255 RGB levels.", "",
            "| clip | error measured | input frames | --temporal-weight 0 | "
            f"--temporal-weight {args.weight:g} | ratio |", "| --- | --- | --- | --- | --- | --- |"]
    for name, how in (("pan", "pan-compensated (4 px/frame)"), ("objects", "flow-compensated, reliable pixels")):
        a, b = rows[(name, 0.0)], rows[(name, args.weight)]
        out.append(f"| {name} | {how} | {rows[(name, 'input')]:.2f} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    out += ["", "## Speed", "",
            "Seconds per frame, wall clock and (in brackets) CPU time of the process; each frame's time includes "
            "its optical flow and set-up.", "",
            "| clip | --temporal-weight | first frame | later frames, mean | later / first |",
            "| --- | --- | --- | --- | --- |"]
    for (name, w), (secs, cpu) in times.items():
        later, later_cpu = float(np.mean(secs[1:])), float(np.mean(cpu[1:]))
        out.append(f"| {name} | {w:g} | {secs[0]:.1f} s ({cpu[0]:.1f} s) | {later:.1f} s ({later_cpu:.1f} s) | "
                   f"{later / secs[0]:.2f} ({later_cpu / cpu[0]:.2f}) |")
    return rows


def speed(args, out: list[str]) -> None:
    """Seconds per frame of the pan with the temporal term only (the first frame against the later ones)."""
    extra = _extra(args)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(pan_frames(args.frames, args.size), Path(tmp) / "pan.mp4")
        _, _, secs, cpu = stylize(clip, args.size, args.weight, extra)
    later, later_cpu = float(np.mean(secs[1:])), float(np.mean(cpu[1:]))
    h, w = _shape(args.size)
    out += ["", f"## Speed at {w}x{h} px", "",
            "| clip | --temporal-weight | first frame | later frames, mean | later / first |",
            "| --- | --- | --- | --- | --- |",
            f"| pan, {args.frames} frames | {args.weight:g} | {secs[0]:.1f} s ({cpu[0]:.1f} s) | {later:.1f} s "
            f"({later_cpu:.1f} s) | {later / secs[0]:.2f} ({later_cpu / cpu[0]:.2f}) |"]


def _extra(args) -> dict:
    return json.loads(args.settings) if args.settings else {}


def _eval(out: Path, content: Path) -> dict:
    r = subprocess.run([sys.executable, str(EVAL), str(out), str(content), str(STYLE)], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def ratios(args, out: list[str]) -> None:
    """Frames of the video result of ``--clip`` against ``stylekit image`` on the same input frames."""
    from PIL import Image
    extra = _extra(args)
    picks = sorted({0, args.frames // 2, args.frames - 1})
    make = pan_frames if args.clip == "pan" else object_frames
    out += ["", f"## Style and content per frame ({args.clip})", "",
            f"`eval_image.py` ratios (lower is better) of frames of the {args.clip} clip's result (--temporal-weight "
            f"{args.weight:g}) and of `stylekit image` on the same input frame with the same settings.", "",
            "| frame | style: video | style: image | video / image | content: video | content: image | "
            "video / image |", "| --- | --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = write_clip(make(args.frames, args.size), tmp / "clip.mp4")
        inputs, result, _, _ = stylize(clip, args.size, args.weight, extra)
        for i in picks:
            frame, vid, img = tmp / f"in{i}.png", tmp / f"video{i}.png", tmp / f"image{i}.png"
            Image.fromarray(inputs[i]).save(frame)
            Image.fromarray(result[i]).save(vid)
            opts = [f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]
            subprocess.run([sys.executable, "-m", "stylekit", "image", str(frame), str(STYLE), "-o", str(img),
                            "--size", str(args.size), "--device", "cpu", "-q", *opts], check=True)
            v, m = _eval(vid, frame), _eval(img, frame)
            print(f"frame {i + 1}: video {v}, image {m}", flush=True)
            out.append(f"| {i + 1} | {v['style_ratio']:.3f} | {m['style_ratio']:.3f} | "
                       f"{v['style_ratio'] / m['style_ratio']:.2f} | {v['content_ratio']:.3f} | "
                       f"{m['content_ratio']:.3f} | {v['content_ratio'] / m['content_ratio']:.2f} |")


def figure(args, path: Path) -> None:
    """A JPEG of the first four frames of the objects clip: the input, each frame on its own (weight 0), and
    with the temporal term; one row each (docs/video.md)."""
    from PIL import Image, ImageDraw
    extra = _extra(args)
    n = min(4, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(object_frames(n, args.size), Path(tmp) / "objects.mp4")
        inputs, alone, _, _ = stylize(clip, args.size, 0.0, extra)
        _, linked, _, _ = stylize(clip, args.size, args.weight, extra)
    h, w = inputs.shape[1:3]
    label = 70
    grid = Image.new("RGB", (label + n * (w + 2), 3 * (h + 2)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (name, rows) in enumerate((("input", inputs), ("weight 0", alone), (f"weight {args.weight:g}", linked))):
        draw.text((4, r * (h + 2) + h // 2 - 6), name, fill="black")
        for c in range(n):
            grid.paste(Image.fromarray(rows[c]), (label + c * (w + 2), r * (h + 2)))
    grid.save(path, quality=88)
    print(f"wrote {path}")


def header(args) -> list[str]:
    import torch
    return ["# Video benchmarks (issue 21)", "",
            f"`python benchmarks/bench_video.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads.", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["consistency", "ratios", "speed", "all", "figure"])
    ap.add_argument("--size", type=int, default=160, help="long edge of the frames (the run's --size)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--clip", choices=["pan", "objects"], default="pan", help="the clip of `ratios`")
    ap.add_argument("--weight", type=float, default=None, help="--temporal-weight (default: the config's)")
    ap.add_argument("--settings", default="", help='other settings as JSON, e.g. \'{"iterations": 30}\'')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the Markdown results (or the figure's JPEG) here too")
    args = ap.parse_args()
    import torch

    from stylekit.features import cpu_backend
    from stylekit.video import VideoStyleConfig
    torch.set_num_threads(args.threads)
    cpu_backend.enable(True)              # as the command line does
    if args.weight is None:
        args.weight = VideoStyleConfig().temporal_weight
    if args.what == "figure":
        figure(args, Path(args.out or "docs/video/objects.jpg"))
        return
    out = header(args)
    if args.what in ("consistency", "all"):
        consistency(args, out)
    if args.what in ("ratios", "all"):
        ratios(args, out)
    if args.what == "speed":
        speed(args, out)
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
