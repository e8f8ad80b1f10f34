"""Running a batch: plan it, then hand the work to an engine.

Planning (the same for every engine)
    1. ``size=None`` becomes a number (512 when the job runs on GPUs, else 384), so every output of a batch
       has the same size whichever worker made it.
    2. An output that exists is *skipped* when the settings embedded in it (see
       :func:`stylekit.image.read_metadata`) equal the item's; with other settings it is an error, unless
       ``overwrite``. Outputs are written atomically, so an existing file is a finished one, or the best
       result so far of an interrupted item, which its metadata marks (``interrupted_at``) and which is run
       again: resumed from its checkpoint when there is one for the same input files, else from the start.
    3. The items are grouped by style set (the style files plus the network weights). For each group the
       style targets are computed **once**: the style images are read, and :func:`stylize_image` runs for a
       single evaluation per scale on a blank content, which fills a ``style_cache`` dict with each scale's
       style features (the same public cache a library user passes to share targets between calls). Every
       item of the group then gets that filled cache, so no worker recomputes the style features. A style
       image that cannot be read, or settings that cannot run (a size too small for the layers), turn the
       group's items into errors without stopping the others.

       Sounds are grouped by style files, working rate and loudness: the group's style files are read and
       prepared once (:func:`stylekit.audio.io.load_audio`, as :func:`stylekit.stylize_audio` prepares them)
       and every sound of the group is stylized against those clips, which gives the samples of a single run.
       Their style features are computed inside each :func:`~stylekit.stylize_audio` call: the audio API
       takes no precomputed style targets.

Engines
    ``"local"``
        ``workers`` processes on this machine (``spawn``), one per GPU by default, else one; ``workers=0``
        runs the items in the calling process. Each worker receives a group's style targets once, through
        shared memory, before its first item of that group. A worker that dies (killed, out of memory)
        is replaced and its item is retried up to ``max_retries`` times.
    ``"ray"``
        One Ray task per input, asking for one GPU when the cluster has GPUs (and ``threads`` CPUs). The style
        targets of a group are computed by one Ray task and shared with every item's task through the object
        store. Input and style files are read by the driver and shipped as bytes, and each task returns the
        encoded output, which the driver writes: the cluster's nodes need stylekit installed, not a shared
        file system. Ray retries a task whose worker died (``max_retries``).

Isolation: whatever goes wrong with one input (unreadable file, a failing optimisation, a dead worker after
its retries) is recorded in its result row, and the batch goes on.

Interruption (Ctrl-C, or SIGTERM, which the command maps to Ctrl-C)
    Every item in flight stops at its next optimisation step and saves what it has, as ``stylekit image``
    and ``stylekit audio`` do: the best result so far goes to its output (atomically, its metadata marked
    with ``interrupted_at`` and a digest of the input files) and the optimiser state to the checkpoint
    ``OUTPUT_STEM.ckpt.pt`` beside it (the format of those commands, read back with
    ``torch.load(weights_only=True)``); its row says ``"interrupted"``. Local workers get the interrupt
    from the driver (as SIGTERM; a terminal's Ctrl-C reaches them directly too) and have ``_SAVE_SECONDS``
    to report; a worker interrupted on its own stops the batch the same way. Ray tasks are cancelled with ``ray.cancel(force=False)``, which raises KeyboardInterrupt inside
    them, and hand their result so far to the driver, which writes it. Then :class:`BatchInterrupted` is
    raised. A second interrupt stops the waiting at once. The next run with the same settings continues
    each interrupted item from its checkpoint to the result of an uninterrupted run, and removes the
    checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError, InputError, StylekitError
from .._checkpoint import checkpoint_path, input_digests
from .manifest import AudioItemConfig, BatchItem, check_results_path, write_results

__all__ = ["run_batch", "ENGINES", "BatchInterrupted"]

ENGINES = ("local", "ray")
_FLUSH_SECONDS = 10.0
#: How long the items in flight get to save their result so far after an interrupt.
_SAVE_SECONDS = 30.0
#: The statuses of a finished item (the others: "pending", "interrupted").
_FINISHED = ("done", "skipped", "error")


class BatchInterrupted(KeyboardInterrupt):
    """Raised by :func:`run_batch` on Ctrl-C (or SIGTERM in the command) once the items in flight saved their
    best result so far and a checkpoint. ``rows`` are the result rows: ``"interrupted"`` for those items,
    ``"pending"`` for the ones not started (or that could not save in time)."""

    def __init__(self, rows: list[dict]) -> None:
        super().__init__("interrupted")
        self.rows = rows


# --- planning --------------------------------------------------------------------------------------------

def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, StylekitError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _jsonable(d):
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def _metadata(item_input: str, styles: Sequence[str], cfg, seconds: float, device: str) -> dict:
    from .. import __version__
    return {"stylekit": __version__, "content": item_input, "styles": [os.path.abspath(s) for s in styles],
            "config": cfg.to_dict(), "device": device, "seconds": seconds, "batch": True}


# A sound's settings go into its WAV file's comment (a RIFF INFO string), where libsndfile keeps about 2,000
# characters: the full settings when they fit, and always a digest of them, which decides "same settings".
_WAV_COMMENT_MAX = 1900


def _audio_digest(job: AudioItemConfig, styles: Sequence[str]) -> str:
    import hashlib
    text = json.dumps({"config": _jsonable(job.to_dict()), "styles": [os.path.abspath(s) for s in styles]},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _audio_metadata(item_input: str, styles: Sequence[str], job: AudioItemConfig, seconds: float,
                    extra: dict | None = None) -> str:
    from .. import __version__
    meta = {"stylekit": __version__, "settings_sha256": _audio_digest(job, styles), "seconds": seconds,
            "batch": True, **(extra or {})}
    full = {**meta, "content": item_input, "styles": [os.path.abspath(s) for s in styles],
            "config": _jsonable(job.to_dict())}
    text = json.dumps(full, sort_keys=True)
    return text if len(text) <= _WAV_COMMENT_MAX else json.dumps(meta, sort_keys=True)


def _read_wav_metadata(path) -> dict:
    import soundfile as sf
    with sf.SoundFile(str(path)) as f:
        text = f.comment
    return json.loads(text) if text else {}


def _write_wav(path, samples, rate: int, job: AudioItemConfig, comment: str, *, overwrite: bool) -> None:
    """Write a sound atomically, as ``stylekit audio`` does (16-bit PCM or float WAV), with its settings."""
    import numpy as np
    import soundfile as sf

    from .._io import atomic_write

    y = np.asarray(samples, dtype=np.float32)

    def write(tmp: Path) -> None:
        with sf.SoundFile(str(tmp), "w", int(rate), 1, "FLOAT" if job.float_output else "PCM_16",
                          format="WAV") as f:
            f.comment = comment
            f.write(y)

    atomic_write(path, write, overwrite=overwrite)


def _inputs_digest(content, styles: Sequence) -> str:
    """One sha256 over the bytes of the content and style files: an interrupted output records it, so that
    a rerun resumes it only while its input files are the same."""
    import hashlib

    return hashlib.sha256(" ".join(input_digests((content, *styles))).encode()).hexdigest()


def _existing_output(item: BatchItem) -> tuple[str, str | None, dict]:
    """What an existing ``item.output`` is: ``("skipped", None, metadata)`` when it holds this item's result,
    ``("partial", None, metadata)`` when it holds an interrupted run of this item (same settings), else
    ``("error", why, {})``."""
    from ..image import read_metadata
    try:
        meta = _read_wav_metadata(item.output) if item.kind == "audio" else read_metadata(item.output)
    except Exception:  # noqa: BLE001 - anything unreadable is "not ours"
        meta = {}
    if not isinstance(meta, dict) or not (meta.get("config") or meta.get("settings_sha256")):
        return "error", f"{item.output}: already exists and was not written by stylekit (use --overwrite)", {}
    if item.kind == "audio":
        same = meta.get("settings_sha256") == _audio_digest(item.config, [str(s) for s in item.styles])
    else:
        same = (meta.get("config") == _jsonable(item.config.to_dict())
                and meta.get("styles") == [os.path.abspath(s) for s in item.styles])
    if not same:
        return ("error", f"{item.output}: already exists with other settings or styles "
                         "(use --overwrite or another output folder)", {})
    return ("partial" if meta.get("interrupted_at") is not None else "skipped"), None, meta


def _resumable(item: BatchItem, meta: dict) -> bool:
    """Whether the interrupted output of ``item`` (its metadata ``meta``) can continue from its checkpoint:
    the checkpoint exists and the input files are those the output was made from."""
    if not checkpoint_path(item.output).is_file():
        return False
    try:
        return meta.get("inputs_sha256") == _inputs_digest(item.input, item.styles)
    except OSError:  # an input gone: the run reports it
        return False


def _group_key(item: BatchItem) -> tuple:
    c = item.config
    if item.kind == "audio":  # the style clips depend on the working rate and loudness only
        return (tuple(os.path.abspath(s) for s in item.styles), "audio", c.config.spectrogram.sample_rate,
                c.config.target_rms)
    return (tuple(os.path.abspath(s) for s in item.styles), str(c.weights), c.preprocessing)


def _warm_key(cfg) -> str:
    """Settings that decide which style features a run needs (the rest do not change them)."""
    if isinstance(cfg, AudioItemConfig):
        return "audio"
    keep = ("size", "scales", "min_size", "style_scale", "content_layers", "style_layers", "pooling", "weights",
            "preprocessing", "device", "preserve_color")
    d = cfg.to_dict()
    return json.dumps({k: d[k] for k in keep}, sort_keys=True)


def _style_targets(style_imgs, cfgs: dict, names: Sequence[str] | None = None) -> tuple[dict, dict]:
    """Fill one ``style_cache`` for ``style_imgs`` under every config of ``cfgs`` (``{warm key: config}``).

    Returns ``(cache, errors)`` where ``errors`` maps a warm key to the one-line reason it cannot run.
    """
    import torch

    from ..pipelines import stylize_image

    cache: dict = {}
    errors: dict = {}
    for key, cfg in cfgs.items():
        if isinstance(cfg, AudioItemConfig) or cfg.preserve_color != "none":
            continue  # the style then depends on the content: nothing to share (the pipeline ignores the cache)
        warm = dataclasses.replace(cfg, iterations=1, coarse_iterations=1, init="content", style_blend=None)
        blank = torch.full((1, 3, warm.size, warm.size), 0.5)
        try:
            stylize_image(blank, list(style_imgs), config=warm, style_cache=cache,
                          style_names=list(names) if names is not None else None)
        except Exception as e:  # noqa: BLE001 - reported on every item that uses these settings
            errors[key] = _one_line(e)
    return cache, errors


class _Results:
    """The rows of a batch, the user's callback, and the results manifest flushed every few seconds."""

    def __init__(self, items: Sequence[BatchItem], path: Path | None,
                 on_result: Callable[[dict], None] | None) -> None:
        self.rows = [{"index": it.index, "input": str(it.input), "styles": [str(s) for s in it.styles],
                      "output": str(it.output), "status": "pending", "error": None, "seconds": None,
                      "attempts": 0, "settings": it.config.to_dict() if it.config is not None else None}
                     for it in items]
        self.path, self.on_result, self.last = path, on_result, time.monotonic()

    def set(self, index: int, **fields) -> None:
        self.rows[index].update(fields)
        if fields.get("status") in _FINISHED:
            if self.on_result is not None:
                self.on_result(dict(self.rows[index]))
            if self.path is not None and time.monotonic() - self.last > _FLUSH_SECONDS:
                self.flush()

    def flush(self) -> None:
        if self.path is not None:
            write_results(self.rows, self.path)
            self.last = time.monotonic()


# --- the work on one item ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Job:
    """One item as a worker or a Ray task runs it (the paths are those of the driver's machine)."""

    input: str
    styles: tuple[str, ...]
    output: str
    config: object  # ImageStyleConfig or AudioItemConfig
    replace: bool = False  # the output may be replaced: --overwrite, or an interrupted output of this item
    resume: bool = False  # continue from the checkpoint beside the output
    seconds: float = 0.0  # time already spent on an interrupted output

    @property
    def audio(self) -> bool:
        return isinstance(self.config, AudioItemConfig)


def _load_style_clips(paths: Sequence, job: AudioItemConfig) -> list:
    """The style sounds of an audio group, read and prepared once (mono, working rate, loudness)."""
    from ..audio.io import load_audio
    return [load_audio(s, target_rate=job.config.spectrogram.sample_rate, target_rms=job.config.target_rms)
            for s in paths]


def _stylize_audio(inp: str, clips, job: AudioItemConfig, cache: dict | None = None, resume: dict | None = None):
    """(samples, rate) of one sound: :func:`stylekit.stylize_audio` with the group's prepared style clips,
    which gives the samples of a single run on the style files (same preparation, same seed). ``cache`` (the
    group's, in a local worker) keeps the style targets across the sounds that worker stylizes."""
    from ..audio.pipeline import stylize_audio
    result = stylize_audio(inp, list(clips), config=job.config, style_weights=job.style_blend, style_cache=cache,
                           resume=resume)
    return result.samples, result.sample_rate


def _run(job: _Job, source, style_imgs, cache, resume):
    """Stylize the file ``source`` (``job.input``, or a copy of it): a ``(1, 3, H, W)`` image or
    ``(samples, rate)``. Interrupts come out as OptimizationInterrupted / StylizeInterrupted."""
    if job.audio:
        return _stylize_audio(str(source), style_imgs, job.config, cache, resume)
    from ..image import load_image
    from ..pipelines import stylize_image
    return stylize_image(load_image(source), list(style_imgs), config=job.config, style_cache=cache,
                         resume=resume, style_names=list(job.styles))


def _write_output(job: _Job, result, seconds: float, extra: dict | None = None) -> None:
    """Write ``result`` (from :func:`_run`) to ``job.output`` atomically, with its settings embedded."""
    if job.audio:
        samples, rate = result
        _write_wav(job.output, samples, rate, job.config,
                   _audio_metadata(job.input, job.styles, job.config, seconds, extra), overwrite=job.replace)
        return
    from ..image import save_image
    from ..pipelines import resolve_device
    meta = _metadata(job.input, job.styles, job.config, seconds, str(resolve_device(job.config.device)))
    save_image(result, job.output, metadata={**meta, **(extra or {})}, overwrite=job.replace)


def _resume_state(job: _Job):
    """The optimiser state to continue ``job`` from (its checkpoint's), or None when the checkpoint was made
    with other settings (the item then starts again).

    Raises InputError for a checkpoint that cannot be used: not loadable with ``weights_only=True``
    (tampered, foreign), another format, or made from other files than the output beside it.
    """
    ckpt = checkpoint_path(job.output)
    try:
        if job.audio:
            from ..audio.checkpoint import load_checkpoint
            config, blend, progress = load_checkpoint(ckpt, inputs=(job.input, *job.styles))
            stored = AudioItemConfig(config, None if blend is None else tuple(blend), job.config.float_output)
            return progress if _jsonable(stored.to_dict()) == _jsonable(job.config.to_dict()) else None
        from ..image_checkpoint import load_checkpoint
        stored, state = load_checkpoint(ckpt, job.input, job.styles)
        return state if _jsonable(stored) == _jsonable(job.config.to_dict()) else None
    except InputError as e:
        raise InputError(f"{e}; delete it (or use --overwrite) to start this input again") from None


def _interrupted_at(job: _Job, state: dict) -> int:
    """Optimisation steps done when ``state`` was saved (all scales, or all chunks of a sound)."""
    if job.audio:
        inner = state.get("state") or {}
        return int(state["chunk"]) * job.config.config.steps + int(inner.get("step", 0))
    return int(state["scale"]) * job.config.coarse_iterations + int(state["step"])


def _partial(job: _Job, e: KeyboardInterrupt):
    """``(best result so far, resumable state)`` carried by an interrupt, or None when there is nothing to
    save (the interrupt came before the first step)."""
    if job.audio:
        from ..audio.pipeline import StylizeInterrupted
        if isinstance(e, StylizeInterrupted) and e.result is not None:
            return (e.result.samples, e.result.sample_rate), e.progress
        return None
    from ..optim import OptimizationInterrupted
    return (e.best, e.state) if isinstance(e, OptimizationInterrupted) else None


def _save_interrupted(job: _Job, best, state: dict, seconds: float) -> dict:
    """Write the best result so far of an interrupted job to its output (its metadata marked with
    ``interrupted_at`` and the input files' digest) and its checkpoint beside it; returns the row fields."""
    ckpt = checkpoint_path(job.output)
    try:
        # the checkpoint first: an interrupted output without its checkpoint is only ever started again
        if job.audio:
            from ..audio.checkpoint import save_checkpoint
            save_checkpoint(ckpt, config=job.config.config, inputs=(job.input, *job.styles),
                            style_blend=job.config.style_blend, progress=state, overwrite=True)
        else:
            from ..image_checkpoint import save_checkpoint
            save_checkpoint(ckpt, job.config, job.input, job.styles, state, overwrite=True)
        _write_output(job, best, seconds, {"interrupted_at": _interrupted_at(job, state),
                                           "inputs_sha256": _inputs_digest(job.input, job.styles)})
    except (StylekitError, OSError) as e:
        return {"status": "pending", "error": f"interrupted; the result so far was not saved ({_one_line(e)})",
                "seconds": seconds}
    return {"status": "interrupted", "error": None, "seconds": seconds}


def _finished(job: _Job) -> None:
    """After the output of a job was written: an interrupted run's checkpoint is no longer needed."""
    if job.replace:
        checkpoint_path(job.output).unlink(missing_ok=True)


def _process(job: _Job, style_imgs, cache) -> dict:
    """Stylize one input and write its output; on an interrupt, save the best result so far and a
    checkpoint. Returns the row fields; never raises for a problem with the input."""
    t0 = time.perf_counter()

    def took() -> float:
        return round(job.seconds + time.perf_counter() - t0, 3)

    try:
        result = _run(job, job.input, style_imgs, cache, _resume_state(job) if job.resume else None)
        seconds = took()
        _write_output(job, result, seconds)
        _finished(job)
        return {"status": "done", "error": None, "seconds": seconds}
    except KeyboardInterrupt as e:
        partial = _partial(job, e)
        if partial is None:
            return {"status": "pending", "error": None, "seconds": None}
        return _save_interrupted(job, *partial, took())
    except Exception as e:  # noqa: BLE001 - isolation: one bad input never stops the batch
        return {"status": "error", "error": _one_line(e), "seconds": took()}


#: What interrupts a worker: SIGTERM (from the driver, or sent to the whole process group by ``kill -TERM
#: -PGID`` or a service manager) and a terminal's Ctrl-C (SIGINT, unless this process ignores it, as a
#: background job of a script does).
_WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _Interrupt:
    """A worker's SIGINT and SIGTERM handler: raises KeyboardInterrupt once, while an item runs; remembers an
    interrupt that came between items, so the worker does not start another one."""

    def __init__(self) -> None:
        self.busy = self.stopped = False

    def __call__(self, signum, frame) -> None:
        self.stopped = True
        if self.busy:
            self.busy = False  # a second interrupt while the result is being saved is ignored
            raise KeyboardInterrupt


def _worker_main(conn, gpu: int | None, threads: int) -> None:
    """A local worker process: receives style groups and jobs over ``conn``, answers with results.

    It starts with SIGINT and SIGTERM blocked (see :meth:`_Worker.__init__`) and unblocks them once its
    handler is in place.
    """
    interrupt = _Interrupt()
    signal.signal(signal.SIGTERM, interrupt)  # how the driver passes an interrupt on
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # inherited: ignored when the driver ignores it
        signal.signal(signal.SIGINT, interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA is initialised in this process
    import torch
    torch.set_num_threads(threads)
    groups: dict = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "group":
            groups[msg[1]] = (msg[2], msg[3])
            continue
        _, index, job, gid = msg
        conn.send(("start", index, os.getpid()))
        row = {"status": "pending", "error": None, "seconds": None}
        try:
            interrupt.busy = True
            if not interrupt.stopped:
                style_imgs, cache = groups[gid]
                row = _process(job, style_imgs, cache)
        except KeyboardInterrupt:
            pass  # it came before the item started: the item stays pending
        finally:
            interrupt.busy = False
        conn.send(("done", index, row))


class _Worker:
    def __init__(self, ctx, slot: int, gpu: int | None, threads: int) -> None:
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, gpu, threads), daemon=True,
                                name=f"stylekit-batch-{slot}")
        # The child inherits the blocked signals, so an interrupt while it imports waits for its handler
        # (instead of a traceback, or its end); here it is only deferred to the end of start().
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self.conn, self.slot, self.gpu, self.threads = parent, slot, gpu, threads
        self.job: int | None = None
        self.groups: set = set()

    def end(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _death(proc) -> str:
    proc.join(1)
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _run_local(todo: list[BatchItem], jobs: dict, groups: dict, group_of: dict, res: _Results, *, workers: int,
               gpus: int, threads: int, max_retries: int, on_start: Callable[[int, int], None] | None) -> None:
    if workers == 0:
        for it in todo:
            style_imgs, cache = groups[group_of[it.index]]
            res.set(it.index, attempts=1)
            if on_start is not None:
                on_start(it.index, os.getpid())
            res.set(it.index, **_process(jobs[it.index], style_imgs, cache))
            if res.rows[it.index]["status"] in ("interrupted", "pending"):
                raise KeyboardInterrupt  # it came inside the item, which saved what it had
        return

    import multiprocessing
    import multiprocessing.connection
    ctx = multiprocessing.get_context("spawn")
    queue = deque(it.index for it in todo)
    attempts: dict[int, int] = {}
    pool = [_Worker(ctx, i, i % gpus if gpus else None, threads) for i in range(min(workers, len(todo)))]

    def replace(w: _Worker, why: str) -> _Worker:
        w.conn.close()
        w.proc.join(1)
        if w.job is not None:
            index, w.job = w.job, None
            if attempts[index] > max_retries:
                res.set(index, status="error", error=f"worker process died ({why}) on each of "
                                                     f"{attempts[index]} attempts")
            else:
                queue.appendleft(index)  # retried next, by the fresh worker or another one
        return _Worker(ctx, w.slot, w.gpu, w.threads)

    try:
        while queue or any(w.job is not None for w in pool):
            for k, w in enumerate(pool):
                if w.job is None and queue:
                    index = queue.popleft()
                    gid = group_of[index]
                    w.job = index
                    attempts[index] = attempts.get(index, 0) + 1
                    res.set(index, attempts=attempts[index])
                    try:
                        if gid not in w.groups:
                            w.conn.send(("group", gid, *groups[gid]))
                            w.groups.add(gid)
                        w.conn.send(("run", index, jobs[index], gid))
                    except OSError:
                        attempts[index] -= 1  # it never reached the worker
                        pool[k] = replace(w, _death(w.proc))
            busy = [w for w in pool if w.job is not None]
            multiprocessing.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=5)
            for k, w in enumerate(pool):
                if w.job is None:
                    continue
                if not _receive(w, res, on_start, stop=True):
                    pool[k] = replace(w, _death(w.proc))
    except KeyboardInterrupt:
        _save_in_flight(pool, res)
        raise
    finally:
        for w in pool:
            if w.job is not None:  # still busy after an interrupt: end at once, the item stays "pending"
                w.proc.kill()
            w.end()


def _receive(w: _Worker, res: _Results, on_start, *, stop: bool = False) -> bool:
    """Read what worker ``w`` has sent; False when it died (with an item, or its pipe broken).

    With ``stop``, an item that the worker reports interrupted (a signal that reached the worker alone)
    raises KeyboardInterrupt: the batch stops as if this process had been interrupted.
    """
    try:
        while w.conn.poll():
            kind, index, payload = w.conn.recv()
            if kind == "start":
                if on_start is not None:
                    on_start(index, payload)
                continue
            w.job = None
            res.set(index, **payload)
            if stop and payload["status"] not in _FINISHED:
                raise KeyboardInterrupt
    except (EOFError, OSError):
        return False
    return w.proc.is_alive() or w.job is None


def _save_in_flight(pool: list[_Worker], res: _Results) -> None:
    """After an interrupt: pass it on to the busy workers (as SIGTERM: a SIGTERM to this process reaches only
    this process, and a background job ignores SIGINT) and wait, at most ``_SAVE_SECONDS``, for each to save
    its item's result so far and report. A second interrupt ends the wait."""
    import multiprocessing.connection

    busy = [w for w in pool if w.job is not None]
    for w in busy:
        try:
            os.kill(w.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + _SAVE_SECONDS
    try:
        while busy and time.monotonic() < deadline:
            multiprocessing.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                            timeout=max(0.0, deadline - time.monotonic()))
            busy = [w for w in busy if _receive(w, res, None) and w.job is not None]
    except KeyboardInterrupt:
        pass


# --- the Ray engine --------------------------------------------------------------------------------------

def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'stylekit[ray]' (or pip install ray)") from None
    return ray


def _load_blob(name: str, data: bytes, load=None):
    """Decode file bytes read on the driver with ``load(path)`` (default: an image); errors name the
    original file."""
    if load is None:
        from ..image import load_image as load
    with tempfile.TemporaryDirectory(prefix="stylekit-") as d:
        p = Path(d) / (Path(name).name or "input")
        p.write_bytes(data)
        try:
            return load(p)
        except StylekitError as e:
            raise type(e)(str(e).replace(str(p), name)) from None


def _ray_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _ray_targets(style_blobs: list, cfgs: dict, threads: int):
    """Ray task: the style images and their filled style cache for one group (see the module notes)."""
    _ray_threads(threads)
    job = next(iter(cfgs.values()))
    try:
        if isinstance(job, AudioItemConfig):  # sounds: the prepared style clips are what is shared
            clips = [dataclasses.replace(_load_blob(name, data, lambda p: _load_style_clips([p], job)[0]),
                                         source=name) for name, data in style_blobs]
            return {}, (clips, None)
        style_imgs = [_load_blob(name, data) for name, data in style_blobs]
    except Exception as e:  # noqa: BLE001
        return {k: _one_line(e) for k in cfgs}, None
    cache, errors = _style_targets(style_imgs, cfgs, [name for name, _ in style_blobs])
    return errors, (style_imgs, cache)


def _ray_stylize(inp: str, data: bytes, styles: list, out: str, cfg, group, threads: int, *,
                 resume: dict | None = None, spent: float = 0.0) -> dict:
    """Ray task: stylize one input given as bytes; returns the row fields and the encoded output.

    Cancelled with ``ray.cancel(force=False)`` (KeyboardInterrupt here), it returns instead the best result
    so far (``"best"``) and the state to resume from (``"state"``), which the driver saves beside the output
    (it has the files the checkpoint's digests are taken from). ``resume`` is such a state, ``spent`` the
    seconds the interrupted run took.
    """
    import socket

    _ray_threads(threads)
    t0 = time.perf_counter()
    style_imgs, cache = group
    job = _Job(inp, tuple(styles), out, cfg)

    def took() -> float:
        return round(spent + time.perf_counter() - t0, 3)

    try:
        with tempfile.TemporaryDirectory(prefix="stylekit-") as d:
            src = Path(d) / (Path(inp).name or "input")
            src.write_bytes(data)
            try:
                result = _run(job, src, style_imgs, cache, resume)
            except StylekitError as e:
                raise type(e)(str(e).replace(str(src), inp)) from None
            seconds = took()
            tmp = dataclasses.replace(job, output=str(Path(d) / f"out{Path(out).suffix}"), replace=True)
            _write_output(tmp, result, seconds, None if job.audio else {"node": socket.gethostname()})
            return {"status": "done", "error": None, "seconds": seconds, "data": Path(tmp.output).read_bytes()}
    except KeyboardInterrupt as e:
        partial = _partial(job, e)
        if partial is None:
            return {"status": "pending", "error": None, "seconds": None}
        return {"status": "interrupted", "error": None, "seconds": took(), "best": partial[0], "state": partial[1]}
    except Exception as e:  # noqa: BLE001 - isolation
        return {"status": "error", "error": _one_line(e), "seconds": took()}


def _ray_gpus(ray, device_names: set) -> int:
    if device_names == {"cpu"}:
        return 0
    return int(ray.cluster_resources().get("GPU", 0))


def _run_ray(ray, todo: list[BatchItem], jobs: dict, group_items: dict, res: _Results, *, gpus: int,
             threads: int, max_retries: int, window: int | None) -> None:
    task_opts = {"num_cpus": threads, "num_gpus": 1 if gpus else 0, "max_retries": max_retries,
                 "retry_exceptions": False}
    targets = ray.remote(_ray_targets).options(num_returns=2, **task_opts)
    stylize = ray.remote(_ray_stylize).options(**task_opts)
    # the audio pipeline runs on the CPU: its tasks never hold a GPU
    cpu_opts = {**task_opts, "num_gpus": 0}
    targets_cpu = ray.remote(_ray_targets).options(num_returns=2, **cpu_opts)
    stylize_cpu = ray.remote(_ray_stylize).options(**cpu_opts)

    group_refs: dict = {}
    for gid, (items, cfgs) in group_items.items():
        try:
            blobs = [(str(s), Path(s).read_bytes()) for s in items[0].styles]
        except OSError as e:
            for it in items:
                res.set(it.index, status="error", error=f"{e.filename}: cannot read style file ({e.strerror})")
            continue
        remote = targets_cpu if items[0].kind == "audio" else targets
        errors_ref, payload_ref = remote.remote(blobs, cfgs, threads)
        group_refs[gid] = (errors_ref, payload_ref)

    runnable: list[BatchItem] = []
    for gid, (items, _) in group_items.items():
        if gid not in group_refs:
            continue
        try:
            errors = ray.get(group_refs[gid][0])
        except ray.exceptions.RayError as e:
            errors = {_warm_key(it.config): _one_line(e) for it in items}
        for it in items:
            err = errors.get(_warm_key(it.config))
            if err is not None:
                res.set(it.index, status="error", error=err, attempts=1)
            else:
                runnable.append(it)
    runnable.sort(key=lambda it: it.index)

    if window is None:
        slots = (ray.cluster_resources().get("GPU", 0) if gpus
                 else ray.cluster_resources().get("CPU", 1) // max(1, threads))
        window = max(4, 2 * int(slots))
    queue = deque(runnable)
    inflight: dict = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < window:
                it = queue.popleft()
                job = jobs[it.index]
                try:
                    data = Path(it.input).read_bytes()
                    # the driver has the files the checkpoint's digests are checked against
                    state = _resume_state(job) if job.resume else None
                except OSError as e:
                    why = "no such file" if isinstance(e, FileNotFoundError) else f"cannot read ({e.strerror})"
                    res.set(it.index, status="error", error=f"{it.input}: {why}", attempts=0)
                    continue
                except StylekitError as e:
                    res.set(it.index, status="error", error=_one_line(e), attempts=0)
                    continue
                remote = stylize_cpu if it.kind == "audio" else stylize
                ref = remote.remote(str(it.input), data, res.rows[it.index]["styles"], str(it.output),
                                    it.config, group_refs[_group_key(it)][1], threads, resume=state,
                                    spent=job.seconds)
                inflight[ref] = it
                res.set(it.index, attempts=1)
            if not inflight:
                continue
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=5)
            for ref in done:
                it = inflight.pop(ref)
                _ray_result(ray, ref, jobs[it.index], it.index, res)
    except KeyboardInterrupt:
        # ray.cancel(force=False) raises KeyboardInterrupt in a running task, which then returns its result so
        # far; a task that had not started is dropped
        for ref in inflight:
            ray.cancel(ref, force=False)
        try:
            if inflight:
                ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=_SAVE_SECONDS)
                for ref in ready:
                    it = inflight.pop(ref)
                    _ray_result(ray, ref, jobs[it.index], it.index, res)
        except KeyboardInterrupt:
            pass
        raise
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)


def _ray_result(ray, ref, job: _Job, index: int, res: _Results) -> None:
    """Record what the task ``ref`` of ``job`` returned, writing its output (and, for an interrupted task,
    its checkpoint) here."""
    from .._io import atomic_write

    try:
        out = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return  # cancelled before it started: the item stays pending
    except ray.exceptions.RayError as e:
        res.set(index, status="error", error=_one_line(e).splitlines()[0][:500])
        return
    if out["status"] == "interrupted":
        out = _save_interrupted(job, out.pop("best"), out.pop("state"), out["seconds"])
    data = out.pop("data", None)
    if data is not None:
        try:
            atomic_write(job.output, lambda tmp: tmp.write_bytes(data), overwrite=job.replace)
            _finished(job)
        except (StylekitError, OSError) as e:
            out.update(status="error", error=_one_line(e))
    res.set(index, **out)


# --- the entry point -------------------------------------------------------------------------------------

def run_batch(items: Sequence[BatchItem], *, engine: str = "local", workers: int | None = None,
              threads: int | None = None, address: str | None = None, overwrite: bool = False,
              max_retries: int = 2, results: str | os.PathLike | None = None,
              on_result: Callable[[dict], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> list[dict]:
    """Stylize every item (see :func:`~stylekit.batch.collect_items`) and return one result row per item.

    Parameters
    ----------
    items : the work, from :func:`~stylekit.batch.collect_items`.
    engine : ``"local"`` (worker processes on this machine) or ``"ray"``.
    workers : local engine: number of worker processes; default one per GPU, else 1; 0 runs in this process.
    threads : CPU threads per worker or Ray task (default: the CPU cores divided among the workers; 1 on Ray).
        A sound's run uses its ``AudioStyleConfig.threads`` (the CLI sets it from ``--threads``).
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

    Returns
    -------
    One dict per item, in item order, with the keys of :data:`~stylekit.batch.RESULT_FIELDS`: ``status`` is
    ``"done"``, ``"skipped"`` (the output already held this result) or ``"error"`` (``error`` says why);
    ``seconds`` is the compute time of the output (of all its runs, for one continued after an interrupt);
    ``settings`` the item's :meth:`ImageStyleConfig.to_dict` (for a sound :meth:`AudioItemConfig.to_dict`).

    Raises
    ------
    ConfigError
        for an unknown engine, bad worker or thread counts, a results path that is not a results manifest, or
        Ray missing. Problems with single items never raise: they are in the rows.
    BatchInterrupted
        on Ctrl-C (KeyboardInterrupt), after the items in flight saved their best result so far and a
        checkpoint (see the module notes); its ``rows`` say ``"interrupted"`` for those items and
        ``"pending"`` for the items not started. Calling again with the same items continues them.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max-retries must be an integer >= 0, got {max_retries!r}")
    if engine == "local" and address is not None:
        raise ConfigError("--address is for the ray engine (add --engine ray)")
    results_path = check_results_path(results, overwrite=overwrite) if results is not None else None

    items = list(items)
    devices = {it.config.device for it in items if it.config is not None and it.kind == "image"} or {"cpu"}
    ray = started_ray = None
    if engine == "ray":
        ray = _import_ray()
        if not ray.is_initialized():
            import logging
            # no address: a new local instance, even when a cluster started with `ray start` runs on this
            # machine (plain ray.init() would join that one); RAY_ADDRESS, when set, is honoured
            target = address or os.environ.get("RAY_ADDRESS") or "local"
            try:
                ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False,
                         configure_logging=True)
            except Exception as e:  # noqa: BLE001 - a wrong address or a cluster that is down is a user error
                where = f" at {address}" if address else ""
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ConfigError(f"cannot connect to Ray{where}: {first}") from None
            started_ray = True
        gpus = _ray_gpus(ray, devices)
    else:
        import torch
        gpus = torch.cuda.device_count() if devices != {"cpu"} and torch.cuda.is_available() else 0
    try:
        # 1. one size for the whole batch when it was left to the device
        items = [dataclasses.replace(it, config=dataclasses.replace(it.config, size=512 if gpus else 384))
                 if it.config is not None and it.kind == "image" and it.config.size is None else it
                 for it in items]
        res = _Results(items, results_path, on_result)

        try:
            # 2. skip finished outputs; continue interrupted ones; report items known to be bad
            todo, jobs = _plan(items, res, overwrite)

            # 3. group by style set; the settings each group must prepare targets for
            group_items: dict = {}
            for it in todo:
                items_g, cfgs = group_items.setdefault(_group_key(it), ([], {}))
                items_g.append(it)
                cfgs.setdefault(_warm_key(it.config), it.config)

            if engine == "ray":
                _run_ray(ray, todo, jobs, group_items, res, gpus=gpus, threads=threads or 1,
                         max_retries=max_retries, window=None)
            else:
                n = workers if workers is not None else max(1, gpus)
                th = threads or max(1, (os.cpu_count() or 1) // max(1, n))
                groups, group_of, runnable = _local_targets(group_items, res)
                _run_local(runnable, jobs, groups, group_of, res, workers=n, gpus=gpus, threads=th,
                           max_retries=max_retries, on_start=on_start)
        except KeyboardInterrupt:
            raise BatchInterrupted(res.rows) from None
        finally:
            res.flush()
        return res.rows
    finally:
        if started_ray:
            ray.shutdown()


def _plan(items: list[BatchItem], res: _Results, overwrite: bool) -> tuple[list[BatchItem], dict]:
    """The items to run and their jobs: finished outputs are skipped (or are errors when made with other
    settings), an interrupted output is continued from its checkpoint, or made again when it cannot be."""
    todo: list[BatchItem] = []
    jobs: dict[int, _Job] = {}
    for it in items:
        if it.error is not None:
            res.set(it.index, status="error", error=it.error)
            continue
        job = _Job(str(it.input), tuple(res.rows[it.index]["styles"]), str(it.output), it.config,
                   replace=overwrite)
        if it.output.exists() and not overwrite:
            status, error, meta = _existing_output(it)
            if status != "partial":
                res.set(it.index, status=status, error=error, seconds=meta.get("seconds"))
                continue
            resume = _resumable(it, meta)
            job = dataclasses.replace(job, replace=True, resume=resume,
                                      seconds=float(meta.get("seconds") or 0.0) if resume else 0.0)
        try:
            it.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            res.set(it.index, status="error", error=f"{it.output.parent}: cannot create folder ({e.strerror})")
            continue
        todo.append(it)
        jobs[it.index] = job
    return todo, jobs


def _local_targets(group_items: dict, res: _Results):
    """Read each group's style images and compute its targets in this process (local engine)."""
    from ..image import load_image

    groups: dict = {}
    group_of: dict = {}
    runnable: list[BatchItem] = []
    for n, (gid, (items, cfgs)) in enumerate(group_items.items()):
        try:
            if items[0].kind == "audio":
                style_imgs = _load_style_clips(items[0].styles, items[0].config)
            else:
                style_imgs = [load_image(s) for s in items[0].styles]
        except StylekitError as e:
            for it in items:
                res.set(it.index, status="error", error=_one_line(e))
            continue
        cache, errors = _style_targets(style_imgs, cfgs, [str(p) for p in items[0].styles])
        groups[n] = (style_imgs, cache)
        for it in items:
            err = errors.get(_warm_key(it.config))
            if err is not None:
                res.set(it.index, status="error", error=err)
            else:
                group_of[it.index] = n
                runnable.append(it)
    runnable.sort(key=lambda it: it.index)
    return groups, group_of, runnable
