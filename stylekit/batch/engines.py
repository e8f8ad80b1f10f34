"""Running a batch: plan it, then hand the work to an engine.

Every item is made by its medium's :class:`~stylekit._job.Job` (chosen once, from the item's medium, through
:data:`~stylekit.batch.MEDIA`); the engines only call the Job's methods, whatever the medium.

Planning (the same for every engine)
    1. Settings left to the device (an image's ``size=None``) are fixed once for the whole batch (512 px when
       the job runs on GPUs, else 384), so every output of a batch has the same size whichever worker made it.
    2. An output that exists is *skipped* when :meth:`Job.status` says ``"done"`` (the settings digest
       embedded in it is the item's); with other settings it is an error, unless ``overwrite``. Outputs are
       written atomically, so an existing file is a finished one, or the best result so far of an interrupted
       item (``"partial"``), which :meth:`Job.continue_partial` continues: from its checkpoint when there is
       one for the same input files, else from the start. A checkpoint that cannot be used (tampered,
       foreign) is an error row naming it; :meth:`Job.check` refuses outputs that cannot be written.
    3. The jobs are grouped by medium, style files and config, and each group's style side is computed
       **once** with :meth:`Job.style_targets` (for an image, the style images and their features at every
       scale; for a sound, its prepared style clips and their targets). Every job of the group runs against
       those targets, so no worker recomputes them. A style file that cannot be read, or settings that cannot
       run (a size too small for the layers), turn the group's items into errors without stopping the others.

Engines
    ``"local"``
        ``workers`` processes on this machine (``spawn``), one per GPU by default, else one; ``workers=0``
        runs the items in the calling process. Each worker receives a group's targets once, before its first
        item of that group. A worker that dies (killed, out of memory) is replaced and its item is retried up
        to ``max_retries`` times (:mod:`stylekit.batch._local`).
    ``"ray"``
        One Ray task per input, asking for one GPU when the cluster has GPUs and the job runs on one (and
        ``threads`` CPUs). The targets of a group are computed by one Ray task and shared with every item's
        task through the object store. Input and style files are read by the driver and shipped as bytes,
        and each task returns the encoded output, which the driver writes: the cluster's nodes need stylekit
        installed, not a shared file system. Ray retries a task whose worker died (``max_retries``)
        (:mod:`stylekit.batch._ray`).

Workers and Ray tasks use the CPU convolution backend (:mod:`stylekit.features.cpu_backend`) when the calling
process does.

Isolation: whatever goes wrong with one input (unreadable file, a failing optimisation, a dead worker after
its retries) is recorded in its result row, and the batch goes on.

Interruption (Ctrl-C, or SIGTERM, which the command maps to Ctrl-C)
    Every item in flight stops at its next optimisation step and saves what it has, as ``stylekit image``
    and ``stylekit audio`` do (:meth:`Job.save_interrupted`): the best result so far goes to its output
    (atomically, its metadata marked with ``interrupted_at`` and a digest of the input files) and the state
    to the checkpoint ``OUTPUT_STEM.ckpt.pt`` beside it; its row says ``"interrupted"``. Local workers get
    the interrupt from the driver (as SIGTERM; a terminal's Ctrl-C reaches them directly too) and have a
    limited time to report; a worker interrupted on its own stops the batch the same way. Ray tasks are
    cancelled with ``ray.cancel(force=False)``, which raises KeyboardInterrupt inside them, and hand their
    result so far to the driver, which saves it. Then :class:`BatchInterrupted` is raised. A second
    interrupt stops the waiting at once. The next run with the same settings continues each interrupted item
    from its checkpoint to the result of an uninterrupted run, and removes the checkpoint.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .._job import jsonable
from ..errors import ConfigError, InputError, StylekitError
from ._work import Results, make_targets, naming, one_line, target_key
from .manifest import BatchItem, check_results_path
from .media import pin_to_device

__all__ = ["run_batch", "ENGINES", "BatchInterrupted"]

ENGINES = ("local", "ray")


class BatchInterrupted(KeyboardInterrupt):
    """Raised by :func:`run_batch` on Ctrl-C (or SIGTERM in the command) once the items in flight saved their
    best result so far and a checkpoint. ``rows`` are the result rows: ``"interrupted"`` for those items,
    ``"pending"`` for the ones not started (or that could not save in time).

    Examples
    --------
    >>> e = BatchInterrupted([{"input": "a.png", "status": "interrupted"}])
    >>> isinstance(e, KeyboardInterrupt), e.rows[0]["status"]
    (True, 'interrupted')
    """

    def __init__(self, rows: list[dict]) -> None:
        super().__init__("interrupted")
        self.rows = rows


# --- planning --------------------------------------------------------------------------------------------

def _resume_state(job) -> dict:
    """Load the checkpoint ``job`` continues from (:meth:`Job.load_resume`), here, where the files its
    digests are checked against are.

    Raises InputError for a checkpoint that cannot be used: not loadable with ``weights_only=True``
    (tampered, foreign), another format, or made from other files than the output beside it.
    """
    try:
        return job.load_resume()
    except InputError as e:
        raise InputError(f"{e}; delete it (or use --overwrite) to start this input again") from None


def _settings(job) -> dict:
    """The settings of an item's result row: its config, and its output's own settings."""
    return {**jsonable(job.config.to_dict()), **job.output_settings()}


def _plan_one(it: BatchItem, job, res: Results, overwrite: bool) -> bool:
    """Whether ``job`` must run: False for a finished output (skipped) or one that must not be replaced."""
    if not overwrite:
        status, why = job.status()
        if status == "done":
            seconds = type(job).read_metadata(job.output).get("seconds")
            res.set(it.index, status="skipped", error=None, seconds=seconds)
            return False
        if status == "conflict":
            res.set(it.index, status="error", error=why)
            return False
        if status == "partial":
            job.continue_partial()
    try:
        it.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        res.set(it.index, status="error", error=f"{it.output.parent}: cannot create folder ({e.strerror})")
        return False
    try:
        if job.resume is not None:
            _resume_state(job)
        job.check()
    except StylekitError as e:
        res.set(it.index, status="error", error=naming(job, one_line(e)))
        return False
    return True


def _plan(items: list[BatchItem], jobs: dict, res: Results, overwrite: bool) -> list[int]:
    """The indices of the items to run: finished outputs are skipped (or are errors when made with other
    settings), an interrupted output is continued from its checkpoint, or made again when it cannot be."""
    todo = []
    for it in items:
        if it.error is not None:
            res.set(it.index, status="error", error=it.error)
        elif _plan_one(it, jobs[it.index], res, overwrite):
            todo.append(it.index)
    return todo


def _targets_here(todo: list[int], jobs: dict, res: Results) -> tuple[list[int], dict, dict]:
    """Compute each group's targets in this process (local engine): ``(runnable, {tid: targets},
    {index: tid})``; the items of a group whose targets fail are error rows."""
    tids: dict = {}
    targets: dict = {}
    errors: dict = {}
    target_of: dict = {}
    runnable = []
    for index in todo:
        job = jobs[index]
        key = target_key(job)
        if key not in tids and key not in errors:
            try:
                targets[len(tids)] = make_targets(job)
                tids[key] = len(tids)
            except Exception as e:  # noqa: BLE001 - reported on every item of the group
                errors[key] = one_line(e)
        if key in errors:
            res.set(index, status="error", error=naming(job, errors[key]))
        else:
            target_of[index] = tids[key]
            runnable.append(index)
    return runnable, targets, target_of


# --- the entry point -------------------------------------------------------------------------------------

def _check_arguments(engine: str, workers, threads, max_retries, address) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
    if threads is not None:
        from .._validate import check_threads
        check_threads(threads)      # an absurd count crashes torch in every worker
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max-retries must be an integer >= 0, got {max_retries!r}")
    if engine == "local" and address is not None:
        raise ConfigError("--address is for the ray engine (add --engine ray)")


def _engine(items: list[BatchItem], engine: str, address: str | None):
    """``(ray module or None, whether this call started Ray, GPUs the batch uses)``."""
    wants_gpu = any(getattr(it.config, "device", "cpu") != "cpu" for it in items if it.config is not None)
    if engine == "ray":
        from ._ray import import_ray, ray_gpus, start_ray
        ray = import_ray()
        started = start_ray(ray, address)
        return ray, started, ray_gpus(ray, wants_gpu)
    import torch
    return None, False, torch.cuda.device_count() if wants_gpu and torch.cuda.is_available() else 0


def _run(todo: list[int], jobs: dict, res: Results, *, ray, gpus: int, workers: int | None,
         threads: int | None, max_retries: int, on_start) -> None:
    from ..features import cpu_backend
    fast = cpu_backend.enabled()
    if ray is not None:
        from ._ray import run_ray
        run_ray(ray, todo, jobs, res, gpus=gpus, threads=threads or 1, fast=fast, max_retries=max_retries)
        return
    from ._local import run_local
    n = workers if workers is not None else max(1, gpus)
    runnable, targets, target_of = _targets_here(todo, jobs, res)
    run_local(runnable, jobs, targets, target_of, res, workers=n, gpus=gpus,
              threads=threads or max(1, (os.cpu_count() or 1) // max(1, n)), fast=fast,
              max_retries=max_retries, on_start=on_start)


def run_batch(items: Sequence[BatchItem], *, engine: str = "local", workers: int | None = None,
              threads: int | None = None, address: str | None = None, overwrite: bool = False,
              max_retries: int = 2, results: str | os.PathLike | None = None,
              on_result: Callable[[dict], None] | None = None,
              on_start: Callable[[int, int], None] | None = None, full_paths: bool = False) -> list[dict]:
    """Stylize every item (see :func:`~stylekit.batch.collect_items`) and return one result row per item.

    Parameters
    ----------
    items : the work, from :func:`~stylekit.batch.collect_items`.
    engine : ``"local"`` (worker processes on this machine) or ``"ray"``.
    workers : local engine: number of worker processes; default one per GPU, else 1; 0 runs in this process.
    threads : CPU threads per worker or Ray task (default: the CPU cores divided among the workers; 1 on Ray).
        A sound's run uses its ``AudioStyleConfig.threads`` (the command sets it from ``--threads``).
    address : Ray cluster address (``"auto"``, ``"HEAD_IP:6379"``, ``"ray://head:10001"``); default: the
        running Ray session of this process, else ``RAY_ADDRESS``, else a new local instance. A session the
        call starts is shut down at the end.
    overwrite : recompute and replace outputs that exist (default: skip the finished ones, continue the
        interrupted ones).
    max_retries : how many times an item whose worker died is tried again.
    results : path of the results manifest (``.jsonl`` or ``.csv``), rewritten every few seconds and at
        the end (also on Ctrl-C); ``None`` writes none.
    on_result : called in this process with each row when its item is finished (done, skipped or error).
    on_start : local engine: called with ``(index, worker pid)`` when a worker starts an item.
    full_paths : outputs record their inputs' absolute paths instead of their file names.

    Returns
    -------
    One dict per item, in item order, with the keys of :data:`~stylekit.batch.RESULT_FIELDS`: ``status`` is
    ``"done"``, ``"skipped"`` (the output already held this result) or ``"error"`` (``error`` says why);
    ``seconds`` is the compute time of the output (of all its runs, for one continued after an interrupt);
    ``settings`` the item's config (its ``to_dict()``) and its output's own settings.

    Raises
    ------
    ConfigError
        for an unknown engine, bad worker or thread counts, a results path that is not a results manifest, or
        Ray missing. Problems with single items never raise: they are in the rows.
    BatchInterrupted
        on Ctrl-C (KeyboardInterrupt), after the items in flight saved their best result so far and a
        checkpoint (see the module notes); its ``rows`` say ``"interrupted"`` for those items and
        ``"pending"`` for the items not started. Calling again with the same items continues them.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.batch import collect_items
    >>> from stylekit.image import ImageStyleConfig, save_image
    >>> folder = Path(tempfile.mkdtemp())
    >>> photo, painting = (save_image(torch.rand(1, 3, 24, 32), folder / n) for n in ("photo.png", "painting.png"))
    >>> items = collect_items([photo], folder / "out", styles=[painting],
    ...                       config=ImageStyleConfig(size=32, scales=1, iterations=1))
    >>> [row["status"] for row in run_batch(items, workers=0)]            # workers=0: in this process
    ['done']
    >>> [row["status"] for row in run_batch(items, workers=0)]            # done already: skipped
    ['skipped']
    """
    _check_arguments(engine, workers, threads, max_retries, address)
    items = list(items)
    results_path = None
    if results is not None:
        results_path = check_results_path(results, overwrite=overwrite)
        _not_a_file_of(results_path, items)
    ray, started, gpus = _engine(items, engine, address)
    try:
        items = [_pinned(it, gpus) for it in items]
        # one Job per item, its class chosen once from the item's medium
        jobs = {it.index: it.job(overwrite=overwrite, full_paths=full_paths) for it in items if it.error is None}
        res = Results(items, {i: _settings(j) for i, j in jobs.items()}, results_path, on_result)
        try:
            todo = _plan(items, jobs, res, overwrite)
            _run(todo, jobs, res, ray=ray, gpus=gpus, workers=workers, threads=threads, max_retries=max_retries,
                 on_start=on_start)
        except KeyboardInterrupt:
            raise BatchInterrupted(res.rows) from None
        finally:
            res.flush()
        return res.rows
    finally:
        if started:
            ray.shutdown()


def _not_a_file_of(results: Path, items: list[BatchItem]) -> None:
    """The results manifest replaces no input, style, output or checkpoint of the batch (by any name)."""
    from .._checkpoint import checkpoint_path
    from .manifest import _file_ids
    files = _file_ids(p for it in items for p in (it.input, *it.styles, it.output, checkpoint_path(it.output)))
    hit = next((files[k] for k in _file_ids([results]) if k in files), None)
    if hit is not None:
        raise ConfigError(f"{results}: the results manifest would replace {hit}, a file of this batch; "
                          "choose another --results path")


def _pinned(it: BatchItem, gpus: int) -> BatchItem:
    import dataclasses
    return it if it.config is None else dataclasses.replace(it, config=pin_to_device(it.config, gpus))
