"""Spectral autoencoders for musical notes (Roche, Hueber, Limier, Girin, SMC 2019).

PCA, shallow AE, deep AE, LSTM-AE and VAE compress normalised magnitude-STFT frames of single notes into a
small latent vector; notes come from NSynth or from :mod:`stylekit.spectral.synth` (FluidSynth renderings in
NSynth's layout). Submodules are imported lazily by their users; importing this package does no work.
"""
from __future__ import annotations

from .features import SpectralSTFTConfig, to_audio, to_features
from .models import MODELS, build_model, load_model, save_model

__all__ = ["SpectralSTFTConfig", "to_features", "to_audio", "MODELS", "build_model", "save_model",
           "load_model"]
