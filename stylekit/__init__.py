"""stylekit: neural style transfer for images and sound, and spectral autoencoders for musical notes.

The public names are imported lazily, so ``import stylekit`` does no work: no torch import, no downloads, and
no change to the environment.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

if TYPE_CHECKING:
    from ._device import resolve_device
    from .audio.config import AudioStyleConfig
    from .audio.pipeline import AudioResult, stylize_audio
    from .errors import StylekitError, StylizeInterrupted
    from .features import VGG19Features
    from .image.config import ImageStyleConfig
    from .image.pipeline import ImageResult, style_targets, stylize_image
    from .losses import StyleTransferLoss
    from .optim import optimize

__version__ = "0.1.0"

_LAZY = {
    "stylize_image": "stylekit.image.pipeline",
    "style_targets": "stylekit.image.pipeline",
    "ImageResult": "stylekit.image.pipeline",
    "ImageStyleConfig": "stylekit.image.config",
    "stylize_audio": "stylekit.audio.pipeline",
    "AudioResult": "stylekit.audio.pipeline",
    "AudioStyleConfig": "stylekit.audio.config",
    "VGG19Features": "stylekit.features",
    "StyleTransferLoss": "stylekit.losses",
    "optimize": "stylekit.optim",
    "resolve_device": "stylekit._device",
    "StylekitError": "stylekit.errors",
    "StylizeInterrupted": "stylekit.errors",
}
__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, ("__version__",))
