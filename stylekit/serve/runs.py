"""The server's runs: one at a time, in the order they were asked for, each through its medium's Job.

A run is the same :class:`~stylekit.image.job.ImageJob` or :class:`~stylekit.audio.job.AudioJob` that
``stylekit image``, ``stylekit audio`` and ``stylekit batch`` run, writing into the server's private folder.
Its progress callback records the loss terms of every step and, throttled, a snapshot of the current iterate
for the page. Stop is the run protocol's interruption: the callback raises :class:`StopRequested`, a
``KeyboardInterrupt`` as Ctrl-C is, so the Job saves the best result so far and a checkpoint; continue is the
protocol's resumption (:meth:`~stylekit._job.Job.continue_partial`), as a batch continues a partial output.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StylekitError, StylizeInterrupted
from .config import ServeConfig
from .frames import Frame, image_frame, spectrogram_frame
from .uploads import Upload

__all__ = ["Run", "Runner", "StopRequested", "STATES"]

log = logging.getLogger("stylekit.serve")

#: A run is waiting, running, finished, stopped (its best result so far saved; it can continue), failed (with
#: a message), or cancelled before it started.
STATES = ("queued", "running", "done", "stopped", "failed", "cancelled")
_SUFFIX = {"image": ".png", "audio": ".wav"}
#: A snapshot's longest edge in pixels: larger iterates are scaled down for the page (a 4000 px frame would be
#: 48 MB of pixels, several times a second).
MAX_PREVIEW_EDGE = 1024
#: Finished runs listed beyond the queue (the oldest are forgotten, their files stay until the server ends).
KEEP_FINISHED = 50


class StopRequested(KeyboardInterrupt):
    """Raised in a run's progress callback when the page asks it to stop: the pipelines take it as Ctrl-C.

    Examples
    --------
    >>> isinstance(StopRequested(), KeyboardInterrupt)        # the pipelines stop as on Ctrl-C
    True
    """


@dataclass(eq=False)
class Run:
    """One run of the queue and what the page sees of it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image.config import ImageStyleConfig
    >>> from stylekit.serve.config import ServeConfig
    >>> from stylekit.serve.uploads import Upload
    >>> image = Upload(id="a1", kind="image", path=Path("a1.png"), info={})
    >>> run = Run(id="r1", medium="image", content=image, styles=[image], config=ImageStyleConfig(), output=Path("r1.png"))
    >>> run.state, run.summary()["id"]
    ('queued', 'r1')
    """

    id: str
    medium: str
    content: Upload
    styles: list[Upload]
    config: Any
    output: Path
    state: str = "queued"
    message: str = ""
    # one {"i", "scale", "n_scales", "loss", "terms", "elapsed"} a step (elapsed: seconds into its scale)
    steps: list[dict] = field(default_factory=list)
    total_steps: int | None = None
    frame: Frame | None = None
    frame_version: int = 0
    result_spectrogram: Frame | None = None
    continued: bool = False
    started: float | None = None
    first_preview_s: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def make_job(self):
        """A fresh Job of this run's medium (the same class the command line runs)."""
        if self.medium == "image":
            from ..image.job import ImageJob
            return ImageJob(self.content.path, [s.path for s in self.styles], self.output, self.config)
        from ..audio.job import AudioJob
        return AudioJob(self.content.path, [s.path for s in self.styles], self.output, self.config)

    def summary(self) -> dict:
        return {"id": self.id, "medium": self.medium, "state": self.state, "message": self.message,
                "step": self.steps[-1]["i"] if self.steps else 0, "total": self.total_steps,
                "has_result": self.output.is_file(), "first_preview_s": self.first_preview_s,
                "content": self.content.id, "styles": [s.id for s in self.styles]}


class Runner:
    """The queue and the one worker thread that runs it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image.config import ImageStyleConfig
    >>> from stylekit.image.io import save_image
    >>> from stylekit.serve.config import ServeConfig
    >>> from stylekit.serve.uploads import Uploads
    >>> folder = Path(tempfile.mkdtemp())
    >>> uploads = Uploads(folder, ServeConfig())
    >>> photo, painting = (uploads.accept("image", save_image(torch.rand(1, 3, 24, 32), uploads.new_path().with_suffix(".png")))
    ...                    for _ in range(2))
    >>> runner = Runner(folder, ServeConfig())
    >>> runner.start()
    >>> run = runner.submit("image", photo, [painting], ImageStyleConfig(size=32, scales=1, iterations=1))
    >>> import time
    >>> while runner.get(run.id).state in ("queued", "running"):
    ...     time.sleep(0.1)
    >>> runner.get(run.id).state
    'done'
    >>> runner.close()                                       # stops what runs, drops the queue, ends the worker
    """

    def __init__(self, folder: Path, config: ServeConfig, *, fast_kernels: bool = False) -> None:
        self.folder = folder
        self.config = config
        self.fast_kernels = fast_kernels
        self.runs: dict[str, Run] = {}
        self.version = 0                   # bumped on every change of a run's state (the page's queue view)
        self._queue: deque[Run] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="stylekit-serve-runs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = 60.0) -> None:
        """Stop the running run (it saves as on Ctrl-C), drop the queue, and wait for the worker."""
        with self._cv:
            self._closing = True
            for run in self._queue:
                run.state = "cancelled"
            self._queue.clear()
            for run in self.runs.values():
                run.stop.set()
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _changed(self) -> None:
        with self._cv:
            self.version += 1
            self._cv.notify_all()

    # --- what the page asks for ------------------------------------------------------------------------------

    def submit(self, medium: str, content: Upload, styles: list[Upload], config: Any) -> Run:
        """Queue a run; its Job's plan is checked now, so a run that cannot start is refused at once."""
        run_id = secrets.token_hex(8)
        out = self.folder / run_id
        out.mkdir(mode=0o700)
        run = Run(run_id, medium, content, styles, config, out / f"result{_SUFFIX[medium]}")
        try:
            job = run.make_job()
            job.check()
            job.load()          # every input (masks too) is read now, so a file the run cannot use is refused
        except BaseException:
            out.rmdir()
            raise
        with self._cv:
            if self._closing:
                raise ConfigError("the server is shutting down")
            self.runs[run_id] = run
            self._queue.append(run)
            self._forget_old()
        self._changed()
        return run

    def get(self, run_id: object) -> Run:
        """The run ``run_id``; :class:`KeyError` when there is none."""
        run = self.runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise KeyError(run_id)
        return run

    def stop(self, run_id: str) -> Run:
        """Stop a running run (it keeps its best result) or cancel a queued one."""
        run = self.get(run_id)
        with self._cv:
            if run.state == "queued":
                self._queue.remove(run)
                run.state = "cancelled" if not run.continued else "stopped"
            elif run.state == "running":
                run.stop.set()
                run.message = "stopping at the next step ..."
            else:
                raise ConfigError(f"this run is {run.state}, not running or queued")
        self._changed()
        return run

    def continue_run(self, run_id: str) -> Run:
        """Queue a stopped run again: it continues from its checkpoint."""
        run = self.get(run_id)
        with self._cv:
            if run.state != "stopped" or not run.output.is_file():
                raise ConfigError(f"only a stopped run with a saved result can continue; this one is {run.state}")
            run.state, run.continued, run.message = "queued", True, ""
            run.stop.clear()
            self._queue.append(run)
        self._changed()
        return run

    def queue(self) -> list[dict]:
        """Every run the page lists: the running one, the queue in order (with its position), then the rest,
        newest first."""
        with self._cv:
            queued = list(self._queue)
            runs = list(self.runs.values())
        out = [r.summary() for r in runs if r.state == "running"]
        out += [{**r.summary(), "position": i + 1} for i, r in enumerate(queued)]
        out += [r.summary() for r in reversed(runs) if r.state not in ("running", "queued")]
        return out

    def _forget_old(self) -> None:
        finished = [r for r in self.runs.values() if r.state not in ("running", "queued")]
        for run in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self.runs[run.id]

    # --- the worker --------------------------------------------------------------------------------------------

    def _work(self) -> None:
        if self.fast_kernels:
            from .._command import enable_fast_kernels
            enable_fast_kernels()        # as the commands run, so a run here costs what it costs there
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                run = self._queue.popleft()
                run.state, run.message, run.started = "running", "starting ...", time.perf_counter()
                run.first_preview_s = None
            self._changed()
            try:
                self._execute(run)
            finally:
                self._changed()

    def _execute(self, run: Run) -> None:
        result = None
        try:
            job = run.make_job()
            if run.continued and job.status()[0] == "partial":
                job.continue_partial()
            job.check()
            job.load()
            run.total_steps = job.total_steps()
            done = job.steps_done(job.load_resume()) if job.resume is not None else 0
            del run.steps[done:]
            run.message = ""
            self._changed()
            result = job.run(progress=_Publisher(run, job, self.config, done))
            run.state, run.message = "done", ""
        except StylizeInterrupted as e:
            result = e.result
            run.state = "stopped" if result is not None else "failed"
            run.message = ("stopped: the best result so far is kept; continue goes on from there"
                           if result is not None else "stopped before the first step: nothing to keep")
        except StylekitError as e:
            run.state, run.message = "failed", _public(str(e), self.folder)
        except Exception as e:  # noqa: BLE001 - the page gets one line, the server's log the traceback
            log.exception("run %s failed", run.id)
            run.state, run.message = "failed", f"internal error ({type(e).__name__}); the server's log has the details"
        if result is not None and run.medium == "audio":
            run.result_spectrogram = _result_spectrogram(result)


def _public(message: str, folder: Path) -> str:
    """A message without the server's private folder in it."""
    return message.replace(str(folder.parent) + "/", "").replace(str(folder.parent), "")


def _result_spectrogram(result) -> Frame:
    from ..audio.io import normalize_loudness
    from ..audio.transform import to_spectrogram
    working = normalize_loudness(result.working, target_rms=result.config.target_rms)
    return spectrogram_frame(to_spectrogram(working, result.config.spectrogram))


class _Publisher:
    """The progress callback of a run: stop when asked, record each step's loss terms, and keep the latest
    snapshot (every ``preview_every`` steps, at most one each ``preview_interval`` seconds) for the page."""

    def __init__(self, run: Run, job, config: ServeConfig, done: int) -> None:
        self.run, self.job, self.config, self.count = run, job, config, done
        self.last = -float("inf")
        self._content: dict = {}

    def __call__(self, p) -> None:
        run = self.run
        if run.stop.is_set():
            raise StopRequested
        self.count += 1
        run.steps.append({"i": self.count, "scale": p.scale, "n_scales": p.n_scales, "loss": p.loss,
                          "terms": p.terms, "elapsed": round(p.elapsed, 4)})
        now = time.perf_counter()
        if self.count % self.config.preview_every == 0 and now - self.last >= self.config.preview_interval:
            self.last = now
            run.frame = self.frame(p.image)
            run.frame_version += 1
            if run.first_preview_s is None and run.started is not None:
                run.first_preview_s = round(time.perf_counter() - run.started, 3)

    def frame(self, x) -> Frame:
        """The page's picture of iterate ``x``: the image as it would be saved now (clamped, colours restored
        under ``preserve_color``), or the chunk's spectrogram as the optimiser sees it ([0, 1])."""
        if self.run.medium == "audio":
            return spectrogram_frame(x[0, 0].detach().float().cpu().numpy(), span=(0.0, 1.0))
        from ..image.io import resize, resize_long_edge
        x = x.detach().float()
        if max(x.shape[-2:]) > MAX_PREVIEW_EDGE:
            x = resize_long_edge(x.clamp(0, 1), MAX_PREVIEW_EDGE)
        mode = self.run.config.preserve_color
        if mode == "luminance":
            from ..image.pipeline import finish_image
            hw = tuple(x.shape[-2:])
            if hw not in self._content:
                self._content[hw] = resize(self.job.load()[0], hw)
            x = finish_image(x, self._content[hw], mode)
        return image_frame(x)
