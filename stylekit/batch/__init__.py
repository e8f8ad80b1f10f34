"""Batch stylization: many images or sounds, one config, on this machine or a Ray cluster (``stylekit batch``).

>>> from stylekit.batch import collect_items, run_batch
>>> from stylekit.pipelines import ImageStyleConfig
>>> items = collect_items(["photos/"], "out/", styles=["starry.jpg"], config=ImageStyleConfig(size=256))
>>> rows = run_batch(items, workers=2, results="out/results.jsonl")

Sounds take an :class:`AudioItemConfig` (an :class:`~stylekit.audio.pipeline.AudioStyleConfig` plus the style
blend and the WAV sample format):

>>> from stylekit.audio.pipeline import AudioStyleConfig
>>> items = collect_items(["clips/"], "out/", styles=["rain.wav"], audio_config=AudioStyleConfig(steps=30))

See :mod:`stylekit.batch.manifest` for the inputs and :mod:`stylekit.batch.engines` for how the work is shared
and how an interrupted batch saves and resumes the inputs in progress (:class:`BatchInterrupted`).
"""
from __future__ import annotations

from .engines import ENGINES, BatchInterrupted, run_batch
from .manifest import RESULT_FIELDS, AudioItemConfig, BatchItem, collect_items, media_of, read_results, write_results

__all__ = ["BatchItem", "AudioItemConfig", "collect_items", "media_of", "run_batch", "read_results", "write_results",
           "RESULT_FIELDS", "ENGINES", "BatchInterrupted"]
