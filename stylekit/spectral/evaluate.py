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
           "comparison_plot", "latent_roughness", "save_result", "load_result", "PAPER_ORDERINGS", "check_orderings",
           "better", "PERCEPTUAL"]


@dataclass
class EvalResult:
    """Scores of one model on one split.

    ``rmse_db``: root mean square error over all frames and bins of the test notes, in dB on the clipped
    [-top_db, 0] scale. ``moslqo``: mean ViSQOL MOS-LQO (1-5) over ``n_perceptual`` notes, or ``None``.
    ``roughness``: :func:`latent_roughness` (1 = perfectly even interpolation path), or ``None``.
    ``psm`` / ``psm_t``: mean PEMO-Q-like similarity (:mod:`stylekit.spectral.perceptual`, 1 = identical) over
    ``n_perceptual`` notes, or ``None``. ``seed``: the training seed read from the checkpoint (results of one
    model and latent size with several seeds are pooled as mean +- sd by :func:`comparison_table`).

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> results[0].model, results[0].rmse_db
    ('pca', 6.0)
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
    psm: float | None = None
    psm_t: float | None = None
    per_note_psm: list[float] = field(default_factory=list)
    seed: int | None = None


@torch.no_grad()
def reconstruct(model: SpectralModel, x: np.ndarray) -> np.ndarray:
    """Frames ``(n_frames, n_bins)`` -> reconstruction of the same shape, clipped to [0, 1].

    Examples
    --------
    >>> import torch
    >>> from stylekit.spectral.models import PCA
    >>> frames = np.random.default_rng(0).random((100, 16)).astype(np.float32)
    >>> np.allclose(reconstruct(PCA(16, 16).fit(torch.from_numpy(frames)), frames), frames, atol=1e-4)
    True
    """
    y = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.clip(y.numpy(), 0.0, 1.0)


def rmse_db(x: np.ndarray, x_hat: np.ndarray, stft: SpectralSTFTConfig) -> float:
    """RMSE in dB between two frame arrays of equal shape (both clipped to the feature range).

    Examples
    --------
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> x = np.full((4, 129), 0.5)
    >>> rmse_db(x, x, SpectralSTFTConfig()), rmse_db(x, x + 0.1, SpectralSTFTConfig())    # 0.1 unit = 8 dB
    (0.0, 8.0)
    """
    d = features_to_db(x_hat, stft) - features_to_db(x, stft)
    return float(np.sqrt(np.mean(d.astype(np.float64) ** 2)))


_VISQOL = None


def visqol_moslqo(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 audio-mode MOS-LQO (1-5, higher is better) of ``deg`` against ``ref`` (both mono).

    Signals are resampled to 48 kHz (ViSQOL audio mode's rate). Needs ``pip install visqol-python``.

    Examples
    --------
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    >>> 1.0 <= visqol_moslqo(y, y, 16000) <= 5.0              # needs the spectral extra (visqol-python)
    True
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

    Examples
    --------
    >>> from stylekit.spectral.resynth import load
    >>> from stylekit.spectral.features import to_features
    >>> model, stft, _ = load()
    >>> t = np.arange(8000) / stft.sample_rate
    >>> notes = [to_features(0.5 * np.sin(2 * np.pi * f * t), stft) for f in (220, 440)]
    >>> latent_roughness(model, notes, stft, steps=4) >= 1.0          # 1: the sound moves by equal steps
    True
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


#: Perceptual scores ``evaluate`` can compute: the PEMO-Q-like PSM (default; no extra package) or ViSQOL.
PERCEPTUAL = ("pemo", "visqol")


def _perceptual_scores(pairs, method: str, sample_rate: int, progress) -> tuple[list, list]:
    """Per-note scores of ``[(note, reference, resynthesis)]``: (PSM or MOS-LQO list, PSM_t list)."""
    from .perceptual import pemo_score
    main, extra = [], []
    for note, y, y_hat in pairs:
        if method == "pemo":
            sc = pemo_score(y, y_hat, sample_rate)
            main.append(sc.psm)
            extra.append(sc.psm_t)
        else:
            try:
                main.append(visqol_moslqo(y, y_hat, sample_rate))
            except ValueError as e:   # ViSQOL refuses notes too short or too narrow-band for its patches
                from ..errors import InputError
                raise InputError(f"{note.path}: ViSQOL cannot score this note ({' '.join(str(e).split())}); "
                                 "use --perceptual-notes 0 to skip the perceptual score") from None
        if progress is not None:
            progress(1)
    return main, extra


def evaluate(model: SpectralModel, stft: SpectralSTFTConfig, data_dir: str | os.PathLike, *,
             split: str | None = "test", perceptual_notes: int = 16, roughness_notes: int = 9,
             checkpoint: str = "", cache: dict | None = None, progress: Callable[[int], None] | None = None,
             note_filter=None, perceptual: str = "pemo", seed: int | None = None) -> EvalResult:
    """RMSE (dB) over every selected note of ``split``, the mean perceptual score over ``perceptual_notes`` of
    them, and :func:`latent_roughness` over ``roughness_notes`` of them (evenly spaced; 0 skips either score).

    ``data_dir`` is the data set's root or one split folder (:func:`~stylekit.spectral.nsynth.resolve_split`);
    ``note_filter`` (a :class:`~stylekit.spectral.config.NoteFilter`) selects the notes; ``perceptual`` is
    ``"pemo"`` (:func:`~stylekit.spectral.perceptual.pemo_score`) or ``"visqol"`` (:func:`visqol_moslqo`).
    ``progress`` is called with 1 per note processed (RMSE pass, then perceptual pass). ``cache``, an
    initially empty dict passed to several calls with the same ``stft`` (as ``compare`` does), keeps each
    note's audio and features between calls (about 0.8 MB per 4 s note).

    Notes
    -----
    The perceptual score resynthesises with the *original* phase, so it measures the model's spectral error
    rather than phase reconstruction's, which would be the same for every model.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.resynth import load
    >>> model, stft, _ = load()
    >>> result = evaluate(model, stft, root, perceptual_notes=1, roughness_notes=0)
    >>> result.model, result.n_notes, result.rmse_db > 0
    ('dae', 2, True)
    """
    from .config import NoteFilter
    from .nsynth import select_notes
    if perceptual not in PERCEPTUAL:
        raise ConfigError(f"unknown perceptual score {perceptual!r}; expected one of {', '.join(PERCEPTUAL)}")
    notes = select_notes(read_split(data_dir, split), note_filter or NoteFilter())
    if not notes:
        raise ConfigError(f"{data_dir}: split {split or 'test'!r} has no notes"
                          + ("" if note_filter is None or note_filter.is_all else " that match the selection"))
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

    def pairs():
        for note in _perceptual_subset(notes, perceptual_notes):
            y, x = audio_and_features(note)
            yield note, y, to_audio(reconstruct(model, x), stft, phase=stft_phase(y, stft), length=len(y))
    main, extra = _perceptual_scores(pairs(), perceptual, stft.sample_rate, progress)
    rough = None
    subset = _perceptual_subset(notes, roughness_notes)
    if len(subset) >= 2:
        rough = latent_roughness(model, [audio_and_features(n)[1] for n in subset], stft)
    mean = lambda v: float(np.mean(v)) if v else None      # noqa: E731
    pemo = perceptual == "pemo"
    return EvalResult(model=model.name, latent=model.latent, rmse_db=float(np.sqrt(sq / count)),
                      n_notes=len(notes), moslqo=None if pemo else mean(main), n_perceptual=len(main),
                      checkpoint=checkpoint, per_note_moslqo=[] if pemo else main, roughness=rough,
                      psm=mean(main) if pemo else None, psm_t=mean(extra) if pemo else None,
                      per_note_psm=main if pemo else [], seed=seed)


def save_result(path: str | os.PathLike, result: EvalResult, *, overwrite: bool = False) -> Path:
    """Write an :class:`EvalResult` as JSON (refused when a score is not finite).

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = save_result(Path(tempfile.mkdtemp()) / "dae16.json", results[3])
    >>> load_result(path) == results[3]
    True
    """
    check_finite(result, path)
    text = json.dumps({"notes": result.n_notes, **asdict(result)}, indent=1)
    return atomic_write(path, lambda t: t.write_text(text), overwrite=overwrite)


def check_finite(result: EvalResult, source) -> EvalResult:
    """``result`` if every score in it is a finite number, else a :class:`~stylekit.errors.StylekitError`
    naming ``source``: no command reports or writes a NaN score."""
    from ..errors import StylekitError
    scores = [result.rmse_db, result.moslqo, result.roughness, *result.per_note_moslqo, result.psm, result.psm_t,
              *result.per_note_psm]
    if not all(v is None or (isinstance(v, (int, float)) and np.isfinite(v)) for v in scores):
        raise StylekitError(f"{source}: the evaluation gave non-finite scores (NaN or infinite); nothing written")
    return result


def _check_result(data) -> EvalResult:
    """An :class:`EvalResult` from parsed JSON, every field of the type and range it is written with."""
    from .config import MODEL_NAMES
    if not isinstance(data, dict):
        raise TypeError("not an object")
    data = dict(data)
    if "notes" in data and data["notes"] != data.get("n_notes"):
        raise TypeError("'notes' and 'n_notes' differ")
    data.pop("notes", None)
    r = EvalResult(**data)
    number = (int, float)
    ok = (r.model in MODEL_NAMES and isinstance(r.latent, int) and r.latent >= 1 and isinstance(r.n_notes, int)
          and isinstance(r.rmse_db, number) and isinstance(r.n_perceptual, int) and isinstance(r.checkpoint, str)
          and all(v is None or isinstance(v, number) for v in (r.moslqo, r.roughness))
          and isinstance(r.per_note_moslqo, list) and all(isinstance(v, number) for v in r.per_note_moslqo)
          and all(v is None or isinstance(v, number) for v in (r.psm, r.psm_t))
          and isinstance(r.per_note_psm, list) and all(isinstance(v, number) for v in r.per_note_psm)
          and (r.seed is None or isinstance(r.seed, int)))
    if not ok:
        raise TypeError("a field has the wrong type or value")
    return check_finite(r, "result")


def load_result(path: str | os.PathLike) -> EvalResult:
    """Read an :class:`EvalResult` JSON written by :func:`save_result` (every field checked).

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> import tempfile
    >>> from pathlib import Path
    >>> load_result(save_result(Path(tempfile.mkdtemp()) / "pca8.json", results[0])).latent
    8
    """
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


def _cells(results: Sequence[EvalResult], attr: str) -> dict[tuple[str, int], tuple[float, float, int]]:
    """``{(model, latent): (mean, sd, n)}`` of ``attr`` over the results of each cell (one per seed); sd is the
    sample standard deviation (ddof 1), 0 for one result."""
    vals: dict[tuple[str, int], list[float]] = {}
    for r in results:
        v = getattr(r, attr)
        if v is not None:
            vals.setdefault((r.model, r.latent), []).append(float(v))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for k, v in vals.items()}


def _grid(results: Sequence[EvalResult], attr: str) -> tuple[list[str], list[int], dict]:
    models = [m for m in _ORDER if any(r.model == m for r in results)]
    latents = sorted({r.latent for r in results})
    return models, latents, _cells(results, attr)


def _perceptual_attr(results: Sequence[EvalResult]) -> tuple[str, str, int]:
    """(EvalResult field, label, sign: +1 when higher is better) of the perceptual score the results carry."""
    if any(r.psm is not None for r in results):
        return "psm", "PSM", 1
    return "moslqo", "MOS-LQO", 1


def better(a: tuple[float, float, int], b: tuple[float, float, int], *, lower: bool = True) -> str:
    """``"win"``, ``"loss"`` or ``"tie"`` of cell ``a`` against ``b`` (``(mean, sd, n)``).

    With at least 2 results in both cells a difference counts only when it exceeds twice the larger of the two
    standard deviations; otherwise it is a tie. With one result per cell there is no sd: the means decide.

    Examples
    --------
    >>> better((3.0, 0.1, 3), (4.0, 0.1, 3)), better((3.0, 0.5, 3), (3.5, 0.5, 3)), better((5.0, 0, 1), (4.0, 0, 1))
    ('win', 'tie', 'loss')
    """
    d = (b[0] - a[0]) if lower else (a[0] - b[0])
    if a[2] >= 2 and b[2] >= 2 and abs(d) <= 2 * max(a[1], b[1]):
        return "tie"
    return "win" if d > 0 else "loss" if d < 0 else "tie"


def _verdict(outcomes: dict[int, str]) -> str:
    wins = [L for L, o in outcomes.items() if o == "win"]
    ties = [L for L, o in outcomes.items() if o == "tie"]
    ls = sorted(outcomes)
    v = "holds" if len(wins) == len(ls) else "fails" if not wins else "partly holds"
    v += f" at L = {wins if wins else 'none'} of {ls}"
    return v + (f" (tie at L = {ties})" if ties else "")


def check_orderings(results: Sequence[EvalResult]) -> list[tuple[str, str]]:
    """For each paper ordering: ``(statement, verdict)``: at which latent sizes the better model wins on RMSE
    (and on the perceptual score), a win being decided by :func:`better` (2 sd when there are seeds).

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> all(isinstance(statement, str) and isinstance(verdict, str) for statement, verdict in check_orderings(results))
    True
    """
    _, latents, rmse = _grid(results, "rmse_db")
    pattr, plabel, _ = _perceptual_attr(results)
    perc = _cells(results, pattr)
    seeds = max((c[2] for c in rmse.values()), default=1)
    out = []
    for a, b, text in PAPER_ORDERINGS:
        ls = [L for L in latents if (a, L) in rmse and (b, L) in rmse]
        if not ls:
            continue
        v = _verdict({L: better(rmse[(a, L)], rmse[(b, L)]) for L in ls})
        verdict = v.split(" at ", 1)[0] + " on RMSE at " + v.split(" at ", 1)[1]
        pm = [L for L in ls if (a, L) in perc and (b, L) in perc]
        if pm:
            pv = _verdict({L: better(perc[(a, L)], perc[(b, L)], lower=False) for L in pm})
            verdict += f"; on {plabel} at " + pv.split(" at ", 1)[1]
        out.append((text, verdict))
    rough = _cells(results, "roughness")
    ls = [L for L in latents if ("vae", L) in rough and ("dae", L) in rough]
    if ls:
        out.append(("VAE has a smoother latent space than the DAE (lower roughness)",
                    _verdict({L: better(rough[("vae", L)], rough[("dae", L)]) for L in ls})))
    keys = [k for k in rmse if k in perc]
    if len(keys) >= 3:
        from scipy.stats import spearmanr
        rho = float(spearmanr([rmse[k][0] for k in keys], [-perc[k][0] for k in keys]).statistic)
        out.append(("Perceptual scores follow the reconstruction error",
                    f"Spearman rank correlation between RMSE and -{plabel} over {len(keys)} models: {rho:.2f}"))
    if out and seeds < 2:
        out.append(("Note", "one result per cell: no sd, so the means decide every comparison"))
    return out


def _cell_text(c: tuple[float, float, int] | None, digits: int) -> str:
    if c is None:
        return "-"
    return f"{c[0]:.{digits}f}" + (f" ± {c[1]:.{digits}f}" if c[2] > 1 else "")


def comparison_table(results: Sequence[EvalResult]) -> str:
    """Markdown table in the paper's layout: one row per model, one column per latent size, RMSE (dB) with the
    perceptual score after a slash when available, each ``mean ± sd`` over the seeds of the cell; then the
    latent roughness and the paper's orderings checked.

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> print(comparison_table(results).splitlines()[0])
    | model | L = 8 | L = 16 |
    """
    models, latents, rmse = _grid(results, "rmse_db")
    pattr, plabel, _ = _perceptual_attr(results)
    perc = _cells(results, pattr)
    digits = 3 if pattr == "psm" else 2
    lines = ["| model | " + " | ".join(f"L = {L}" for L in latents) + " |",
             "| --- | " + " | ".join("---:" for _ in latents) + " |"]
    for m in models:
        cells = []
        for L in latents:
            c = _cell_text(rmse.get((m, L)), 2)
            if (m, L) in rmse and (m, L) in perc:
                c += " / " + _cell_text(perc[(m, L)], digits)
            cells.append(c)
        lines.append(f"| {_LABEL[m]} | " + " | ".join(cells) + " |")
    n = sorted({c[2] for c in rmse.values()})
    what = {"psm": " / PEMO-Q-like PSM, 1 = identical (higher is better)",
            "moslqo": " / ViSQOL MOS-LQO, 1-5 (higher is better)"}[pattr] if perc else ""
    lines += ["", f"Cells: RMSE in dB on the test split (lower is better){what}"
              + (f"; mean ± sd over {'/'.join(map(str, n))} seeds." if n and n[-1] > 1 else ".")]
    rough = _cells(results, "roughness")
    if rough:
        lines += ["", "Latent roughness (max / mean step of the decoded sound along a straight latent path, "
                  "1 = perfectly even; see `latent_roughness`):", "",
                  "| model | " + " | ".join(f"L = {L}" for L in latents) + " |",
                  "| --- | " + " | ".join("---:" for _ in latents) + " |"]
        for m in models:
            lines.append(f"| {_LABEL[m]} | " + " | ".join(_cell_text(rough.get((m, L)), 2) for L in latents) + " |")
    checks = check_orderings(results)
    if checks:
        lines.append("")
        lines += [f"- {t}: {v}" for t, v in checks]
    return "\n".join(lines) + "\n"


def comparison_plot(results: Sequence[EvalResult], path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Plot RMSE (and the perceptual score when present) against latent size, one line per model, with error
    bars of one sd over seeds; write PNG/PDF/SVG.

    Examples
    --------
    >>> results = [EvalResult(model=m, latent=L, rmse_db=r, n_notes=16)
    ...            for m, L, r in (("pca", 8, 6.0), ("dae", 8, 4.0), ("pca", 16, 5.0), ("dae", 16, 3.0))]
    >>> import tempfile
    >>> from pathlib import Path
    >>> comparison_plot(results, Path(tempfile.mkdtemp()) / "error_vs_latent.png").suffix
    '.png'
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models, latents, rmse = _grid(results, "rmse_db")
    pattr, plabel, _ = _perceptual_attr(results)
    perc = _cells(results, pattr)
    has_mos = bool(perc)
    fig, axes = plt.subplots(1, 2 if has_mos else 1, figsize=(10 if has_mos else 5.5, 4), squeeze=False)
    for m in models:
        ls = [L for L in latents if (m, L) in rmse]
        axes[0, 0].errorbar(ls, [rmse[(m, L)][0] for L in ls], yerr=[rmse[(m, L)][1] for L in ls], marker="o",
                            capsize=3, label=_LABEL[m])
        if has_mos:
            lq = [L for L in ls if (m, L) in perc]
            axes[0, 1].errorbar(lq, [perc[(m, L)][0] for L in lq], yerr=[perc[(m, L)][1] for L in lq],
                                marker="o", capsize=3, label=_LABEL[m])
    axes[0, 0].set(xscale="log", xlabel="latent size L", ylabel="RMSE (dB)", title="Reconstruction error")
    if has_mos:
        axes[0, 1].set(xscale="log", xlabel="latent size L",
                       ylabel="PEMO-Q-like PSM" if pattr == "psm" else "ViSQOL MOS-LQO", title="Perceptual score")
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
