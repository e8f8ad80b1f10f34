"""stylekit: neural style transfer for images and sound, and spectral autoencoders for musical notes.

The public names are imported lazily, so ``import stylekit`` does no work (no torch import, no downloads).
"""
from __future__ import annotations

import importlib
import os

# OpenMP threads that spin after each parallel region take the cores NNPACK's own thread pool needs for the
# Winograd convolutions (stylekit.features.vgg); passive waiting makes a 2-thread CPU iteration ~15% faster
# and costs the other kernels nothing measurable. It only takes effect when torch is not imported yet (as in
# the command line), and a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "stylize_image": "stylekit.pipelines",
    "ImageStyleConfig": "stylekit.pipelines",
    "stylize_audio": "stylekit.audio.pipeline",
    "AudioStyleConfig": "stylekit.audio.pipeline",
    "VGG19Features": "stylekit.features",
    "StyleTransferLoss": "stylekit.losses",
    "optimize": "stylekit.optim",
    "StylekitError": "stylekit.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
