"""The spectral reproduction's experiments: the model x latent x seed sweep, the VAE beta sweep, the phase
reconstruction comparison and the perceptual score's degradation ladder.

Every experiment calls the library functions the commands run (``train_to_file``, ``evaluate``,
``save_result``), with the data read once. Results go to OUT as one JSON per run, ready for
``stylekit spectral compare OUT/*.json``. Run on one thread (``OMP_NUM_THREADS=1``)::

    python benchmarks/bench_spectral_sweep.py sweep DATA OUT --epochs 8 --segments-per-note 1
    python benchmarks/bench_spectral_sweep.py beta DATA OUT --betas 1e-4,1e-3,1e-2,1e-1
    python benchmarks/bench_spectral_sweep.py phase DATA OUT
    python benchmarks/bench_spectral_sweep.py ladder DATA OUT
    python benchmarks/bench_spectral_sweep.py times DATA OUT       # training time and epochs of a sweep
    stylekit spectral encode DATA --split test --model weights/spectral/vae_l16.pt -o OUT/z_test.pt
    python benchmarks/bench_spectral_sweep.py figures DATA OUT     # needs OUT/beta_sweep.json and OUT/z_*.pt
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from stylekit.spectral.config import NoteFilter, SpectralSTFTConfig, TrainConfig
from stylekit.spectral.evaluate import _perceptual_subset, evaluate, save_result
from stylekit.spectral.models import load_model
from stylekit.spectral.train import training_data, train_to_file, valid_loss


def sweep(args) -> None:
    stft = SpectralSTFTConfig()
    base = TrainConfig(epochs=args.epochs, segments_per_note=args.segments_per_note, patience=args.patience,
                       max_frames=args.max_frames)
    cache: dict = {}
    data = {}
    for seed in args.seeds:
        t = time.perf_counter()
        data[seed] = training_data(args.data, replace(base, seed=seed), stft)
        print(f"seed {seed}: training data read in {time.perf_counter() - t:.0f} s", flush=True)
    for latent in args.latents:
        for model in args.models:
            for seed in args.seeds:
                out = args.out / f"{model}_l{latent}_s{seed}"
                if (out.with_suffix(".json")).exists():
                    continue
                cfg = replace(base, model=model, latent=latent, seed=seed)
                seg, valid, _ = data[seed]
                t = time.perf_counter()
                train_to_file(args.data, out.with_suffix(".pt"), cfg, stft=stft, segments=seg, valid=valid,
                              overwrite=True)
                train_s = time.perf_counter() - t
                m, st, meta = load_model(out.with_suffix(".pt"))
                t = time.perf_counter()
                r = evaluate(m, st, args.data, perceptual_notes=args.perceptual_notes, cache=cache,
                             checkpoint=str(out.with_suffix(".pt")), seed=seed)
                save_result(out.with_suffix(".json"), r, overwrite=True)
                timing = {"train_s": train_s, "eval_s": time.perf_counter() - t,
                          "early_stopping": meta.get("early_stopping")}
                out.with_suffix(".time.json").write_text(json.dumps(timing))
                print(f"{model} L={latent} seed={seed}: RMSE {r.rmse_db:.3f} PSM {r.psm:.4f} "
                      f"train {train_s:.1f} s", flush=True)


def beta(args) -> None:
    """VAE at one latent size for several beta: valid RMSE (dB) and latent roughness on valid notes."""
    from stylekit.spectral.evaluate import latent_roughness
    from stylekit.spectral.features import to_features
    from stylekit.spectral.nsynth import load_audio, read_split
    stft = SpectralSTFTConfig()
    rows = []
    notes = _perceptual_subset(read_split(args.data, "valid"), 9)
    feats = [to_features(load_audio(n.path, sample_rate=stft.sample_rate), stft) for n in notes]
    for seed in args.seeds:
        base = TrainConfig(model="vae", latent=args.latent, epochs=args.epochs,
                           segments_per_note=args.segments_per_note, patience=args.patience, seed=seed)
        seg, valid, _ = training_data(args.data, base, stft)
        for b in args.betas:
            out = args.out / f"vae_l{args.latent}_beta{b:g}_s{seed}.pt"
            train_to_file(args.data, out, replace(base, beta=b), stft=stft, segments=seg, valid=valid,
                          overwrite=True)
            m = load_model(out)[0]
            rmse = float(np.sqrt(valid_loss(m, valid) / stft.n_bins)) * stft.top_db
            rows.append({"beta": b, "seed": seed, "valid_rmse_db": rmse,
                         "roughness": latent_roughness(m, feats, stft)})
            print(rows[-1], flush=True)
    (args.out / "beta_sweep.json").write_text(json.dumps(rows, indent=1))


def _test_notes(data, n: int):
    from stylekit.spectral.nsynth import load_audio, read_split
    notes = _perceptual_subset(read_split(data, "test"), n)
    return [(note, load_audio(note.path, sample_rate=16000)) for note in notes]


def phase(args) -> None:
    """Griffin-Lim against PGHI (+ Griffin-Lim refinement) on test notes: spectral convergence (dB, lower is
    better), PSM against the original note, and time per note."""
    from stylekit.spectral.features import _magnitude, to_audio, to_features
    from stylekit.spectral.perceptual import pemo_score
    stft = SpectralSTFTConfig()
    rows = {}
    for note, y in _test_notes(args.data, args.perceptual_notes):
        x = to_features(y, stft)
        mag = _magnitude(x, stft)
        for name, cfg, method in (("griffinlim", stft, "griffinlim"), ("pghi+gl", stft, "pghi"),
                                  ("pghi", replace(stft, griffin_lim_iters=1), "pghi")):
            t = time.perf_counter()
            yy = to_audio(x, cfg, method=method, length=len(y))
            dt = time.perf_counter() - t
            back = _magnitude(to_features(yy, stft), stft)
            sc = 20 * np.log10(np.linalg.norm(back - mag) / np.linalg.norm(mag))
            rows.setdefault(name, []).append({"note": note.note_str, "sc_db": float(sc),
                                              "psm": float(pemo_score(y, yy, 16000).psm), "seconds": dt})
    for name, v in rows.items():
        a = np.array([[r["sc_db"], r["psm"], r["seconds"]] for r in v])
        print(f"{name}: SC {a[:, 0].mean():.2f} +- {a[:, 0].std(ddof=1):.2f} dB, PSM {a[:, 1].mean():.3f} +- "
              f"{a[:, 1].std(ddof=1):.3f}, {a[:, 2].mean():.2f} s/note, n={len(a)}")
    (args.out / "phase.json").write_text(json.dumps(rows, indent=1))


def ladder(args) -> None:
    """The perceptual score on the degradation ladder: on test notes (16 kHz, where an 8 kHz low-pass is the
    identity) and on a broadband synthetic note at 32 kHz."""
    from stylekit.spectral.perceptual import degrade, pemo_score
    rungs = [("noise", v) for v in (40, 30, 20, 10)] + [("lowpass", v) for v in (8000, 4000, 2000)]
    out = {}
    t = np.arange(64000) / 32000
    f0 = 220.0
    synth = sum(np.sin(2 * np.pi * k * f0 * t * (1 + 0.003 * np.sin(2 * np.pi * 5 * t))) / k
                for k in range(1, int(0.45 * 32000 / f0)))
    synth = 0.3 * synth * np.minimum(t / 0.02, 1) * np.exp(-t / 1.5) / np.abs(synth).max()
    sets = {"synthetic note, 32 kHz": [(synth, 32000)],
            "test notes, 16 kHz": [(y, 16000) for _, y in _test_notes(args.data, args.perceptual_notes)]}
    for name, sigs in sets.items():
        for kind, v in rungs:
            s = [pemo_score(y, degrade(y, sr, kind, v, seed=i), sr).psm for i, (y, sr) in enumerate(sigs)]
            out.setdefault(name, []).append({"kind": kind, "value": v, "psm": float(np.mean(s)),
                                             "sd": float(np.std(s, ddof=1)) if len(s) > 1 else 0.0, "n": len(s)})
            print(name, kind, v, out[name][-1], flush=True)
    (args.out / "ladder.json").write_text(json.dumps(out, indent=1))


def figures(args) -> None:
    """The beta-sweep figure (from OUT/beta_sweep.json) and the latents-vs-labels figure (from latent-set files
    written by ``stylekit spectral encode DATA --split S -o OUT/z_S.pt``) into OUT."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr
    rows = json.loads((args.out / "beta_sweep.json").read_text())
    fig, ax = plt.subplots(figsize=(5, 4))
    for b in sorted({r["beta"] for r in rows}):
        rs = [r for r in rows if r["beta"] == b]
        ax.errorbar(np.mean([r["roughness"] for r in rs]), np.mean([r["valid_rmse_db"] for r in rs]),
                    xerr=np.std([r["roughness"] for r in rs], ddof=1) if len(rs) > 1 else None,
                    yerr=np.std([r["valid_rmse_db"] for r in rs], ddof=1) if len(rs) > 1 else None,
                    marker="o", capsize=3, label=f"beta = {b:g}")
    ax.set(xlabel="latent roughness (1 = even steps)", ylabel="RMSE on the valid split (dB)",
           title="VAE, L = 16: error against smoothness")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "beta_sweep.png", dpi=110)
    plt.close(fig)
    sets = [torch.load(p, weights_only=True) for p in sorted(args.out.glob("z_*.pt"))]
    z = torch.cat([s["latents"] for s in sets]).numpy()
    pitch = np.concatenate([s["pitch"].numpy() for s in sets])
    vel = np.concatenate([s["velocity"].numpy() for s in sets])
    fam = sum((s["family"] for s in sets), [])
    zc = z - z.mean(0)
    xy = zc @ np.linalg.svd(zc, full_matrices=False)[2][:2].T
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, c, t in ((axes[0], pitch, "MIDI pitch"), (axes[1], vel, "velocity")):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=c, s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=t)
    for f in sorted(set(fam)):
        m = np.array([v == f for v in fam])
        axes[2].scatter(xy[m, 0], xy[m, 1], s=6, label=f)
    axes[2].legend(markerscale=3, fontsize=8)
    for ax, t in zip(axes, ("pitch", "velocity", "family")):
        ax.set(title=f"mean latent per note, coloured by {t}", xlabel="PC 1", ylabel="PC 2")
    fig.tight_layout()
    fig.savefig(args.out / "latents.png", dpi=100)
    plt.close(fig)
    rho = {k: [float(spearmanr(z[:, d], v).statistic) for d in range(z.shape[1])]
           for k, v in (("pitch", pitch), ("velocity", vel))}
    (args.out / "latents.json").write_text(json.dumps({"n_notes": len(z), "spearman": rho,
                                                       "sd": z.std(0).tolist()}, indent=1))
    for k, v in rho.items():
        d = int(np.argmax(np.abs(v)))
        print(f"{k}: strongest latent dim {d}, Spearman {v[d]:.2f}")


def times(args) -> None:
    """The sweep's training times and epochs as Markdown tables (model x latent, mean +- sd over seeds), from
    OUT/*.time.json."""
    names = {"pca": "PCA", "ae": "AE", "dae": "DAE", "lstm": "LSTM-AE", "vae": "VAE"}
    head = "| model | " + " | ".join(f"L = {v}" for v in args.latents) + " |\n| --- |" + " ---: |" * len(args.latents)
    rows_t, rows_e = [head], [head]
    for model in args.models:
        cells_t, cells_e = [], []
        for latent in args.latents:
            runs = [json.loads(p.read_text()) for p in (args.out / f"{model}_l{latent}_s{s}.time.json"
                                                        for s in args.seeds) if p.exists()]
            t = np.array([r["train_s"] for r in runs])
            cells_t.append(f"{t.mean():.0f} ± {t.std(ddof=1):.0f} s" if len(t) > 1 else "-")
            es = [r["early_stopping"] for r in runs if r.get("early_stopping")]
            cells_e.append(", ".join(f"{e['epochs_run']} ({e['best_epoch']})" for e in es) if es else
                           "closed form" if runs else "-")
        rows_t.append(f"| {names[model]} | " + " | ".join(cells_t) + " |")
        rows_e.append(f"| {names[model]} | " + " | ".join(cells_e) + " |")
    print("Training time per run (mean ± sd over seeds):\n\n" + "\n".join(rows_t))
    print("\nEpochs run (best epoch), one per seed:\n\n" + "\n".join(rows_e))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["sweep", "beta", "phase", "ladder", "figures", "times"])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", default="pca,ae,dae,lstm,vae")
    ap.add_argument("--latents", default="4,8,16,32,64")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--segments-per-note", type=int, default=2)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--max-frames", type=int, default=TrainConfig().max_frames,
                    help="training frames kept per run (the reservoir; train's --max-frames)")
    ap.add_argument("--perceptual-notes", type=int, default=16)
    ap.add_argument("--betas", default="1e-4,1e-3,1e-2,1e-1")
    ap.add_argument("--latent", type=int, default=16)
    args = ap.parse_args()
    args.models = args.models.split(",")
    args.latents = [int(v) for v in args.latents.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.betas = [float(v) for v in args.betas.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    {"sweep": sweep, "beta": beta, "phase": phase, "ladder": ladder,
     "figures": figures, "times": times}[args.what](args)


if __name__ == "__main__":
    main()
