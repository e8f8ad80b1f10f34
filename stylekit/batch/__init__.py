"""Batch stylization: many inputs, one config, on this machine or a Ray cluster (``stylekit batch``).

>>> from stylekit.batch import collect_items, run_batch
>>> from stylekit.pipelines import ImageStyleConfig
>>> items = collect_items(["photos/"], "out/", styles=["starry.jpg"], config=ImageStyleConfig(size=256))
>>> rows = run_batch(items, workers=2, results="out/results.jsonl")

See :mod:`stylekit.batch.manifest` for the inputs and :mod:`stylekit.batch.engines` for how the work is shared.
"""
from __future__ import annotations

from .engines import ENGINES, run_batch
from .manifest import RESULT_FIELDS, BatchItem, collect_items, read_results, write_results

__all__ = ["BatchItem", "collect_items", "run_batch", "read_results", "write_results", "RESULT_FIELDS", "ENGINES"]
