"""The Ray engine: one Ray task per input, the style targets of each group made once by a task of their own.

Input and style files are read by the driver and shipped as bytes; a task writes its input to a temporary
file (the Job's ``source``), stylizes it against the group's targets (from the object store), writes the
output to a temporary file and returns its bytes, which the driver writes atomically: the cluster's nodes need
stylekit installed, not a shared file system. Ray retries a task whose worker died (``max_retries``).

On Ctrl-C the running tasks are cancelled with ``ray.cancel(force=False)``, which raises KeyboardInterrupt
inside them; each returns its best result so far and the state to continue from, and the driver saves them
with :meth:`Job.save_interrupted` (it has the files the checkpoint's digests are taken from).
"""
from __future__ import annotations

import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StylekitError, StylizeInterrupted
from ._local import SAVE_SECONDS
from ._work import Results, finish, make_targets, one_line, seconds_of, target_key

__all__ = ["import_ray", "start_ray", "ray_gpus", "run_ray"]


def import_ray():
    """The ``ray`` module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'stylekit[ray]' (or pip install ray)") from None
    return ray


def start_ray(ray, address: str | None) -> bool:
    """Connect to Ray unless this process already has a session; True when this call started one."""
    import logging
    import os
    if ray.is_initialized():
        return False
    # no address: a new local instance, even when a cluster started with `ray start` runs on this machine
    # (plain ray.init() would join that one); RAY_ADDRESS, when set, is honoured
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    except Exception as e:  # noqa: BLE001 - a wrong address or a cluster that is down is a user error
        where = f" at {address}" if address else ""
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"cannot connect to Ray{where}: {first}") from None
    return True


def ray_gpus(ray, wants_gpu: bool) -> int:
    """GPUs of the cluster that the batch's tasks may use."""
    return int(ray.cluster_resources().get("GPU", 0)) if wants_gpu else 0


def _setup_task(threads: int, fast: bool) -> None:
    import torch
    torch.set_num_threads(threads)
    if fast:  # the driver's CPU convolution backend setting
        from ..features import cpu_backend
        cpu_backend.enable(True)


def _local_copy(folder: str, name: str, data: bytes, n: int = 0) -> Path:
    p = Path(folder) / str(n) / (Path(name).name or "input")
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


def _ray_targets(job, style_blobs: list, threads: int, fast: bool):
    """Ray task: ``(error or None, targets)`` of ``job``'s group, from the style files' bytes."""
    _setup_task(threads, fast)
    try:
        with tempfile.TemporaryDirectory(prefix="stylekit-") as d:
            paths = [_local_copy(d, name, data, n) for n, (name, data) in enumerate(style_blobs)]
            return None, make_targets(job, paths, [name for name, _ in style_blobs])
    except Exception as e:  # noqa: BLE001 - reported on every item of the group
        return one_line(e), None


def _ray_stylize(job, data: bytes, targets: Any, threads: int, fast: bool) -> dict:
    """Ray task: stylize one input given as bytes; returns the row fields and the encoded output (``"data"``).

    Cancelled with ``ray.cancel(force=False)`` (KeyboardInterrupt here), it returns instead the best result
    so far (``"result"``) and the state to continue from (``"state"``), for the driver to save.
    """
    _setup_task(threads, fast)
    t0 = time.perf_counter()

    def took() -> float:
        return round(job.seconds_before + time.perf_counter() - t0, 3)

    try:
        with tempfile.TemporaryDirectory(prefix="stylekit-") as d:
            job.source = _local_copy(d, str(job.content), data)
            state = job.load_resume() if job.resume is not None else None  # loaded on the driver
            try:
                result = job.stylize(callback=None, resume=state, targets=targets)
            except StylekitError as e:
                raise type(e)(str(e).replace(str(job.source), str(job.content))) from None
            out = Path(d) / f"out{job.output.suffix}"
            job.write(result, out, job.metadata(took()), overwrite=True)
            return {"status": "done", "error": None, "seconds": took(), "data": out.read_bytes()}
    except StylizeInterrupted as e:
        if e.result is None:
            return {"status": "pending", "error": None, "seconds": None}
        return {"status": "interrupted", "error": None, "seconds": took(), "result": e.result, "state": e.state}
    except KeyboardInterrupt:  # before the first step
        return {"status": "pending", "error": None, "seconds": None}
    except Exception as e:  # noqa: BLE001 - isolation
        return {"status": "error", "error": one_line(e), "seconds": took()}


def _save(job, out: dict) -> dict:
    """Write what a task returned: its output's bytes, or its result so far and checkpoint (row fields)."""
    from .._io import atomic_write
    try:
        if out["status"] == "interrupted":
            job.save_interrupted(StylizeInterrupted(out.pop("result"), out.pop("state")), out["seconds"])
        data = out.pop("data", None)
        if data is not None:
            atomic_write(job.output, lambda tmp: tmp.write_bytes(data), overwrite=job.overwrite)
            finish(job)
            out["seconds"] = seconds_of(job, out["seconds"])
    except (StylekitError, OSError) as e:
        if out["status"] == "interrupted":
            return {**out, "status": "pending", "error": f"interrupted; the result so far was not saved "
                                                        f"({one_line(e)})"}
        return {**out, "status": "error", "error": one_line(e)}
    return out


def _collect(ray, ref, job, index: int, res: Results) -> None:
    """Record what the task ``ref`` of ``job`` returned, writing its output here."""
    try:
        out = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return  # cancelled before it started: the item stays pending
    except ray.exceptions.RayError as e:
        res.set(index, status="error", error=one_line(e).splitlines()[0][:500])
        return
    res.set(index, **_save(job, out))


class _RayRun:
    """The Ray side of one batch: task options, the targets of each group, the window of tasks in flight."""

    def __init__(self, ray, jobs: dict, res: Results, *, gpus: int, threads: int, fast: bool,
                 max_retries: int) -> None:
        self.ray, self.jobs, self.res, self.threads, self.fast = ray, jobs, res, threads, fast
        opts = {"num_cpus": threads, "max_retries": max_retries, "retry_exceptions": False}
        self.gpus = gpus
        # a job that runs on the CPU never holds a GPU
        self.remote = {(fn.__name__, gpu): ray.remote(fn).options(num_gpus=gpu, **opts, **extra)
                       for fn, extra in ((_ray_targets, {"num_returns": 2}), (_ray_stylize, {}))
                       for gpu in (0, 1)}
        self.inflight: dict = {}

    def task(self, name: str, job):
        uses_gpu = bool(self.gpus) and getattr(job.config, "device", "cpu") != "cpu"
        return self.remote[(name, int(uses_gpu))]

    def targets(self, todo: list[int]) -> tuple[list[int], dict]:
        """Start one targets task per group; returns the items whose group is ready and ``{key: ref}``."""
        refs: dict = {}
        errors: dict = {}
        for index in todo:
            job = self.jobs[index]
            key = target_key(job)
            if key in refs or key in errors:
                continue
            try:
                blobs = [(str(s), Path(s).read_bytes()) for s in job.styles]
            except OSError as e:
                errors[key] = f"{e.filename}: cannot read style file ({e.strerror})"
                continue
            errors[key], refs[key] = self.task("_ray_targets", job).remote(job, blobs, self.threads, self.fast)
        for key, ref in list(errors.items()):
            if not isinstance(ref, str):
                try:
                    errors[key] = self.ray.get(ref)
                except self.ray.exceptions.RayError as e:
                    errors[key] = one_line(e)
        ready = []
        for index in todo:
            err = errors.get(target_key(self.jobs[index]))
            if err is not None:
                self.res.set(index, status="error", error=err, attempts=1)
            else:
                ready.append(index)
        return ready, refs

    def submit(self, index: int, targets_ref) -> None:
        job = self.jobs[index]
        try:
            data = Path(job.content).read_bytes()
        except OSError as e:
            why = "no such file" if isinstance(e, FileNotFoundError) else f"cannot read ({e.strerror})"
            self.res.set(index, status="error", error=f"{job.content}: {why}", attempts=0)
            return
        ref = self.task("_ray_stylize", job).remote(job, data, targets_ref, self.threads, self.fast)
        self.inflight[ref] = index
        self.res.set(index, attempts=1)

    def wait(self, timeout: float, n: int = 1) -> None:
        done, _ = self.ray.wait(list(self.inflight), num_returns=n, timeout=timeout)
        for ref in done:
            index = self.inflight.pop(ref)
            _collect(self.ray, ref, self.jobs[index], index, self.res)

    def interrupted(self) -> None:
        """Ctrl-C: cancel the tasks in flight (a running one returns its result so far) and save them."""
        for ref in self.inflight:
            self.ray.cancel(ref, force=False)
        try:
            if self.inflight:
                self.wait(SAVE_SECONDS, len(self.inflight))
        except KeyboardInterrupt:
            pass


def run_ray(ray, todo: list[int], jobs: dict, res: Results, *, gpus: int, threads: int, fast: bool,
            max_retries: int, window: int | None = None) -> None:
    """Run the jobs of ``todo`` (item indices) on Ray; see the module notes."""
    run = _RayRun(ray, jobs, res, gpus=gpus, threads=threads, fast=fast, max_retries=max_retries)
    ready, refs = run.targets(todo)
    if window is None:
        resources = ray.cluster_resources()
        slots = resources.get("GPU", 0) if gpus else resources.get("CPU", 1) // max(1, threads)
        window = max(4, 2 * int(slots))
    queue = deque(ready)
    try:
        while queue or run.inflight:
            while queue and len(run.inflight) < window:
                index = queue.popleft()
                run.submit(index, refs[target_key(jobs[index])])
            if run.inflight:
                run.wait(5)
    except KeyboardInterrupt:
        run.interrupted()
        raise
    finally:
        for ref in run.inflight:
            ray.cancel(ref, force=True)
