"""Training data (frame segments of NSynth-format notes) and the deterministic, resumable training loop."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, WeightsError
from .config import SpectralSTFTConfig, TrainConfig
from .features import to_features
from .models import PCA, SpectralModel, build_model, load_model, save_model
from .nsynth import NSynthNote, load_audio, read_split

__all__ = ["TrainConfig", "TrainProgress", "note_features", "load_segments", "fit", "train_to_file"]


@dataclass(frozen=True)
class TrainProgress:
    """Reported to ``fit``'s callback after every optimiser step."""

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    terms: dict[str, float]


def note_features(note: NSynthNote | str | os.PathLike, stft: SpectralSTFTConfig) -> np.ndarray:
    """Frames ``(n_frames, n_bins)`` of one note's WAV file (refuses a sample-rate mismatch, naming the file)."""
    path = note.path if isinstance(note, NSynthNote) else Path(note)
    return to_features(load_audio(path, sample_rate=stft.sample_rate), stft)


def load_segments(notes: Sequence[NSynthNote], stft: SpectralSTFTConfig, *, seq_len: int,
                  segments_per_note: int, seed: int,
                  progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Cut each note into non-overlapping ``seq_len``-frame segments and keep a seeded random subset.

    Returns
    -------
    Tensor, shape (n_segments, seq_len, n_bins), float32 in [0, 1]
    """
    if not notes:
        raise ConfigError("no training notes")
    rng = np.random.default_rng(seed)
    out = []
    for note in notes:
        x = note_features(note, stft)
        n = x.shape[0] // seq_len
        if n == 0:
            continue
        segs = x[: n * seq_len].reshape(n, seq_len, -1)
        if segments_per_note and n > segments_per_note:
            segs = segs[np.sort(rng.choice(n, segments_per_note, replace=False))]
        out.append(segs)
        if progress is not None:
            progress(1)
    if not out:
        raise ConfigError(f"notes are shorter than seq_len={seq_len} frames")
    return torch.from_numpy(np.concatenate(out))


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One generator per (seed, epoch): resuming at any epoch boundary replays the same shuffles and noise.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def fit(model: SpectralModel, segments: torch.Tensor, cfg: TrainConfig, *,
        start_epoch: int = 0, optimizer_state: dict | None = None,
        on_step: Callable[[TrainProgress], None] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None) -> SpectralModel:
    """Train ``model`` in place on ``segments`` ``(n, seq_len, n_bins)``.

    PCA is fitted by SVD on all frames; the others use Adam on mini-batches of ``cfg.batch_frames`` frames
    (frame models) or ``batch_frames // seq_len`` whole segments (LSTM-AE). ``on_epoch(epoch, optimizer_state)``
    is called after each finished epoch (1-based count of finished epochs) so the caller can save a resume
    point; ``start_epoch`` and ``optimizer_state`` resume from one. Bitwise deterministic for a given seed on
    one machine and thread count.
    """
    if isinstance(model, PCA):
        model.fit(segments.reshape(-1, segments.shape[-1]))
        if on_epoch is not None:
            on_epoch(cfg.epochs, {})
        return model.eval()
    sequential = model.name == "lstm"
    data = segments if sequential else segments.reshape(-1, segments.shape[-1])
    batch = max(1, cfg.batch_frames // cfg.seq_len) if sequential else cfg.batch_frames
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    steps = (len(data) + batch - 1) // batch
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen = _epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(len(data), generator=gen)
        for step in range(steps):
            xb = data[perm[step * batch:(step + 1) * batch]]
            opt.zero_grad(set_to_none=True)
            total, terms = model.loss(xb, generator=gen)
            total.backward()
            opt.step()
            if on_step is not None:
                on_step(TrainProgress(epoch + 1, step + 1, steps, float(total.detach()),
                                      {k: float(v) for k, v in terms.items()}))
        if on_epoch is not None:
            on_epoch(epoch + 1, opt.state_dict())
    return model.eval()


def train_to_file(data_dir: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig, *,
                  stft: SpectralSTFTConfig | None = None, resume: bool = False, overwrite: bool = False,
                  segments: torch.Tensor | None = None,
                  on_load: Callable[[int], None] | None = None,
                  on_step: Callable[[TrainProgress], None] | None = None) -> Path:
    """Train on ``data_dir``'s train split and write the checkpoint ``out``.

    After every epoch a resume point ``<out>.partial`` is written (model, optimiser, finished epochs, config);
    with ``resume`` an existing one is continued, giving the same weights as an uninterrupted run. The resume
    point is removed when ``out`` is written.

    Parameters
    ----------
    segments : Tensor, optional
        Pre-loaded training segments (skips reading the data set; used by sweeps).
    on_load : callable, optional
        Called with 1 per note read (progress).
    """
    stft = stft or SpectralSTFTConfig()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    meta = {"train": asdict(cfg), "data_dir": str(data_dir)}
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, n_bins=stft.n_bins, latent=cfg.latent, **cfg.model_kwargs())
    start, opt_state = 0, None
    if resume and partial.is_file():
        try:
            model, pstft, pmeta, extra = load_model(partial, with_extra=True)
        except WeightsError as e:
            raise WeightsError(f"cannot resume: {e}") from None
        pmeta.pop("checkpoint_digest", None)
        if pmeta.get("train") != asdict(cfg) or pstft != stft:
            raise ConfigError(f"{partial}: resume point was made with other options; "
                              "rerun with the same options or delete it")
        start, opt_state = int(extra.get("epoch", 0)), extra.get("optimizer")
    elif partial.exists() and not overwrite:
        raise ConfigError(f"{partial}: an interrupted run exists (use --resume to continue it, "
                          "or --overwrite to start again)")
    elif partial.exists() and not _is_resume_point(partial):
        raise ConfigError(f"{partial}: exists and is not a stylekit resume point; this run would need that "
                          "name (move the file, or choose another output)")
    if segments is None:
        notes = read_split(data_dir, "train")
        segments = load_segments(notes, stft, seq_len=cfg.seq_len, segments_per_note=cfg.segments_per_note,
                                 seed=cfg.seed, progress=on_load)
    meta["n_train_frames"] = int(segments.shape[0] * segments.shape[1])

    def save_partial(epoch: int, opt_state: dict) -> None:
        _check_finite_weights(model, out)
        if epoch < cfg.epochs:
            save_model(partial, model, stft, meta=meta, overwrite=True,
                       extra={"epoch": epoch, "optimizer": opt_state})

    fit(model, segments, cfg, start_epoch=start, optimizer_state=opt_state, on_step=on_step,
        on_epoch=save_partial)
    _check_finite_weights(model, out)
    save_model(out, model, stft, meta=meta, overwrite=overwrite)
    partial.unlink(missing_ok=True)
    return out


def _is_resume_point(path: Path) -> bool:
    """Whether ``path`` is a spectral checkpoint with a resume state (even one that fails its digest): only
    such a file may be replaced by the next resume point."""
    from .._checkpoint import UnloadableFile, load_torch_file
    from .models import CHECKPOINT_FORMAT
    try:
        ckpt = load_torch_file(path)
    except UnloadableFile:
        return False
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT and "extra" in ckpt


def _check_finite_weights(model: SpectralModel, out: Path) -> None:
    """Training that diverged (NaN or infinite weights) stops here: nothing NaN is ever written."""
    from ..errors import StylekitError
    if not all(bool(torch.isfinite(v).all()) for v in model.state_dict().values()):
        raise StylekitError(f"{out}: training diverged (the weights became NaN or infinite); nothing was "
                            "written; try a lower --lr")
