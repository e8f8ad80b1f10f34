"""Batch stylization: many images or sounds, one config per medium, on this machine or a Ray cluster
(``stylekit batch``).

>>> from stylekit.batch import collect_items, run_batch
>>> from stylekit.image import ImageStyleConfig
>>> items = collect_items(["photos/"], "out/", styles=["starry.jpg"], config=ImageStyleConfig(size=256))
>>> rows = run_batch(items, workers=2, results="out/results.jsonl")

Sounds take an :class:`~stylekit.audio.config.AudioStyleConfig` (with its ``style_blend``), and their output
options an :class:`~stylekit.audio.job.AudioOutput`; ``config`` and ``options`` take one per medium:

>>> from stylekit.audio.config import AudioStyleConfig
>>> items = collect_items(["clips/"], "out/", styles=["rain.wav"], config=AudioStyleConfig(steps=30))

Every item is made by its medium's :class:`~stylekit._job.Job`; :data:`MEDIA` is the one place that knows the
media. See :mod:`stylekit.batch.manifest` for the inputs and :mod:`stylekit.batch.engines` for how the work is
shared and how an interrupted batch saves and resumes the inputs in progress (:class:`BatchInterrupted`).
"""
from __future__ import annotations

from .engines import ENGINES, BatchInterrupted, run_batch
from .manifest import RESULT_FIELDS, BatchItem, collect_items, read_results, write_results
from .media import MEDIA, Medium, media_of

__all__ = ["BatchItem", "collect_items", "media_of", "MEDIA", "Medium", "run_batch", "read_results",
           "write_results", "RESULT_FIELDS", "ENGINES", "BatchInterrupted"]
