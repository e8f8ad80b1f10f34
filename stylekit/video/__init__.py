"""Video style transfer: one home for the medium, built on :mod:`stylekit.image`.

- :mod:`.config`: :class:`VideoStyleConfig`, every image setting plus the temporal ones (plain Python).
- :mod:`.io`: video files <-> frames through PyAV (the only module that imports ``av``).
- :mod:`.flow`: optical flow (OpenCV DIS) and where it is reliable.
- :mod:`.temporal`: the warp and the temporal term (Ruder, Dosovitskiy & Brox 2016).
- :mod:`.pipeline`: :func:`stylize_video`, :class:`VideoResult`.
- :mod:`.job`: :class:`VideoJob`, the run protocol for one clip.
- :mod:`.cli`: the ``stylekit video`` command.

The names below are imported lazily, so the command line can read the config without loading torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .config import VideoStyleConfig
    from .flow import optical_flow, reliable
    from .io import VideoInfo, probe_video, read_metadata, read_video, write_frames, write_video
    from .job import VideoJob, VideoOutput
    from .pipeline import FrameProgress, VideoResult, stylize_video
    from .temporal import TemporalTerm, temporal_loss, warp

_LAZY = {
    "VideoStyleConfig": ".config", "VideoJob": ".job", "VideoOutput": ".job",
    "VideoInfo": ".io", "probe_video": ".io", "read_video": ".io", "write_video": ".io", "write_frames": ".io",
    "read_metadata": ".io", "optical_flow": ".flow", "reliable": ".flow",
    "warp": ".temporal", "temporal_loss": ".temporal", "TemporalTerm": ".temporal",
    "stylize_video": ".pipeline", "VideoResult": ".pipeline", "FrameProgress": ".pipeline",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, ())
