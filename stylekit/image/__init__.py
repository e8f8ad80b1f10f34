"""Image style transfer: one home for the medium.

- :mod:`.config`: :class:`ImageStyleConfig`, every setting (plain Python, read by the command line).
- :mod:`.io`: image files <-> tensors, resizing (the only module that touches PIL).
- :mod:`.color`: colour preservation (luminance transfer, histogram matching).
- :mod:`.pipeline`: :func:`stylize_image`, :func:`style_targets`, :class:`ImageResult`.
- :mod:`.tiling`: the exact tiled objective for outputs larger than memory.
- :mod:`.estimate`: peak memory and time of a run, before running it.
- :mod:`.job`: :class:`ImageJob`, the run protocol for one picture.
- :mod:`.cli`: the ``stylekit image`` command.

The names below are imported lazily, so the command line can read the config without loading torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .color import match_color, match_luminance, rgb_to_yiq, yiq_to_rgb
    from .config import ImageStyleConfig
    from .io import OUTPUT_FORMATS, load_image, read_metadata, resize, resize_long_edge, save_image
    from .job import ImageJob
    from .pipeline import ImageResult, StyleTargets, estimate_image_run, finish_image, style_targets, stylize_image

_LAZY = {
    "ImageStyleConfig": ".config", "ImageJob": ".job",
    "load_image": ".io", "save_image": ".io", "read_metadata": ".io", "resize": ".io",
    "resize_long_edge": ".io", "OUTPUT_FORMATS": ".io",
    "rgb_to_yiq": ".color", "yiq_to_rgb": ".color", "match_color": ".color", "match_luminance": ".color",
    "stylize_image": ".pipeline", "style_targets": ".pipeline", "ImageResult": ".pipeline",
    "StyleTargets": ".pipeline", "estimate_image_run": ".pipeline", "finish_image": ".pipeline",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, ())
