#!/usr/bin/env python3
"""Audio benchmarks: stylekit against the channel vocoder, in one run.

    python benchmarks/bench_audio.py curve --tools DIR [--pair CONTENT:STYLE ...] [--plot PNG]
    python benchmarks/bench_audio.py time [--baseline]
    python benchmarks/bench_audio.py phase --tools DIR [--pair CONTENT:STYLE ...]
    python benchmarks/bench_audio.py vgg --tools DIR [--pair CONTENT:STYLE ...] [--seconds 3.5]

``--tools DIR`` names the folder of the independent measurement tools (``eval_audio.py``, ``vocoder.py``); they
are run as programs, never imported, and the project does not ship them.

curve
    The trade-off between texture and words. stylekit is run with ``--words`` 0 .. 0.9, the vocoder with
    ``NB`` (bands) 6 / 12 / 24 and ``AL`` (strength) 0.25 .. 1, on the same pairs in the same run; every result
    is scored by ``eval_audio.py`` (``style_move``, the balanced texture measure, and ``stoi``) and by a second
    texture measure that no stylekit loss optimises (``contrast_move``: the per-band mean of librosa's spectral
    contrast, the peak-to-valley level within octave bands, moved toward the style's). The report gives, per
    method and setting, the mean over pairs, and for every vocoder setting stylekit's texture move at the same
    STOI (linear interpolation on stylekit's mean curve): stylekit dominates where that is higher; then the same
    pair by pair (``per_pair``: at how many vocoder points inside each pair's own STOI range stylekit is ahead).
time
    The command end to end (interpreter start, reading, optimisation, writing) on a 10 s 22.05 kHz mono clip
    and a 10 s 44.1 kHz stereo clip made from the example voice and organ, at the defaults; with ``--baseline``
    also the settings of before (``--words 0 --full-band false``) and the even-band inversion
    (``--mel-inverse pinv``), reported as ratios.
phase
    Phase reconstruction of stylekit's optimised spectrograms: Griffin-Lim from the content's phase (the
    default) against phase-gradient heap integration (PGHI, Prusa et al. 2017, the ``pghipy`` package) alone
    and followed by the same Griffin-Lim: spectral convergence of the inverted signal against the target
    magnitude, STOI against the content, and seconds.
vgg
    ``--network vgg19`` against the random bank (the default) on the same pairs in the same run, everything
    else at the defaults: VGG19 as it is (a Gram per frequency band and the per-row feature statistics term),
    without the row term (``vgg_row_weight=0``, VGG19 as it was before), and the random bank. The contents are
    cut to their first ``--seconds`` (VGG19 is slow on this CPU). Per pair and setting: style_move with its
    [mean, std, corr] parts, STOI, envelope_corr, seconds; then how many pairs reach the 0.5 texture floor.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "audio"
DOC_PAIRS = [f"{EXAMPLES / 'voice.wav'}:{EXAMPLES / f'texture_{t}.wav'}"
             for t in ("organ", "marimba", "strings", "rain")]
WORDS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
VOCODER = [(nb, al) for nb in (6, 12, 24) for al in (0.25, 0.5, 0.75, 1.0)]


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
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}"


def contrast_move(out: str, content: str, style: str) -> float:
    """1 - |C(out) - C(style)| / |C(content) - C(style)| for C = the mean spectral contrast per octave band
    (librosa, 22,050 Hz mono, level-free by construction)."""
    import librosa
    import numpy as np

    def c(path):
        y, _ = librosa.load(path, sr=22050, mono=True)
        return librosa.feature.spectral_contrast(y=y, sr=22050, n_fft=2048, hop_length=512).mean(1)

    o, cc, s = c(out), c(content), c(style)
    return float(1 - np.linalg.norm(o - s) / np.linalg.norm(cc - s))


def score(tools: Path, out: str, content: str, style: str) -> dict:
    r = subprocess.run([sys.executable, str(tools / "eval_audio.py"), out, content, style], capture_output=True,
                       text=True, check=True)
    e = json.loads(r.stdout)
    return {"move": e["style_move"], "parts": e["move_mean_std_corr"], "env": e["envelope_corr"],
            "stoi": e["stoi"], "contrast": contrast_move(out, content, style)}


def _pairs(args) -> list[tuple[str, str]]:
    return [tuple(p.split(":", 1)) for p in (args.pair or DOC_PAIRS)]


def run_curve(args) -> list[dict]:
    import soundfile as sf

    import stylekit
    tools = Path(args.tools)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.wav")
        for content, style in _pairs(args):
            for w in args.words:
                t0 = time.perf_counter()
                r = stylekit.stylize_audio(content, style, words=w, steps=args.steps)
                sec = time.perf_counter() - t0
                sf.write(out, r.data, r.sample_rate)
                rows.append({"method": "stylekit", "setting": f"words {w:g}", "x": w, "content": content,
                             "style": style, "seconds": sec, **score(tools, out, content, style)})
                print(json.dumps(rows[-1]), flush=True)
            for nb, al in VOCODER:
                env = {**os.environ, "NB": str(nb), "AL": str(al)}
                subprocess.run([sys.executable, str(tools / "vocoder.py"), content, style, out], env=env, check=True)
                rows.append({"method": "vocoder", "setting": f"NB {nb} AL {al:g}", "x": (nb, al), "content": content,
                             "style": style, **score(tools, out, content, style)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over pairs per setting, and stylekit's move at each vocoder setting's STOI."""
    import numpy as np

    def mean(method):
        out = {}
        for r in rows:
            if r["method"] == method:
                out.setdefault(r["setting"], []).append(r)
        return {k: {m: statistics.fmean(r[m] for r in v) for m in ("move", "stoi", "contrast", "env")}
                | {"min_stoi": min(r["stoi"] for r in v), "min_move": min(r["move"] for r in v)}
                for k, v in out.items()}

    sk, vo = mean("stylekit"), mean("vocoder")
    pts = sorted((v["stoi"], v["move"], v["contrast"]) for v in sk.values())
    s, m, c = (np.array(a) for a in zip(*pts))
    dominated = {}
    for k, v in vo.items():
        inside = s[0] <= v["stoi"] <= s[-1]
        dominated[k] = {"vocoder_move": v["move"], "stylekit_move_at_same_stoi":
                        float(np.interp(v["stoi"], s, m)) if inside else None,
                        "vocoder_contrast": v["contrast"],
                        "stylekit_contrast_at_same_stoi": float(np.interp(v["stoi"], s, c)) if inside else None,
                        "stoi": v["stoi"]}
    return {"stylekit": sk, "vocoder": vo, "at_vocoder_stoi": dominated, "per_pair": per_pair(rows)}


def per_pair(rows: list[dict]) -> dict:
    """The same comparison pair by pair: at every vocoder point inside that pair's stylekit STOI range, is
    stylekit's texture move (interpolated on the pair's own curve) higher? Counts, and the points where not."""
    import numpy as np

    out = {"move": [0, 0], "contrast": [0, 0], "behind": [], "outside_range": 0}
    for c, s in sorted({(r["content"], r["style"]) for r in rows}):
        mine = [r for r in rows if r["content"] == c and r["style"] == s]
        st, mv, ct = (np.array(a) for a in zip(*sorted((r["stoi"], r["move"], r["contrast"])
                                                        for r in mine if r["method"] == "stylekit")))
        for r in (r for r in mine if r["method"] == "vocoder"):
            if not st[0] <= r["stoi"] <= st[-1]:
                out["outside_range"] += 1
                continue
            for key, curve in (("move", mv), ("contrast", ct)):
                ours = float(np.interp(r["stoi"], st, curve))
                out[key][1] += 1
                out[key][0] += ours > r[key]
                if ours <= r[key]:
                    out["behind"].append({"pair": f"{Path(c).stem} x {Path(s).stem}", "vocoder": r["setting"],
                                          "measure": key, "stoi": r["stoi"], "vocoder_value": r[key],
                                          "stylekit_value": ours})
    return out


def plot_curve(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = summarise(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, key, label in ((axes[0], "move", "texture move (style_move, balanced)"),
                           (axes[1], "contrast", "texture move (spectral contrast, not optimised)")):
        sk = sorted(summ["stylekit"].items(), key=lambda kv: float(kv[0].split()[1]))
        ax.plot([v["stoi"] for _, v in sk], [v[key] for _, v in sk], "o-", color="C0",
                label=f"stylekit, --words {sk[0][0].split()[1]}..{sk[-1][0].split()[1]}")
        for k, v in sk:
            ax.annotate(k.split()[1], (v["stoi"], v[key]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color="C0")
        for nb, marker in ((6, "s"), (12, "^"), (24, "v")):
            vs = [(v["stoi"], v[key]) for k, v in summ["vocoder"].items() if k.startswith(f"NB {nb} ")]
            ax.plot(*zip(*sorted(vs)), marker + "--", color="C3", alpha=0.4 + nb / 40,
                    label=f"vocoder {nb} bands, AL 0.25..1")
        ax.set_xlabel("STOI against the content (words kept)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.axvline(0.75, color="grey", lw=0.8, ls=":")
    axes[0].axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mean over {len({(r['content'], r['style']) for r in rows})} voice/texture pairs")
    fig.savefig(path, dpi=100)


def cmd_curve(args) -> None:
    print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = run_curve(args)
    summ = summarise(rows)
    print(json.dumps(summ, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summ}, indent=1))
    if args.plot:
        plot_curve(rows, args.plot)


def _clip(path: Path, seconds: float, rate: int, stereo: bool, source: Path) -> Path:
    import librosa
    import numpy as np
    import soundfile as sf

    y, _ = librosa.load(str(source), sr=rate, mono=True)
    y = np.tile(y, int(np.ceil(seconds * rate / len(y))))[: int(seconds * rate)]
    if stereo:
        y = np.stack([0.9 * y, 0.5 * np.roll(y, 200)], 1)
    sf.write(str(path), y, rate)
    return path


def _child_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: on a shared machine this is what the run
    itself cost, whatever the others' load made its wall time."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cmd_time(args) -> None:
    print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"10 s 22.05 kHz mono": _clip(tmp / "mono.wav", 10, 22050, False, EXAMPLES / "voice.wav"),
                 "10 s 44.1 kHz stereo": _clip(tmp / "stereo.wav", 10, 44100, True, EXAMPLES / "voice.wav")}
        style = EXAMPLES / "texture_organ.wav"
        settings = {"defaults": []}
        if args.baseline:
            settings["before (--words 0 --full-band false)"] = ["--words", "0", "--full-band", "false"]
            settings["even bands (--mel-inverse pinv)"] = ["--mel-inverse", "pinv"]
        for name, content in cases.items():
            medians = {}
            for label, extra in settings.items():
                times, cpu = [], []
                for i in range(args.repeats):
                    out = tmp / f"out{i}.wav"
                    t0, c0 = time.perf_counter(), _child_cpu()
                    subprocess.run([sys.executable, "-m", "stylekit", "audio", str(content), str(style), "-o", str(out),
                                    "-q", "--overwrite", *extra], check=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
                    times.append(time.perf_counter() - t0)
                    cpu.append(_child_cpu() - c0)
                print(json.dumps({"case": name, "settings": label, "seconds": [round(t, 1) for t in times],
                                  "median": round(statistics.median(times), 1),
                                  "cpu_seconds": [round(t, 1) for t in cpu], "load": round(os.getloadavg()[0], 1)}),
                      flush=True)
                medians[label] = statistics.median(times)
            if len(medians) > 1:
                print(json.dumps({"case": name, "defaults / other": {k: round(medians["defaults"] / v, 2)
                                                                     for k, v in medians.items() if k != "defaults"}}))


def _pghi_audio(mag, cfg, length: int, gl_iters: int, phase0=None):
    """PGHI phase for a linear magnitude (bins, frames) on stylekit's STFT scale (Hann window), optionally
    refined by stylekit's Griffin-Lim."""
    import numpy as np
    import pghipy
    import torch

    from stylekit.audio.phase import griffin_lim, istft
    # pghi returns the phase itself (radians, frames x bins); 0.25645 L^2 is the Hann window's gamma (Prusa 2017)
    ph = pghipy.pghi(mag.T.astype(np.float64), win_length=cfg.n_fft, hop_length=cfg.hop_length,
                     gamma=0.25645 * cfg.n_fft ** 2).T
    if gl_iters:
        return griffin_lim(mag, n_fft=cfg.n_fft, hop_length=cfg.hop_length, length=length, n_iter=gl_iters,
                           init_phase=ph.astype(np.float32))
    spec = torch.polar(torch.from_numpy(mag.astype(np.float32)), torch.from_numpy(ph.astype(np.float32)))
    return istft(spec, n_fft=cfg.n_fft, hop_length=cfg.hop_length, length=length).numpy()


def cmd_phase(args) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    import stylekit
    from stylekit.audio.phase import griffin_lim, stft
    from stylekit.audio.pipeline import fine_prior, style_targets
    from stylekit.audio.transform import content_phase, mel_to_linear, to_network, to_spectrogram
    print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    tools = Path(args.tools)
    res = {}
    import pghipy
    pghipy.pghi(np.ones((8, 65)), win_length=128, hop_length=32)     # numba compiles once, outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        for content, style in _pairs(args):
            r = stylekit.stylize_audio(content, style, full_band=False, steps=args.steps)
            cfg = r.spectrogram
            # the optimised magnitude, as the pipeline hands it to phase reconstruction
            spec = torch.from_numpy(to_spectrogram(r.working, cfg))
            # with the default mel_inverse="prior", each frame gets the fine structure of the most similar style
            # frame, as in the pipeline
            targets = style_targets(style, full_band=False, steps=args.steps)
            prior = fine_prior((targets.fine, targets.fine_keys), to_network(spec, cfg))
            mag = (mel_to_linear(torch.clamp(torch.exp(spec) - cfg.log_floor, min=0), cfg, prior=prior)
                   * (cfg.n_fft / 2))
            mag = np.asarray(mag, dtype=np.float32)
            n = len(r.working)
            methods = {
                "griffin-lim 32 from the content's phase (default)": lambda: griffin_lim(
                    mag, n_fft=cfg.n_fft, hop_length=cfg.hop_length, length=n, n_iter=32,
                    init_phase=content_phase(r.content.samples, cfg)),
                "griffin-lim 32 from random phase": lambda: griffin_lim(
                    mag, n_fft=cfg.n_fft, hop_length=cfg.hop_length, length=n, n_iter=32),
                "pghi": lambda: _pghi_audio(mag, cfg, n, 0),
                "pghi + griffin-lim 32": lambda: _pghi_audio(mag, cfg, n, 32),
            }
            for name, fn in methods.items():
                t0 = time.perf_counter()
                y = fn()
                sec = time.perf_counter() - t0
                got = stft(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), n_fft=cfg.n_fft,
                           hop_length=cfg.hop_length).abs().numpy()
                sc = float(np.linalg.norm(got - mag) / np.linalg.norm(mag))
                out = str(Path(tmp) / "p.wav")
                sf.write(out, y / (np.abs(y).max() + 1e-9) * 0.5, cfg.sample_rate)
                e = score(tools, out, content, style)
                res.setdefault(name, []).append({"sc": sc, "stoi": e["stoi"], "move": e["move"], "seconds": sec})
                print(json.dumps({"pair": Path(style).stem, "method": name, **res[name][-1]}), flush=True)
    print(json.dumps({k: {m: round(statistics.fmean(x[m] for x in v), 3) for m in v[0]} for k, v in res.items()},
                     indent=1))


VGG_SETTINGS = {"random (default)": {}, "vgg19": {"network": "vgg19"},
                "vgg19 without the row term": {"network": "vgg19", "vgg_row_weight": 0.0}}


def cmd_vgg(args) -> None:
    import soundfile as sf

    import stylekit
    tools = Path(args.tools)
    print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    floor = {k: 0 for k in VGG_SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for content, style in _pairs(args):
            y, rate = sf.read(content, always_2d=True)
            cut = str(Path(tmp) / "content.wav")
            sf.write(cut, y[: int(args.seconds * rate)], rate)
            for label, options in VGG_SETTINGS.items():
                out = str(Path(tmp) / "out.wav")
                t0 = time.perf_counter()
                r = stylekit.stylize_audio(cut, style, threads=1, **options)
                sec = time.perf_counter() - t0
                sf.write(out, r.data, r.sample_rate)
                row = {"content": content, "style": style, "settings": label, "seconds": round(sec, 1),
                       **score(tools, out, cut, style)}
                floor[label] += row["move"] >= 0.5
                print(json.dumps(row), flush=True)
    print(json.dumps({"pairs at style_move >= 0.5": floor}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curve")
    c.add_argument("--tools", required=True)
    c.add_argument("--pair", action="append", help="CONTENT:STYLE (default: the four example pairs)")
    c.add_argument("--words", type=float, nargs="+", default=list(WORDS))
    c.add_argument("--steps", type=int, default=None)
    c.add_argument("--plot")
    c.add_argument("--json")
    t = sub.add_parser("time")
    t.add_argument("--baseline", action="store_true")
    t.add_argument("--repeats", type=int, default=1)
    p = sub.add_parser("phase")
    p.add_argument("--tools", required=True)
    p.add_argument("--pair", action="append")
    p.add_argument("--steps", type=int, default=None)
    v = sub.add_parser("vgg")
    v.add_argument("--tools", required=True)
    v.add_argument("--pair", action="append")
    v.add_argument("--seconds", type=float, default=3.5)
    args = ap.parse_args()
    {"curve": cmd_curve, "time": cmd_time, "phase": cmd_phase, "vgg": cmd_vgg}[args.cmd](args)


if __name__ == "__main__":
    main()
