"""The local engine: worker processes on this machine (``spawn``), or the calling process itself.

Each worker receives a group's style targets once, before its first item of that group, and then the items'
Jobs; it runs each with :func:`~stylekit.batch._work.process`. A worker that dies (killed, out of memory) is
replaced and its item is retried up to ``max_retries`` times. On an interrupt the driver passes it on to the
busy workers (as SIGTERM) and gives them ``SAVE_SECONDS`` to save their item's result so far and report.
"""
from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Callable

from ._work import FINISHED, Results, process

__all__ = ["run_local", "SAVE_SECONDS"]

#: How long the items in flight get to save their result so far after an interrupt.
SAVE_SECONDS = 30.0

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


def _setup_worker(gpu: int | None, threads: int, fast: bool) -> _Interrupt:
    interrupt = _Interrupt()
    signal.signal(signal.SIGTERM, interrupt)  # how the driver passes an interrupt on
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # inherited: ignored when the driver ignores it
        signal.signal(signal.SIGINT, interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA is initialised in this process
    import torch
    torch.set_num_threads(threads)
    if fast:  # the driver's CPU convolution backend setting
        from ..features import cpu_backend
        cpu_backend.enable(True)
    return interrupt


def _worker_main(conn, gpu: int | None, threads: int, fast: bool) -> None:
    """A local worker process: receives style targets and jobs over ``conn``, answers with results.

    It starts with SIGINT and SIGTERM blocked (see :class:`_Worker`) and unblocks them once its handler is in
    place.
    """
    interrupt = _setup_worker(gpu, threads, fast)
    targets: dict = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "targets":
            targets[msg[1]] = msg[2]
            continue
        _, index, job, tid = msg
        conn.send(("start", index, os.getpid()))
        row = {"status": "pending", "error": None, "seconds": None}
        try:
            interrupt.busy = True
            if not interrupt.stopped:
                row = process(job, targets[tid])
        except KeyboardInterrupt:
            pass  # it came before the item started: the item stays pending
        finally:
            interrupt.busy = False
        conn.send(("done", index, row))


class _Worker:
    def __init__(self, ctx, slot: int, gpu: int | None, threads: int, fast: bool) -> None:
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, gpu, threads, fast), daemon=True,
                                name=f"stylekit-batch-{slot}")
        # The child inherits the blocked signals, so an interrupt while it imports waits for its handler
        # (instead of a traceback, or its end); here it is only deferred to the end of start().
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self.conn, self.slot, self.gpu, self.threads, self.fast = parent, slot, gpu, threads, fast
        self.job: int | None = None
        self.targets: set = set()

    def again(self, ctx) -> _Worker:
        """A fresh worker in this one's slot."""
        return _Worker(ctx, self.slot, self.gpu, self.threads, self.fast)

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


def _run_here(todo: list[int], jobs: dict, targets: dict, target_of: dict, res: Results,
              on_start: Callable[[int, int], None] | None) -> None:
    """``workers=0``: every item in this process, one after the other."""
    for index in todo:
        res.set(index, attempts=1)
        if on_start is not None:
            on_start(index, os.getpid())
        res.set(index, **process(jobs[index], targets[target_of[index]]))
        if res.rows[index]["status"] in ("interrupted", "pending"):
            raise KeyboardInterrupt  # it came inside the item, which saved what it had


class _Pool:
    """Worker processes and the queue of items they take, with retries of items whose worker died."""

    def __init__(self, todo: list[int], jobs: dict, targets: dict, target_of: dict, res: Results, *,
                 workers: int, gpus: int, threads: int, fast: bool, max_retries: int, on_start) -> None:
        import multiprocessing
        self.ctx = multiprocessing.get_context("spawn")
        self.jobs, self.targets, self.target_of, self.res = jobs, targets, target_of, res
        self.max_retries, self.on_start = max_retries, on_start
        self.queue = deque(todo)
        self.attempts: dict[int, int] = {}
        self.workers = [_Worker(self.ctx, i, i % gpus if gpus else None, threads, fast)
                        for i in range(min(workers, len(todo)))]

    def replace(self, k: int, why: str) -> None:
        """Replace the dead worker ``k``; its item is retried next, or is an error after its retries."""
        w = self.workers[k]
        w.conn.close()
        w.proc.join(1)
        if w.job is not None:
            index, w.job = w.job, None
            if self.attempts[index] > self.max_retries:
                self.res.set(index, status="error", error=f"worker process died ({why}) on each of "
                                                          f"{self.attempts[index]} attempts")
            else:
                self.queue.appendleft(index)
        self.workers[k] = w.again(self.ctx)

    def hand_out(self) -> None:
        """Give each idle worker the next item (and its group's targets, the first time)."""
        for k, w in enumerate(self.workers):
            if w.job is not None or not self.queue:
                continue
            index = self.queue.popleft()
            tid = self.target_of[index]
            w.job = index
            self.attempts[index] = self.attempts.get(index, 0) + 1
            self.res.set(index, attempts=self.attempts[index])
            try:
                if tid not in w.targets:
                    w.conn.send(("targets", tid, self.targets[tid]))
                    w.targets.add(tid)
                w.conn.send(("run", index, self.jobs[index], tid))
            except OSError:
                self.attempts[index] -= 1  # it never reached the worker
                self.replace(k, _death(w.proc))

    def run(self) -> None:
        import multiprocessing.connection
        try:
            while self.queue or any(w.job is not None for w in self.workers):
                self.hand_out()
                busy = [w for w in self.workers if w.job is not None]
                multiprocessing.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                                timeout=5)
                for k, w in enumerate(self.workers):
                    if w.job is not None and not _receive(w, self.res, self.on_start, stop=True):
                        self.replace(k, _death(w.proc))
        except KeyboardInterrupt:
            _save_in_flight(self.workers, self.res)
            raise
        finally:
            for w in self.workers:
                if w.job is not None:  # still busy after an interrupt: end at once, the item stays "pending"
                    w.proc.kill()
                w.end()


def run_local(todo: list[int], jobs: dict, targets: dict, target_of: dict, res: Results, *, workers: int,
              gpus: int, threads: int, fast: bool, max_retries: int,
              on_start: Callable[[int, int], None] | None) -> None:
    """Run the jobs of ``todo`` (item indices) against ``targets[target_of[index]]``; see the module notes."""
    if workers == 0:
        _run_here(todo, jobs, targets, target_of, res, on_start)
    elif todo:
        _Pool(todo, jobs, targets, target_of, res, workers=workers, gpus=gpus, threads=threads, fast=fast,
              max_retries=max_retries, on_start=on_start).run()


def _receive(w: _Worker, res: Results, on_start, *, stop: bool = False) -> bool:
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
            if stop and payload["status"] not in FINISHED:
                raise KeyboardInterrupt
    except (EOFError, OSError):
        return False
    return w.proc.is_alive() or w.job is None


def _save_in_flight(pool: list[_Worker], res: Results) -> None:
    """After an interrupt: pass it on to the busy workers (as SIGTERM: a SIGTERM to this process reaches only
    this process, and a background job ignores SIGINT) and wait, at most ``SAVE_SECONDS``, for each to save
    its item's result so far and report. A second interrupt ends the wait."""
    import multiprocessing.connection

    busy = [w for w in pool if w.job is not None]
    for w in busy:
        try:
            os.kill(w.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + SAVE_SECONDS
    try:
        while busy and time.monotonic() < deadline:
            multiprocessing.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                            timeout=max(0.0, deadline - time.monotonic()))
            busy = [w for w in busy if _receive(w, res, None) and w.job is not None]
    except KeyboardInterrupt:
        pass
