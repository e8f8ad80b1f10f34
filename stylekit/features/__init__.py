"""VGG19 features: the extractor (:mod:`.vgg`), its weights registry (:mod:`.weights`), the layer names
(:mod:`.layers`) and the CPU convolution backend (:mod:`.cpu_backend`).

The names are imported lazily, so importing :mod:`stylekit.features.layers` (plain Python) does not load torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .layers import LAYER_NAMES, min_input_size
    from .vgg import MonoAdapter, VGG19Features
    from .weights import PREPROCESSING, load_conv_weights

_LAZY = {"VGG19Features": ".vgg", "MonoAdapter": ".vgg", "LAYER_NAMES": ".layers", "min_input_size": ".layers",
         "load_conv_weights": ".weights", "PREPROCESSING": ".weights"}
__all__ = ["VGG19Features", "MonoAdapter", "LAYER_NAMES", "min_input_size", "load_conv_weights", "PREPROCESSING"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
