"""Batch stylization: many images or sounds, one config per medium, on this machine or a Ray cluster
(``stylekit batch``).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from stylekit.batch import collect_items, run_batch
>>> from stylekit.image import ImageStyleConfig, save_image
>>> folder = Path(tempfile.mkdtemp())
>>> for name in ("a.png", "b.png", "painting.png"):
...     _ = save_image(torch.rand(1, 3, 24, 32), folder / name)
>>> config = ImageStyleConfig(size=32, scales=1, iterations=2)
>>> items = collect_items([folder / "a.png", folder / "b.png"], folder / "out", styles=[folder / "painting.png"],
...                       config=config)
>>> rows = run_batch(items, workers=0, results=folder / "out" / "results.jsonl")   # workers=0: this process
>>> sorted(row["status"] for row in rows)
['done', 'done']

Sounds take an :class:`~stylekit.audio.config.AudioStyleConfig` (with its ``style_blend``), and their output
options an :class:`~stylekit.audio.job.AudioOutput`; ``config`` and ``options`` take one per medium, for
example ``collect_items(["clips/"], "out/", styles=["rain.wav"], config=AudioStyleConfig(steps=30))``.

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
