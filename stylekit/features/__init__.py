"""VGG19 features: the extractor (:mod:`.vgg`), its weights registry (:mod:`.weights`), the layer names
(:mod:`.layers`) and the CPU convolution backend (:mod:`.cpu_backend`).

The names are imported lazily, so importing :mod:`stylekit.features.layers` (plain Python) does not load torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .layers import LAYER_NAMES, min_input_size
    from .vgg import MonoAdapter, VGG19Features
    from .weights import PREPROCESSING, load_conv_weights

_LAZY = {"VGG19Features": ".vgg", "MonoAdapter": ".vgg", "LAYER_NAMES": ".layers", "min_input_size": ".layers",
         "load_conv_weights": ".weights", "PREPROCESSING": ".weights"}
__all__ = ["VGG19Features", "MonoAdapter", "LAYER_NAMES", "min_input_size", "load_conv_weights", "PREPROCESSING"]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, ())
