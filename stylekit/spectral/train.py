"""Training data (frame segments of NSynth-format notes) and the deterministic, resumable training loop."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, WeightsError
from .config import NoteFilter, SpectralSTFTConfig, TrainConfig
from .features import to_features
from .models import PCA, SpectralModel, build_model, load_model, save_model
from .nsynth import NSynthNote, load_audio, read_split, select_notes, split_dir

__all__ = ["TrainConfig", "TrainProgress", "note_features", "load_segments", "training_data", "valid_loss", "fit",
           "train_to_file"]


@dataclass(frozen=True)
class TrainProgress:
    """Reported to ``fit``'s callback after every optimiser step.

    Examples
    --------
    >>> import torch
    >>> from stylekit.spectral.config import TrainConfig
    >>> from stylekit.spectral.models import ShallowAE
    >>> steps = []
    >>> _ = fit(ShallowAE(16, 4), torch.rand(64, 4, 16), TrainConfig(model="ae", latent=4, epochs=1, batch_frames=128),
    ...         on_step=lambda p: steps.append((p.epoch, p.step, p.steps_per_epoch)))
    >>> steps
    [(1, 1, 2), (1, 2, 2)]
    """

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    terms: dict[str, float]


def note_features(note: NSynthNote | str | os.PathLike, stft: SpectralSTFTConfig) -> np.ndarray:
    """Frames ``(n_frames, n_bins)`` of one note's WAV file (refuses a sample-rate mismatch, naming the file).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> note_features(read_split(root, "test")[0], SpectralSTFTConfig()).shape       # (frames, bins)
    (251, 513)
    """
    path = note.path if isinstance(note, NSynthNote) else Path(note)
    return to_features(load_audio(path, sample_rate=stft.sample_rate), stft)


def load_segments(notes: Iterable[NSynthNote], stft: SpectralSTFTConfig, *, seq_len: int,
                  segments_per_note: int, seed: int, max_frames: int | None = None,
                  progress: Callable[[int], None] | None = None,
                  features: Callable[[NSynthNote], np.ndarray] | None = None) -> torch.Tensor:
    """Cut each note into non-overlapping ``seq_len``-frame segments, keep a seeded random subset of each, and
    keep at most ``max_frames // seq_len`` segments over all notes by reservoir sampling.

    The notes are streamed: one note's features and the reservoir are all that is held, so memory is bounded by
    ``max_frames * n_bins * 4`` bytes (plus one note) whatever the number of notes, and every segment has the
    same chance of being kept (Vitter's algorithm R). While the reservoir is not full, nothing is replaced, so
    a data set smaller than the bound gives exactly its segments. ``features`` (default: read the note's WAV,
    :func:`note_features`) maps a note to its frames.

    Returns
    -------
    Tensor, shape (n_segments, seq_len, n_bins), float32 in [0, 1]

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> segments = load_segments(read_split(root, "train"), SpectralSTFTConfig(), seq_len=16,
    ...                          segments_per_note=3, seed=0)
    >>> segments.shape                                     # 3 segments of 16 frames from each of 2 notes
    torch.Size([6, 16, 513])
    """
    rng = np.random.default_rng(seed)
    capacity = max(1, max_frames // seq_len) if max_frames else None
    kept = _Blocks()
    seen = n_notes = 0
    features = features or (lambda note: note_features(note, stft))
    for note in notes:
        n_notes += 1
        x = features(note)
        n = x.shape[0] // seq_len
        segs = x[: n * seq_len].reshape(n, seq_len, -1) if n else x[:0].reshape(0, seq_len, x.shape[-1])
        if segments_per_note and n > segments_per_note:
            segs = segs[np.sort(rng.choice(n, segments_per_note, replace=False))]
        seg = None
        for seg in segs:
            if capacity is None or seen < capacity:
                kept.put(seen, seg)             # a copy: the note's own array is not kept alive
            else:
                j = int(rng.integers(0, seen + 1))
                if j < capacity:
                    kept.put(j, seg)
            seen += 1
        x = segs = seg = None       # drop every view of this note before the next one is read
        if progress is not None:
            progress(1)
    if not seen:
        raise ConfigError("no training notes" if n_notes == 0 else
                          f"notes are shorter than seq_len={seq_len} frames")
    return torch.from_numpy(kept.drain(min(seen, capacity or seen)))


class _Blocks:
    """The reservoir's storage: segments in blocks of :attr:`SIZE` (8 MB at 16 x 513 frames), each its own
    allocation, so :meth:`drain` can copy them into one array while freeing them, and the reservoir is never
    held twice (one array per segment would leave the freed memory in the process's heap)."""

    SIZE = 256

    def __init__(self) -> None:
        self.blocks: list[np.ndarray | None] = []

    def put(self, i: int, seg: np.ndarray) -> None:
        b, o = divmod(i, self.SIZE)
        if b == len(self.blocks):
            self.blocks.append(np.empty((self.SIZE, *seg.shape), dtype=np.float32))
        self.blocks[b][o] = seg

    def drain(self, n: int) -> np.ndarray:
        """The first ``n`` segments as one array; the blocks are freed as they are copied."""
        shape = self.blocks[0].shape[1:]
        out = np.empty((n, *shape), dtype=np.float32)
        for b in range(len(self.blocks)):
            lo = b * self.SIZE
            out[lo:min(n, lo + self.SIZE)] = self.blocks[b][: max(0, min(n, lo + self.SIZE) - lo)]
            self.blocks[b] = None
        return out


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One generator per (seed, epoch): resuming at any epoch boundary replays the same shuffles and noise.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@torch.no_grad()
def valid_loss(model: SpectralModel, valid: torch.Tensor, *, batch: int = 4096) -> float:
    """Mean over frames of the squared error summed over bins of the deterministic reconstruction of
    ``valid`` ``(n, seq_len, n_bins)`` (the quantity early stopping watches; batched to bound memory).

    Examples
    --------
    >>> import torch
    >>> from stylekit.spectral.models import PCA
    >>> segments = torch.rand(8, 4, 16)
    >>> valid_loss(PCA(16, 16).fit(segments.reshape(-1, 16)), segments) < 1e-6     # a full-rank PCA is exact
    True
    """
    was_training = model.training
    model.eval()
    data = valid if model.name == "lstm" else valid.reshape(-1, valid.shape[-1])
    step = max(1, batch // valid.shape[1]) if model.name == "lstm" else batch
    dev = next(iter(model.state_dict().values())).device
    total = 0.0
    for i in range(0, len(data), step):
        xb = data[i:i + step].to(dev)
        total += float(((model(xb) - xb) ** 2).sum())
    model.train(was_training)
    return total / (valid.shape[0] * valid.shape[1])


class _EarlyStop:
    """The best epoch so far on the valid split, its weights, and how many epochs since (resumable state)."""

    def __init__(self, patience: int, state: dict | None) -> None:
        state = state or {}
        self.patience = patience
        self.best = float(state.get("best", float("inf")))
        self.best_epoch = int(state.get("best_epoch", 0))
        self.weights = state.get("weights")
        self.bad = int(state.get("bad", 0))

    def update(self, model: SpectralModel, loss: float, epoch: int) -> bool:
        """Record one finished epoch; True when training should stop."""
        if loss < self.best:
            self.best, self.best_epoch, self.bad = loss, epoch, 0
            self.weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self.weights, "bad": self.bad}


def fit(model: SpectralModel, segments: torch.Tensor, cfg: TrainConfig, *,
        start_epoch: int = 0, optimizer_state: dict | None = None, valid: torch.Tensor | None = None,
        early_state: dict | None = None,
        on_step: Callable[[TrainProgress], None] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None) -> SpectralModel:
    """Train ``model`` in place on ``segments`` ``(n, seq_len, n_bins)``.

    PCA is fitted by SVD on all frames; the others use Adam on mini-batches of ``cfg.batch_frames`` frames
    (frame models) or ``batch_frames // seq_len`` whole segments (LSTM-AE). With ``valid`` segments and
    ``cfg.patience > 0``, training stops after ``patience`` epochs without a lower :func:`valid_loss` and the
    best epoch's weights are restored. ``on_epoch(epoch, state)`` is called after each finished epoch (1-based
    count of finished epochs) with ``{"optimizer": ..., "early": ...}`` so the caller can save a resume point;
    ``start_epoch``, ``optimizer_state`` and ``early_state`` resume from one. Bitwise deterministic for a given
    seed on one machine and thread count.

    Examples
    --------
    >>> import torch
    >>> from stylekit.spectral.config import TrainConfig
    >>> from stylekit.spectral.models import ShallowAE
    >>> segments = torch.rand(64, 4, 16)                          # (segments, frames, bins)
    >>> model = ShallowAE(16, 4)
    >>> before = valid_loss(model, segments)
    >>> _ = fit(model, segments, TrainConfig(model="ae", latent=4, epochs=20, batch_frames=64))
    >>> valid_loss(model, segments) < before
    True
    """
    if isinstance(model, PCA):
        model.fit(segments.reshape(-1, segments.shape[-1]))
        if on_epoch is not None:
            on_epoch(cfg.epochs, {})
        return model.eval()
    sequential = model.name == "lstm"
    data = segments if sequential else segments.reshape(-1, segments.shape[-1])
    batch = max(1, cfg.batch_frames // cfg.seq_len) if sequential else cfg.batch_frames
    if start_epoch == 0 and hasattr(model, "init_from_data"):
        model.init_from_data(data)      # a fresh run only: a resumed one has its weights
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    valid = valid if cfg.patience > 0 else None
    early = _EarlyStop(cfg.patience, early_state)
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
        stop = valid is not None and early.update(model, valid_loss(model, valid), epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, {"optimizer": opt.state_dict(), "early": early.state(), "stopped": stop})
        if stop:
            break
    if valid is not None and early.weights is not None:
        model.load_state_dict(early.weights)
    return model.eval()


def training_data(data_dir: str | os.PathLike, cfg: TrainConfig, stft: SpectralSTFTConfig, *,
                  note_filter: NoteFilter | None = None, on_load: Callable[[int], None] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """The training segments of ``data_dir``'s train split and the valid split's (None when early stopping is
    off or there is no valid split), both streamed and bounded (:func:`load_segments`), plus what was read.

    ``note_filter`` selects the notes of both splits (its ``max_notes`` applies to the train split only).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.config import SpectralSTFTConfig, TrainConfig
    >>> train, valid, info = training_data(root, TrainConfig(segments_per_note=2, seq_len=8), SpectralSTFTConfig())
    >>> train.shape, valid is None or valid.shape[1:] == train.shape[1:]
    (torch.Size([4, 8, 513]), True)
    """
    flt = note_filter or NoteFilter()
    notes = select_notes(read_split(data_dir, "train"), flt)
    if not notes:
        raise ConfigError(f"{data_dir}: no training notes" + ("" if flt.is_all else " match the note selection"))
    train = load_segments(notes, stft, seq_len=cfg.seq_len, segments_per_note=cfg.segments_per_note,
                          seed=cfg.seed, max_frames=cfg.max_frames, progress=on_load)
    info = {"n_train_notes": len(notes), "n_train_frames": int(train.shape[0] * train.shape[1])}
    valid = None
    vdir = split_dir(data_dir, "valid")
    if cfg.patience > 0 and cfg.model != "pca" and (vdir / "examples.json").is_file():
        vnotes = select_notes(read_split(data_dir, "valid"), replace(flt, max_notes=None))
        if vnotes:
            valid = load_segments(vnotes, stft, seq_len=cfg.seq_len, segments_per_note=cfg.segments_per_note,
                                  seed=cfg.seed + 1, max_frames=max(cfg.seq_len, cfg.max_frames // 8))
            info.update(n_valid_notes=len(vnotes), n_valid_frames=int(valid.shape[0] * valid.shape[1]))
    return train, valid, info


def train_to_file(data_dir: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig, *,
                  stft: SpectralSTFTConfig | None = None, resume: bool = False, overwrite: bool = False,
                  segments: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                  note_filter: NoteFilter | None = None,
                  on_load: Callable[[int], None] | None = None,
                  on_step: Callable[[TrainProgress], None] | None = None) -> Path:
    """Train on ``data_dir``'s train split and write the checkpoint ``out``.

    After every epoch a resume point ``<out>.partial`` is written (model, optimiser, early-stopping state,
    finished epochs, config); with ``resume`` an existing one is continued, giving the same weights as an
    uninterrupted run. The resume point is removed when ``out`` is written.

    Parameters
    ----------
    segments, valid : Tensor, optional
        Pre-loaded training (and valid) segments: skips reading the data set (used by sweeps).
    note_filter : NoteFilter, optional
        Which notes to train on (see :func:`training_data`).
    on_load : callable, optional
        Called with 1 per note read (progress).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.nsynth import write_example_set
    >>> root = write_example_set(Path(tempfile.mkdtemp()))   # a tiny NSynth-format data set: two 4 s notes per split
    >>> from stylekit.spectral.config import TrainConfig
    >>> out = train_to_file(root, root / "ae4.pt", TrainConfig(model="ae", latent=4, epochs=1, segments_per_note=2))
    >>> out.name
    'ae4.pt'
    """
    stft = stft or SpectralSTFTConfig()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")
    meta = {"train": asdict(cfg), "data_dir": str(data_dir)}
    if note_filter is not None and not note_filter.is_all:
        meta["notes"] = note_filter.to_dict()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, n_bins=stft.n_bins, latent=cfg.latent, **cfg.model_kwargs())
    start, state = _resume_state(partial, cfg, stft, resume=resume, overwrite=overwrite)
    if state is not None:
        model = state.pop("model")
    if segments is None:
        segments, valid, info = training_data(data_dir, cfg, stft, note_filter=note_filter, on_load=on_load)
        meta.update(info)
    else:
        meta["n_train_frames"] = int(segments.shape[0] * segments.shape[1])
    last: dict = {}

    def save_partial(epoch: int, st: dict) -> None:
        _check_finite_weights(model, out)
        last.update(st, epoch=epoch)
        if epoch < cfg.epochs and not st.get("stopped"):
            save_model(partial, model, stft, meta=meta, overwrite=True, extra={"epoch": epoch, **st})

    fit(model, segments, cfg, start_epoch=start, optimizer_state=(state or {}).get("optimizer"), valid=valid,
        early_state=(state or {}).get("early"), on_step=on_step, on_epoch=save_partial)
    _check_finite_weights(model, out)
    if last.get("early") and last["early"].get("weights") is not None:
        meta["early_stopping"] = {"patience": cfg.patience, "epochs_run": last["epoch"],
                                  "best_epoch": last["early"]["best_epoch"],
                                  "best_valid_mse": last["early"]["best"]}
    save_model(out, model, stft, meta=meta, overwrite=overwrite)
    partial.unlink(missing_ok=True)
    return out


def _resume_state(partial: Path, cfg: TrainConfig, stft: SpectralSTFTConfig, *, resume: bool,
                  overwrite: bool) -> tuple[int, dict | None]:
    """``(start_epoch, state)`` of an existing resume point when ``resume`` (state holds the loaded model, the
    optimiser and early-stopping states), ``(0, None)`` for a fresh run; refuses a resume point in the way."""
    if resume and partial.is_file():
        try:
            model, pstft, pmeta, extra = load_model(partial, with_extra=True)
        except WeightsError as e:
            raise WeightsError(f"cannot resume: {e}") from None
        pmeta.pop("checkpoint_digest", None)
        if pmeta.get("train") != asdict(cfg) or pstft != stft:
            raise ConfigError(f"{partial}: resume point was made with other options; "
                              "rerun with the same options or delete it")
        return int(extra.get("epoch", 0)), {"model": model, "optimizer": extra.get("optimizer"),
                                            "early": extra.get("early")}
    if partial.exists() and not overwrite:
        raise ConfigError(f"{partial}: an interrupted run exists (use --resume to continue it, "
                          "or --overwrite to start again)")
    if partial.exists() and not _is_resume_point(partial):
        raise ConfigError(f"{partial}: exists and is not a stylekit resume point; this run would need that "
                          "name (move the file, or choose another output)")
    return 0, None


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
