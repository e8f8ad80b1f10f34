"""VGG19 features: the extractor and its weights registry."""
from .vgg import LAYER_NAMES, MonoAdapter, VGG19Features, min_input_size
from .weights import PREPROCESSING, load_conv_weights

__all__ = ["VGG19Features", "MonoAdapter", "LAYER_NAMES", "min_input_size", "load_conv_weights", "PREPROCESSING"]
