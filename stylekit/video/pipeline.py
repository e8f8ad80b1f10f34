"""Video style transfer end to end: :func:`stylize_video`, frame by frame on the image pipeline.

frames (:mod:`.io`) -> for each frame: optical flow from the previous input frame (:mod:`.flow`) -> the previous
result warped into it, as the starting image and the temporal term's target (:mod:`.temporal`) ->
:func:`stylekit.image.stylize_image` -> :class:`VideoResult`.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._device import resolve_device
from ..errors import ConfigError, StylizeInterrupted
from ..image.pipeline import StyleTargets, reuse_networks, style_targets, stylize_image
from .config import VideoStyleConfig

__all__ = ["VideoResult", "FrameProgress", "stylize_video", "video_style_targets", "to_frame", "to_image"]


@dataclass(frozen=True)
class VideoResult:
    """What :func:`stylize_video` returns.

    Attributes
    ----------
    data : torch.Tensor
        ``(N, H, W, 3)`` uint8 RGB, the stylized frames (for an interrupted run, those finished).
    config : VideoStyleConfig
        The settings that made it.
    seconds : tuple of float
        The time each frame took.
    interrupted : bool
        True for the frames finished before a run was stopped.

    Examples
    --------
    >>> import torch
    >>> frames = (torch.rand(2, 24, 32, 3) * 255).to(torch.uint8)
    >>> result = stylize_video(frames, [torch.rand(1, 3, 32, 32)], iterations=1, scales=1)
    >>> result.data.shape, result.data.dtype, result.interrupted
    (torch.Size([2, 24, 32, 3]), torch.uint8, False)
    """

    data: torch.Tensor = field(repr=False)
    config: VideoStyleConfig
    seconds: tuple[float, ...] = ()
    interrupted: bool = False

    @property
    def frames(self) -> int:
        """The number of frames."""
        return int(self.data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames."""
        return tuple(self.data.shape[1:3])


@dataclass(frozen=True)
class FrameProgress:
    """What ``on_frame`` receives after each finished frame: ``frame`` (1-based) of ``frames``, the
    seconds it took, its loss terms, and the result ``image`` (``(1, 3, H, W)`` in [0, 1]).

    Examples
    --------
    >>> import torch
    >>> seen = []
    >>> frames = (torch.rand(2, 24, 32, 3) * 255).to(torch.uint8)
    >>> _ = stylize_video(frames, [torch.rand(1, 3, 32, 32)], iterations=1, scales=1,
    ...                   on_frame=lambda p: seen.append((p.frame, p.frames)))
    >>> seen
    [(1, 2), (2, 2)]
    """

    frame: int
    frames: int
    seconds: float
    terms: dict[str, float]
    image: torch.Tensor = field(repr=False)


def to_image(frame: torch.Tensor) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 frame as a ``(1, 3, H, W)`` float image in [0, 1].

    Examples
    --------
    >>> import torch
    >>> to_image(torch.full((4, 6, 3), 255, dtype=torch.uint8)).shape
    torch.Size([1, 3, 4, 6])
    """
    return frame.permute(2, 0, 1)[None].float() / 255


def to_frame(image: torch.Tensor) -> torch.Tensor:
    """A ``(1, 3, H, W)`` image in [0, 1] as an ``(H, W, 3)`` uint8 frame.

    Examples
    --------
    >>> import torch
    >>> frame = torch.randint(0, 256, (4, 6, 3), dtype=torch.uint8)
    >>> torch.equal(to_frame(to_image(frame)), frame)
    True
    """
    return (image[0].detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()


def video_style_targets(styles, config: VideoStyleConfig, size: int,
                        names: Sequence[str] | None = None) -> StyleTargets:
    """The style features of every scale a run of frames with long edge ``size`` uses (computed once).

    Examples
    --------
    >>> import torch
    >>> from stylekit.video.config import VideoStyleConfig
    >>> targets = video_style_targets([torch.rand(1, 3, 32, 32)], VideoStyleConfig(scales=1), 32)
    >>> len(targets.images)
    1
    """
    if isinstance(styles, StyleTargets):
        return styles
    return style_targets(styles, config=dataclasses.replace(config.image_config(), size=size), style_names=names)


def _frames(content, cfg: VideoStyleConfig) -> torch.Tensor:
    if isinstance(content, torch.Tensor):
        if content.dim() != 4 or content.shape[-1] != 3 or content.dtype != torch.uint8 or not len(content):
            raise ConfigError(f"frames must be a non-empty (N, H, W, 3) uint8 tensor, got {tuple(content.shape)} "
                              f"{content.dtype}")
        return content
    from .io import read_video
    return read_video(content, size=cfg.resolved_size(resolve_device(cfg.device)))[0]


def _check_resume(resume: dict | None, frames: torch.Tensor) -> list[torch.Tensor]:
    if resume is None:
        return []
    done = resume.get("frames")
    if not (isinstance(done, torch.Tensor) and done.dtype == torch.uint8 and done.dim() == 4
            and tuple(done.shape[1:]) == tuple(frames.shape[1:]) and len(done) <= len(frames)):
        raise ConfigError("the resume state does not match these frames (different video, size or settings)")
    return list(done)


def _one_frame(i: int, frames: torch.Tensor, previous: torch.Tensor | None, targets: StyleTargets,
               cfg: VideoStyleConfig, callback: Callable | None, state: dict | None):
    """Stylize frame ``i``: on its own (the first frame, or no temporal term), else from ``previous`` (the
    result of frame ``i - 1``, uint8) warped into it, with the temporal term."""
    image_cfg = dataclasses.replace(cfg.image_config(), size=max(frames.shape[1:3]))
    content = to_image(frames[i])
    if previous is None or not cfg.temporal:
        return stylize_image(content, targets, config=image_cfg, callback=callback, resume=state)
    from ..image.color import luminance_image
    from .flow import optical_flow, reliable
    from .temporal import TemporalTerm, warp
    prev_in, cur_in = frames[i - 1].numpy(), frames[i].numpy()
    backward = optical_flow(cur_in, prev_in)
    mask = reliable(backward, optical_flow(prev_in, cur_in))
    warped = warp(to_image(previous), backward).clamp(0, 1)
    if cfg.preserve_color == "luminance":    # the optimised image is then the luminance (stylekit.image.color)
        warped = luminance_image(warped)
    # Warm start (Ruder et al.): from the warped result, at the output size only, for fewer iterations.
    warm = dataclasses.replace(image_cfg, scales=1, iterations=cfg.resolved_warm_iterations)
    return stylize_image(content, targets, config=warm, callback=callback, resume=state, init_image=warped,
                         wrap_criterion=TemporalTerm(warped, mask, cfg.temporal_weight))


def stylize_video(content, styles, *, config: VideoStyleConfig | None = None,
                  callback: Callable | None = None, on_frame: Callable[[FrameProgress], None] | None = None,
                  resume: dict | None = None, style_names: Sequence[str] | None = None, **options) -> VideoResult:
    """Paint every frame of ``content`` in the style of ``styles``, each consistent with the one before.

    Parameters
    ----------
    content : a video file, or its frames as an ``(N, H, W, 3)`` uint8 RGB tensor (used at their size, which
        should have even sides for an MP4).
    styles : style image paths or tensors, or the :class:`~stylekit.image.pipeline.StyleTargets` of
        :func:`video_style_targets`.
    config : a :class:`VideoStyleConfig`; keyword ``options`` override its fields.
    callback : receives the image pipeline's :class:`~stylekit.optim.Progress` after every iteration.
    on_frame : receives a :class:`FrameProgress` after every finished frame.
    resume : the ``state`` of a :class:`~stylekit.StylizeInterrupted` from a run with the same frames and
        config: the run continues from the frame (and the iteration) where it stopped and gives the frames an
        uninterrupted run gives.

    Returns
    -------
    VideoResult
        ``.data`` is ``(N, H, W, 3)`` uint8.

    Raises
    ------
    StylizeInterrupted
        on Ctrl-C: its ``result`` is a :class:`VideoResult` of the frames finished (None before the first),
        its ``state`` those frames and the interrupted frame's optimiser state.

    Notes
    -----
    Ruder et al. warp with the flow between input frames and initialise each frame from the warped result;
    here the result each frame is warped from is the previous frame as written (8-bit), so a resumed run
    starts from exactly what an uninterrupted one had. Frames after the first run one scale only
    (``warm_iterations``); the first frame and, with ``temporal_weight=0``, every frame runs as
    ``stylekit image`` would.

    Example
    -------
    A file (``stylize_video("clip.mp4", ["starry_night.jpg"], size=256)``), or frames:

    >>> import torch
    >>> frames = (torch.rand(2, 24, 32, 3) * 255).to(torch.uint8)       # two RGB frames
    >>> result = stylize_video(frames, [torch.rand(1, 3, 32, 32)], iterations=2, scales=1)
    >>> result.data.shape
    torch.Size([2, 24, 32, 3])
    """
    cfg = dataclasses.replace(config or VideoStyleConfig(), **options)
    frames = _frames(content, cfg)
    with reuse_networks():      # one network for the style targets and every frame, built once
        return _stylize_frames(frames, styles, cfg, callback, on_frame, resume, style_names)


def _stylize_frames(frames: torch.Tensor, styles, cfg: VideoStyleConfig, callback: Callable | None,
                    on_frame: Callable[[FrameProgress], None] | None, resume: dict | None,
                    style_names: Sequence[str] | None) -> VideoResult:
    targets = video_style_targets(styles, cfg, max(frames.shape[1:3]), style_names)
    done = _check_resume(resume, frames)
    seconds = [float(s) for s in (resume or {}).get("seconds", [])][:len(done)]
    state = (resume or {}).get("frame")
    last: dict[str, float] = {}

    def record(p):      # the loss terms of a frame's last iteration, for on_frame
        last.clear()
        last.update(p.terms)
        return callback(p) if callback is not None else None

    for i in range(len(done), len(frames)):
        t0 = time.perf_counter()
        try:
            result = _one_frame(i, frames, done[-1] if done else None, targets, cfg, record, state)
            state = None
            done.append(to_frame(result.data))
            seconds.append(time.perf_counter() - t0)
            if on_frame is not None:
                on_frame(FrameProgress(i + 1, len(frames), seconds[-1], dict(last), to_image(done[-1])))
        except KeyboardInterrupt as e:
            inner = e.state if isinstance(e, StylizeInterrupted) and len(done) == i else None
            partial = VideoResult(torch.stack(done), cfg, tuple(seconds), interrupted=True) if done else None
            kept = torch.stack(done) if done else torch.empty((0, *frames.shape[1:]), dtype=torch.uint8)
            raise StylizeInterrupted(partial, {"frames": kept, "frame": inner, "seconds": seconds}) from None
    return VideoResult(torch.stack(done), cfg, tuple(seconds))
