"""Evaluation: RMSE in dB of reconstructed spectra, a perceptual score (ViSQOL), and the comparison table/plot.

Perceptual score
----------------
The paper used PEMO-Q, which is not available. We use **ViSQOL v3 in audio mode** (Hines et al. 2015;
Chinen et al. 2020) via the pure-Python ``visqol-python`` package (Apache-2.0, installs offline from PyPI with
no compiler): a full-reference model of perceived quality for music/general audio that reports MOS-LQO on a
1-5 scale (higher is better). ``zimtohrli`` was the other candidate; it ships as a source distribution needing a
C++ build (not attempted). ViSQOL's
audio mode is defined at 48 kHz, so both signals are resampled from 16 kHz to 48 kHz with librosa first.

The resynthesised note uses the *original* phase with the reconstructed magnitudes, so the score measures the
model's spectral error only (Griffin-Lim's own phase error would otherwise dominate every model equally).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write
from ..errors import ConfigError
from .features import SpectralSTFTConfig, features_to_db, stft_phase, to_audio, to_features
from .models import SpectralModel
from .nsynth import NSynthNote, load_audio, read_split

__all__ = ["EvalResult", "reconstruct", "rmse_db", "visqol_moslqo", "evaluate", "comparison_table",
           "comparison_plot", "latent_roughness", "save_result", "load_result", "PAPER_ORDERINGS", "check_orderings"]


@dataclass
class EvalResult:
    """Scores of one model on one split.

    ``rmse_db``: root mean square error over all frames and bins of the test notes, in dB on the clipped
    [-top_db, 0] scale. ``moslqo``: mean ViSQOL MOS-LQO (1-5) over ``n_perceptual`` notes, or ``None``.
    ``roughness``: :func:`latent_roughness` (1 = perfectly even interpolation path), or ``None``.
    """

    model: str
    latent: int
    rmse_db: float
    n_notes: int
    moslqo: float | None = None
    n_perceptual: int = 0
    checkpoint: str = ""
    per_note_moslqo: list[float] = field(default_factory=list)
    roughness: float | None = None


@torch.no_grad()
def reconstruct(model: SpectralModel, x: np.ndarray) -> np.ndarray:
    """Frames ``(n_frames, n_bins)`` -> reconstruction of the same shape, clipped to [0, 1]."""
    y = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.clip(y.numpy(), 0.0, 1.0)


def rmse_db(x: np.ndarray, x_hat: np.ndarray, stft: SpectralSTFTConfig) -> float:
    """RMSE in dB between two frame arrays of equal shape (both clipped to the feature range)."""
    d = features_to_db(x_hat, stft) - features_to_db(x, stft)
    return float(np.sqrt(np.mean(d.astype(np.float64) ** 2)))


_VISQOL = None


def visqol_moslqo(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 audio-mode MOS-LQO (1-5, higher is better) of ``deg`` against ``ref`` (both mono).

    Signals are resampled to 48 kHz (ViSQOL audio mode's rate). Needs ``pip install visqol-python``.
    """
    global _VISQOL
    try:
        from visqol import VisqolApi
    except ImportError:
        raise ConfigError("the perceptual score needs ViSQOL: pip install visqol-python "
                          "(or pass --perceptual-notes 0)") from None
    import librosa
    if _VISQOL is None:
        api = VisqolApi()
        api.create(mode="audio")
        _VISQOL = api
    r = librosa.resample(np.asarray(ref, np.float64), orig_sr=sample_rate, target_sr=48000)
    d = librosa.resample(np.asarray(deg, np.float64), orig_sr=sample_rate, target_sr=48000)
    return float(_VISQOL.measure_from_arrays(r, d, sample_rate=48000).moslqo)


def _perceptual_subset(notes: Sequence[NSynthNote], n: int) -> list[NSynthNote]:
    # Evenly spaced through the sorted list: deterministic and covering every test instrument.
    if n <= 0 or not notes:
        return []
    idx = np.unique(np.linspace(0, len(notes) - 1, min(n, len(notes))).round().astype(int))
    return [notes[i] for i in idx]


@torch.no_grad()
def latent_roughness(model: SpectralModel, notes: Sequence[np.ndarray], stft: SpectralSTFTConfig, *,
                     steps: int = 16) -> float:
    """How evenly the decoded sound moves along straight lines in latent space (the paper's "smoothness").

    For consecutive pairs of notes (features ``(n_frames, n_bins)`` each), decode ``(1 - a) z_A + a z_B`` for
    ``a = 0, 1/steps, ..., 1`` and take the RMS dB distance ``d_i`` between consecutive decoded notes. A
    smooth latent space moves the sound by equal steps: ``max(d) / mean(d) = 1``; jumps make it larger.
    Returns the mean of ``max(d) / mean(d)`` over the pairs.

    Notes
    -----
    Roche et al. judge the VAE's smoother latent space qualitatively; this ratio is our stand-in. PCA decodes
    linearly, so before clipping its ratio is exactly 1: it is the reference, not a competitor.
    """
    from .resynth import morph_latents
    if len(notes) < 2 or steps < 2:
        raise ConfigError("latent_roughness needs at least 2 notes and 2 steps")
    ratios = []
    for xa, xb in zip(notes[:-1], notes[1:]):
        za = model.encode(torch.from_numpy(xa))
        zb = model.encode(torch.from_numpy(xb))
        dec = [features_to_db(np.clip(model.decode(morph_latents(za, zb, alpha=float(a))).numpy(), 0, 1), stft)
               for a in np.linspace(0.0, 1.0, steps + 1)]
        d = np.array([np.sqrt(np.mean((q - p) ** 2)) for p, q in zip(dec[:-1], dec[1:])])
        if d.mean() > 0:
            ratios.append(float(d.max() / d.mean()))
    return float(np.mean(ratios)) if ratios else 1.0


def evaluate(model: SpectralModel, stft: SpectralSTFTConfig, data_dir: str | os.PathLike, *,
             split: str = "test", perceptual_notes: int = 16, roughness_notes: int = 9, checkpoint: str = "",
             cache: dict | None = None, progress: Callable[[int], None] | None = None) -> EvalResult:
    """RMSE (dB) over every note of ``split``, mean ViSQOL MOS-LQO over ``perceptual_notes`` of them, and
    :func:`latent_roughness` over ``roughness_notes`` of them (evenly spaced; 0 skips either score).

    ``progress`` is called with 1 per note processed (RMSE pass, then perceptual pass). ``cache``, an
    initially empty dict passed to several calls with the same ``stft`` (as ``compare`` does), keeps each
    note's audio and features between calls (about 0.8 MB per 4 s note).
    """
    notes = read_split(data_dir, split)
    if not notes:
        raise ConfigError(f"{data_dir}: split {split!r} has no notes")
    cache = {} if cache is None else cache

    def audio_and_features(note: NSynthNote) -> tuple[np.ndarray, np.ndarray]:
        key = (str(note.path), stft)
        if key not in cache:
            y = load_audio(note.path, sample_rate=stft.sample_rate)
            cache[key] = (y, to_features(y, stft))
        return cache[key]

    sq, count = 0.0, 0
    for note in notes:
        x = audio_and_features(note)[1]
        d = features_to_db(reconstruct(model, x), stft) - features_to_db(x, stft)
        sq += float(np.sum(d.astype(np.float64) ** 2))
        count += d.size
        if progress is not None:
            progress(1)
    scores = []
    for note in _perceptual_subset(notes, perceptual_notes):
        y, x = audio_and_features(note)
        y_hat = to_audio(reconstruct(model, x), stft, phase=stft_phase(y, stft), length=len(y))
        try:
            scores.append(visqol_moslqo(y, y_hat, stft.sample_rate))
        except ValueError as e:   # ViSQOL refuses notes too short or too narrow-band for its patches
            from ..errors import InputError
            raise InputError(f"{note.path}: ViSQOL cannot score this note ({' '.join(str(e).split())}); "
                             "use --perceptual-notes 0 to skip the perceptual score") from None
        if progress is not None:
            progress(1)
    rough = None
    subset = _perceptual_subset(notes, roughness_notes)
    if len(subset) >= 2:
        rough = latent_roughness(model, [audio_and_features(n)[1] for n in subset], stft)
    return EvalResult(model=model.name, latent=model.latent, rmse_db=float(np.sqrt(sq / count)),
                      n_notes=len(notes), moslqo=float(np.mean(scores)) if scores else None,
                      n_perceptual=len(scores), checkpoint=checkpoint, per_note_moslqo=scores,
                      roughness=rough)


def save_result(path: str | os.PathLike, result: EvalResult, *, overwrite: bool = False) -> Path:
    """Write an :class:`EvalResult` as JSON (refused when a score is not finite)."""
    check_finite(result, path)
    text = json.dumps(asdict(result), indent=1)
    return atomic_write(path, lambda t: t.write_text(text), overwrite=overwrite)


def check_finite(result: EvalResult, source) -> EvalResult:
    """``result`` if every score in it is a finite number, else a :class:`~stylekit.errors.StylekitError`
    naming ``source``: no command reports or writes a NaN score."""
    from ..errors import StylekitError
    scores = [result.rmse_db, result.moslqo, result.roughness, *result.per_note_moslqo]
    if not all(v is None or (isinstance(v, (int, float)) and np.isfinite(v)) for v in scores):
        raise StylekitError(f"{source}: the evaluation gave non-finite scores (NaN or infinite); nothing written")
    return result


def _check_result(data) -> EvalResult:
    """An :class:`EvalResult` from parsed JSON, every field of the type and range it is written with."""
    from .config import MODEL_NAMES
    if not isinstance(data, dict):
        raise TypeError("not an object")
    r = EvalResult(**data)
    number = (int, float)
    ok = (r.model in MODEL_NAMES and isinstance(r.latent, int) and r.latent >= 1 and isinstance(r.n_notes, int)
          and isinstance(r.rmse_db, number) and isinstance(r.n_perceptual, int) and isinstance(r.checkpoint, str)
          and all(v is None or isinstance(v, number) for v in (r.moslqo, r.roughness))
          and isinstance(r.per_note_moslqo, list) and all(isinstance(v, number) for v in r.per_note_moslqo))
    if not ok:
        raise TypeError("a field has the wrong type or value")
    return check_finite(r, "result")


def load_result(path: str | os.PathLike) -> EvalResult:
    """Read an :class:`EvalResult` JSON written by :func:`save_result` (every field checked)."""
    from ..errors import InputError, StylekitError
    p = Path(path)
    try:
        return _check_result(json.loads(p.read_text()))
    except FileNotFoundError:
        raise InputError(f"{p}: no such result file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a folder, expected a result file") from None
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError, StylekitError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else " ".join(str(e).split())[:160]
        raise InputError(f"{p}: not an evaluation result ({why})") from None


_ORDER = ("pca", "ae", "dae", "lstm", "vae")
_LABEL = {"pca": "PCA", "ae": "AE", "dae": "DAE", "lstm": "LSTM-AE", "vae": "VAE"}

#: The paper's findings that can be checked on RMSE, as (better, worse) model pairs.
PAPER_ORDERINGS = (("pca", "ae", "PCA beats the shallow AE"),
                   ("dae", "pca", "DAE beats PCA"),
                   ("lstm", "pca", "LSTM-AE beats PCA"),
                   ("vae", "pca", "VAE beats PCA"),
                   ("dae", "vae", "DAE beats VAE"))


def _grid(results: Sequence[EvalResult], attr: str) -> tuple[list[str], list[int], dict]:
    models = [m for m in _ORDER if any(r.model == m for r in results)]
    latents = sorted({r.latent for r in results})
    grid = {(r.model, r.latent): getattr(r, attr) for r in results}
    return models, latents, grid


def check_orderings(results: Sequence[EvalResult]) -> list[tuple[str, str]]:
    """For each paper ordering: ``(statement, verdict)`` where the verdict says at which latent sizes the
    better model has the lower RMSE (and whether the MOS-LQO agrees)."""
    _, latents, rmse = _grid(results, "rmse_db")
    mos = {(r.model, r.latent): r.moslqo for r in results}
    out = []
    for a, b, text in PAPER_ORDERINGS:
        ls = [L for L in latents if (a, L) in rmse and (b, L) in rmse]
        if not ls:
            continue
        holds = [L for L in ls if rmse[(a, L)] < rmse[(b, L)]]
        pm = [L for L in ls if mos.get((a, L)) is not None and mos.get((b, L)) is not None]
        pholds = [L for L in pm if mos[(a, L)] > mos[(b, L)]]
        verdict = ("holds" if len(holds) == len(ls) else "fails" if not holds else "partly holds")
        verdict += f" on RMSE at L = {holds if holds else 'none'} of {ls}"
        if pm:
            verdict += f"; on MOS-LQO at L = {pholds if pholds else 'none'} of {pm}"
        out.append((text, verdict))
    rough = {(r.model, r.latent): r.roughness for r in results if r.roughness is not None}
    ls = [L for L in latents if ("vae", L) in rough and ("dae", L) in rough]
    if ls:
        smoother = [L for L in ls if rough[("vae", L)] < rough[("dae", L)]]
        verdict = "holds" if len(smoother) == len(ls) else "fails" if not smoother else "partly holds"
        out.append(("VAE has a smoother latent space than the DAE (lower roughness)",
                    f"{verdict} at L = {smoother if smoother else 'none'} of {ls}"))
    # "Perceptual scores follow the reconstruction error": Spearman rank correlation over all models.
    pairs = [(r.rmse_db, r.moslqo) for r in results if r.moslqo is not None]
    if len(pairs) >= 3:
        e, q = np.array(pairs).T
        rho = float(np.corrcoef(np.argsort(np.argsort(e)), np.argsort(np.argsort(-q)))[0, 1])
        out.append(("Perceptual scores follow the reconstruction error",
                    f"Spearman rank correlation between RMSE and -MOS-LQO over {len(pairs)} models: {rho:.2f}"))
    return out


def comparison_table(results: Sequence[EvalResult]) -> str:
    """Markdown table in the paper's layout: one row per model, one column per latent size, RMSE (dB) with the
    MOS-LQO after a slash when available; then the paper's orderings checked."""
    models, latents, rmse = _grid(results, "rmse_db")
    mos = {(r.model, r.latent): r.moslqo for r in results}
    lines = ["| model | " + " | ".join(f"L = {L}" for L in latents) + " |",
             "| --- | " + " | ".join("---:" for _ in latents) + " |"]
    for m in models:
        cells = []
        for L in latents:
            if (m, L) not in rmse:
                cells.append("-")
                continue
            c = f"{rmse[(m, L)]:.2f}"
            if mos.get((m, L)) is not None:
                c += f" / {mos[(m, L)]:.2f}"
            cells.append(c)
        lines.append(f"| {_LABEL[m]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: RMSE in dB on the test split (lower is better)"
                 + (" / ViSQOL MOS-LQO, 1-5 (higher is better)." if any(v is not None for v in mos.values())
                    else "."))
    rough = {(r.model, r.latent): r.roughness for r in results}
    if any(v is not None for v in rough.values()):
        lines += ["", "Latent roughness (max / mean step of the decoded sound along a straight latent path, "
                  "1 = perfectly even; see `latent_roughness`):", "",
                  "| model | " + " | ".join(f"L = {L}" for L in latents) + " |",
                  "| --- | " + " | ".join("---:" for _ in latents) + " |"]
        for m in models:
            lines.append(f"| {_LABEL[m]} | " + " | ".join(
                f"{rough[(m, L)]:.2f}" if rough.get((m, L)) is not None else "-" for L in latents) + " |")
    checks = check_orderings(results)
    if checks:
        lines.append("")
        lines += [f"- {t}: {v}" for t, v in checks]
    return "\n".join(lines) + "\n"


def comparison_plot(results: Sequence[EvalResult], path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Plot RMSE (and MOS-LQO when present) against latent size, one line per model; write PNG/PDF/SVG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models, latents, rmse = _grid(results, "rmse_db")
    mos = {(r.model, r.latent): r.moslqo for r in results}
    has_mos = any(v is not None for v in mos.values())
    fig, axes = plt.subplots(1, 2 if has_mos else 1, figsize=(10 if has_mos else 5.5, 4), squeeze=False)
    for m in models:
        ls = [L for L in latents if (m, L) in rmse]
        axes[0, 0].plot(ls, [rmse[(m, L)] for L in ls], marker="o", label=_LABEL[m])
        if has_mos:
            lq = [L for L in ls if mos.get((m, L)) is not None]
            axes[0, 1].plot(lq, [mos[(m, L)] for L in lq], marker="o", label=_LABEL[m])
    axes[0, 0].set(xscale="log", xlabel="latent size L", ylabel="RMSE (dB)", title="Reconstruction error")
    if has_mos:
        axes[0, 1].set(xscale="log", xlabel="latent size L", ylabel="ViSQOL MOS-LQO",
                       title="Perceptual score")
    for ax in axes[0]:
        ax.set_xticks(latents, [str(L) for L in latents])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(path)
    try:
        return atomic_write(out, lambda t: fig.savefig(t, dpi=120), overwrite=overwrite)
    finally:
        plt.close(fig)
