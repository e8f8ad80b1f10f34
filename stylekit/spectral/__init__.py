"""Spectral autoencoders for musical notes (Roche, Hueber, Limier, Girin, SMC 2019).

PCA, shallow AE, deep AE, LSTM-AE and VAE compress normalised magnitude-STFT frames of single notes into a
small latent vector; notes come from NSynth or from :mod:`stylekit.spectral.synth` (FluidSynth renderings in
NSynth's layout). The names below are imported lazily: importing this package does no work, and
:mod:`stylekit.spectral.config` (plain Python) loads neither numpy nor torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .config import MODEL_NAMES, NoteFilter, SpectralSTFTConfig
    from .features import to_audio, to_features
    from .models import MODELS, build_model, load_model, save_model
    from .perceptual import pemo_score

_LAZY = {"SpectralSTFTConfig": ".config", "MODEL_NAMES": ".config", "to_features": ".features",
         "to_audio": ".features", "MODELS": ".models", "build_model": ".models", "save_model": ".models",
         "load_model": ".models", "NoteFilter": ".config", "pemo_score": ".perceptual"}
__all__ = ["SpectralSTFTConfig", "to_features", "to_audio", "MODELS", "MODEL_NAMES", "build_model", "save_model",
           "load_model", "NoteFilter", "pemo_score"]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, ())
