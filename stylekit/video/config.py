"""The settings of a video style transfer: :class:`VideoStyleConfig`, every image setting plus the temporal ones.

Plain Python (no torch), so ``stylekit video --help`` is built from these fields without loading the network.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._options import option
from ..errors import ConfigError
from ..image.config import ImageStyleConfig

__all__ = ["VideoStyleConfig"]


@dataclass(frozen=True)
class VideoStyleConfig(ImageStyleConfig):
    """Every setting of a video style transfer: an :class:`ImageStyleConfig` (each frame is stylized with those
    settings) and the temporal settings of Ruder, Dosovitskiy & Brox, *Artistic style transfer for videos*
    (2016).

    Attributes
    ----------
    temporal_weight : weight of the temporal term, which ties each frame's result to the previous result warped
        by the optical flow, where the flow is reliable. ``0`` stylizes every frame on its own (as
        ``stylekit image`` would), from the image ``init``.
    warm_iterations : with a temporal weight above 0, every frame after the first starts from the previous
        result, warped, and runs this many iterations at the output size only (one scale); default a quarter
        of ``iterations``.

    Notes
    -----
    The temporal term is a mean over pixels of squared RGB differences in [0, 1] (Ruder et al.'s
    ``1/D sum c (x - w)^2``), while the content and style terms here are relative distances: the default weight
    is set for those, not Ruder et al.'s 200.

    Examples
    --------
    >>> config = VideoStyleConfig(size=256, temporal_weight=100)
    >>> config.temporal_weight, config.image_config().size
    (100, 256)
    """

    temporal_weight: float = option(
        100.0, type=float, group="Video",
        help="Weight of the temporal term (consistency with the previous frame, warped); 0 = independent frames.")
    warm_iterations: int | None = option(
        None, type=int, group="Video",
        help="Iterations of each frame after the first (at the output size, from the previous result).",
        show=lambda v: "a quarter of --iterations" if v is None else str(v))

    def __post_init__(self) -> None:
        super().__post_init__()
        w = self.temporal_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
            raise ConfigError(f"temporal-weight must be a finite number >= 0, got {w!r}")
        n = self.warm_iterations
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"warm-iterations must be an integer >= 1, got {n!r}")

    @property
    def temporal(self) -> bool:
        """Whether frames after the first are tied to the previous result (``temporal_weight > 0``)."""
        return self.temporal_weight > 0

    @property
    def resolved_warm_iterations(self) -> int:
        """``warm_iterations``, or a quarter of ``iterations`` (at least 1)."""
        return self.warm_iterations if self.warm_iterations is not None else max(1, self.iterations // 4)

    def image_config(self) -> ImageStyleConfig:
        """The settings of one frame, as an :class:`ImageStyleConfig`."""
        names = {f.name for f in dataclasses.fields(ImageStyleConfig)}
        return ImageStyleConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in names})

    @classmethod
    def from_image(cls, image: ImageStyleConfig, **temporal) -> VideoStyleConfig:
        """A video config with ``image``'s settings and the temporal ``temporal`` ones."""
        return cls(**{f.name: getattr(image, f.name) for f in dataclasses.fields(ImageStyleConfig)}, **temporal)
