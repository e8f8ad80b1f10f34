"""The run protocol, written once: a :class:`Job` makes one output file from one content and its styles.

Every medium has one Job (:class:`stylekit.image.job.ImageJob`, :class:`stylekit.audio.job.AudioJob`), and
every caller runs it the same way: ``stylekit image`` / ``stylekit audio`` / ``stylekit video`` (through
:func:`stylekit._command.run_job`), ``stylekit batch`` (locally or on Ray) and the web preview (``stylekit serve``).
None of them re-implements a part of it. The protocol:

1. **Plan** (:meth:`Job.check`): the outputs it will write, refused before any work when one exists (without
   ``overwrite``), is an input, or sits in a missing or read-only folder.
2. **Skip what is done** (:meth:`Job.status`): an existing output whose embedded settings digest is this job's
   is ``"done"``; one marked ``interrupted_at`` is ``"partial"`` and continues from its checkpoint.
3. **Run with progress** (:meth:`Job.run`): the medium's ``stylize``, reporting a
   :class:`~stylekit.optim.Progress` after every step.
4. **Interruption**: Ctrl-C (or SIGTERM in a command) writes the best result so far to the output, marked
   ``interrupted_at``, and the state to ``OUTPUT_STEM.ckpt.pt`` beside it, then raises
   :class:`~stylekit.errors.StylizeInterrupted` again.
5. **Resume**: a job given that checkpoint continues to the result an uninterrupted run gives, and removes
   the checkpoint once its output is written.
6. **Settings in the output**: every output carries the settings that made it (:meth:`Job.metadata`).

A medium supplies the parts that differ (reading, stylizing, writing, its checkpoint's state) as the
methods marked *medium* below.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ._checkpoint import checkpoint_path, input_digests, read_checkpoint, write_checkpoint
from ._io import check_output_path
from ._lock import output_lock
from ._options import map_paths, option
from .errors import ConfigError, InputError, StylizeInterrupted

__all__ = ["Job", "RunOptions", "STATUSES", "settings_digest", "jsonable", "plot_path"]

#: What :meth:`Job.status` says of an output: not there yet, finished with these settings, the best result so
#: far of an interrupted run with these settings, or a file this job must not replace.
STATUSES = ("new", "done", "partial", "conflict")


@dataclass(frozen=True)
class RunOptions:
    """How a command runs a job, whatever the medium (the options every command shares)."""

    overwrite: bool = option(False, is_flag=True, group="Input and output", help="Replace existing output files.")
    quiet: bool = option(False, is_flag=True, flag=("-q", "--quiet"), group="Input and output",
                         help="No progress bar or summary.")
    full_paths: bool = option(False, is_flag=True, group="Input and output",
                              help="Record the inputs' absolute paths in the settings embedded in the output, "
                                   "not only their file names (which keep private folders out of shared files).")


def plot_path(output: str | os.PathLike) -> Path:
    """Where ``--plot`` writes its figure, for every medium: ``OUTPUT_STEM.plot.png`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.plot.png")


def jsonable(d: Any) -> Any:
    """``d`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def settings_digest(data: dict) -> str:
    """The sha256 of settings as canonical JSON: two outputs are the same work when their digests are equal."""
    return hashlib.sha256(json.dumps(jsonable(data), sort_keys=True).encode()).hexdigest()


class Job(ABC):
    """One output of one medium, made by the run protocol of this module.

    Parameters
    ----------
    content : the content file (its name is what the metadata records).
    styles : the style files.
    output : the output file.
    config : the medium's config (``ImageStyleConfig``, ``AudioStyleConfig``).
    overwrite : replace an existing output (and never skip it).
    resume : a checkpoint to continue from; its settings are the run's (the medium's ``RUNTIME_FIELDS``, which
        only say where and how fast it runs, are taken from ``config``).
    source : where the content's bytes are actually read (a local copy on a Ray worker); default ``content``.
    full_paths : record the inputs' absolute paths in the output's settings; by default only their file names
        (:meth:`metadata`), so that a shared output shows no private folders.
    """

    medium: ClassVar[str]
    checkpoint_format: ClassVar[str]
    #: Config fields that do not change the result: a resumed run takes them from ``config``.
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, content: str | os.PathLike, styles: Sequence[str | os.PathLike], output: str | os.PathLike,
                 config: Any, *, overwrite: bool = False, resume: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None, full_paths: bool = False) -> None:
        self.full_paths = full_paths
        self.content = Path(content)
        self.styles = tuple(Path(s) for s in styles)
        self.output = Path(output)
        self.config = config
        self.overwrite = overwrite
        self.resume = Path(resume) if resume is not None else None
        self.source = Path(source) if source is not None else self.content
        self.seconds_before = 0.0
        self._state: dict | None = None

    # --- medium ----------------------------------------------------------------------------------------

    @abstractmethod
    def stylize(self, *, callback: Callable | None, resume: dict | None, targets: Any) -> Any:
        """Run the medium's pipeline on ``self.source`` and the styles (or their ``targets``); returns its
        result object, raises :class:`StylizeInterrupted` on Ctrl-C."""

    @abstractmethod
    def write(self, result: Any, path: Path, metadata: dict, *, overwrite: bool) -> None:
        """Write ``result`` to ``path`` atomically, with ``metadata`` embedded."""

    @classmethod
    @abstractmethod
    def read_metadata(cls, path: Path) -> dict:
        """The metadata :meth:`write` embedded in ``path`` (``{}`` when there is none)."""

    @classmethod
    @abstractmethod
    def style_targets(cls, styles: Sequence, config: Any, names: Sequence[str] | None = None) -> Any:
        """The style side of ``config``'s runs, computed once for every job of a batch (picklable)."""

    @abstractmethod
    def steps_done(self, state: dict) -> int:
        """Optimisation steps done when ``state`` was saved."""

    @abstractmethod
    def total_steps(self) -> int:
        """Optimisation steps of the whole run (for progress bars)."""

    def extra_inputs(self) -> list[Path]:
        """Input files besides content and styles (an init image)."""
        return []

    def extra_outputs(self) -> list[Path]:
        """Output files besides the output (a loss plot)."""
        return []

    def output_settings(self) -> dict:
        """Settings of the output file itself (bit depth, sample format) that the digest covers."""
        return {}

    def check_output(self) -> None:
        """Refuse an output this medium cannot write (its format) with :class:`ConfigError`."""

    def describe_step(self, p) -> str:
        """Where a run is, for a progress bar (``p`` is a :class:`~stylekit.optim.Progress`)."""
        return f"{p.scale}/{p.n_scales}"

    def describe_result(self, result: Any) -> str:
        """A few words on a result, for the closing line of a command."""
        return self.medium

    # --- the protocol ----------------------------------------------------------------------------------

    @property
    def inputs(self) -> list[Path]:
        """Every input file: content, styles, then any extra inputs."""
        return [self.content, *self.styles, *self.extra_inputs()]

    @property
    def checkpoint(self) -> Path:
        """Where an interrupted run's state goes: ``OUTPUT_STEM.ckpt.pt`` beside the output."""
        return checkpoint_path(self.output)

    def outputs(self) -> list[Path]:
        """Every file the job writes: the output, the extra outputs, the checkpoint if interrupted."""
        return [self.output, *self.extra_outputs(), self.checkpoint]

    def check(self) -> None:
        """Plan: refuse, before any work, outputs that cannot be written or must not be replaced. A resumed run
        may replace the best-so-far output of the run it continues."""
        self.check_output()
        inputs = [*self.inputs, *([self.resume] if self.resume else [])]
        if self.resume is not None:
            self.load_resume()
            self.overwrite = self.overwrite or self.status()[0] == "partial"
        check_output_path(self.output, overwrite=self.overwrite, inputs=inputs)
        for extra in self.extra_outputs():
            check_output_path(extra, overwrite=self.overwrite, inputs=[*inputs, self.output])
        if self.checkpoint.exists() and not self._is_our_checkpoint(self.checkpoint):
            raise ConfigError(f"{self.checkpoint}: exists and is not a stylekit {self.medium} checkpoint; an "
                              "interrupted run would need that name (move the file, or choose another output)")
        check_output_path(self.checkpoint, overwrite=True, inputs=[*self.inputs, self.output])

    def settings(self) -> dict:
        """What decides the output: medium, config (less ``RUNTIME_FIELDS``), the style files and the output's own
        settings. Files are compared by absolute path (the config's path fields too), so the same files named
        from another folder, or by the bare names an output records, are the same work."""
        config = map_paths(type(self.config), jsonable(self.config.to_dict()), os.path.abspath)
        config = {k: v for k, v in config.items() if k not in self.RUNTIME_FIELDS}
        return {"medium": self.medium, "config": config,
                "styles": [os.path.abspath(s) for s in self.styles], "output": self.output_settings()}

    def recorded_path(self, path: str | os.PathLike) -> str:
        """How the output's settings name an input file: its name, or its absolute path with ``full_paths``."""
        return os.path.abspath(path) if self.full_paths else Path(path).name

    def metadata(self, seconds: float, **extra) -> dict:
        """The settings embedded in the output: stylekit's version, the inputs (by name; see ``full_paths``), the
        config, the digest. ``stylekit settings OUTPUT`` turns them into a preset that replays the run."""
        from . import __version__
        config = map_paths(type(self.config), jsonable(self.config.to_dict()), self.recorded_path)
        return {"stylekit": __version__, "content": self.recorded_path(self.content),
                "styles": [self.recorded_path(s) for s in self.styles], "config": config,
                "settings_sha256": settings_digest(self.settings()), "seconds": round(seconds, 3),
                **self.output_settings(), **extra}

    def notes(self) -> list[str]:
        """*medium*: lines a command shows as the run starts, on settings that will not run as they read (a
        ``--scales`` that the size leaves no room for). Call after :meth:`check`."""
        return []

    def status(self) -> tuple[str, str | None]:
        """``(status, why)`` of the output: one of :data:`STATUSES`; ``why`` says what a conflict is."""
        if not self.output.exists():
            return "new", None
        try:
            meta = self.read_metadata(self.output)
        except Exception:  # noqa: BLE001 - anything unreadable is "not ours"
            meta = {}
        if not isinstance(meta, dict) or "settings_sha256" not in meta:
            return "conflict", f"{self.output}: already exists and was not written by stylekit (use --overwrite)"
        if meta["settings_sha256"] != settings_digest(self.settings()):
            return "conflict", (f"{self.output}: already exists with other settings or styles "
                                "(use --overwrite or another output folder)")
        if meta.get("interrupted_at") is not None:
            return "partial", None
        return "done", None

    def continue_partial(self) -> None:
        """Make a job whose output is ``"partial"`` continue it: from its checkpoint when that was made from
        the same input files (else from the start), replacing the partial output."""
        meta = self.read_metadata(self.output)
        self.overwrite = True
        if self.checkpoint.is_file() and meta.get("inputs_sha256") == self.inputs_digest():
            self.resume = self.checkpoint
            self.seconds_before = float(meta.get("seconds") or 0.0)

    def inputs_digest(self) -> str:
        """One sha256 over the bytes of the input files (an interrupted output records it)."""
        return hashlib.sha256(" ".join(input_digests(self.inputs)).encode()).hexdigest()

    def load_resume(self) -> dict:
        """Read ``self.resume``: its config becomes the job's (but for ``RUNTIME_FIELDS``), its state the
        starting point. Raises InputError for a checkpoint that cannot be used."""
        if self._state is not None:
            return self._state
        data = read_checkpoint(self.resume, self.checkpoint_format, self.medium, self.inputs,
                               fields={"config": dict, "state": dict}, files=f"content or style files")
        try:
            stored = type(self.config).from_dict(data["config"])
        except ConfigError as e:
            raise InputError(f"{self.resume}: damaged stylekit {self.medium} checkpoint ({e})") from None
        runtime = {k: getattr(self.config, k) for k in self.RUNTIME_FIELDS}
        import dataclasses
        self.config = dataclasses.replace(stored, **runtime) if runtime else stored
        self._state = self.check_state(data["state"])
        return self._state

    def check_state(self, state: dict) -> dict:
        """*medium*: validate a checkpoint's state (raise InputError naming ``self.resume``)."""
        return state

    def run(self, *, progress: Callable | None = None, targets: Any = None) -> Any:
        """Run the job: stylize, then write the output with its settings; on an interrupt, save the best result
        so far and a checkpoint, then raise :class:`StylizeInterrupted` again. Returns the result object.

        The run holds the output's lock (:func:`stylekit._lock.output_lock`) throughout: a second run to the same
        output, ``--overwrite`` or not, is refused with :class:`ConfigError` instead of both doing the work and
        the later one silently replacing the earlier's file."""
        with output_lock(self.output):      # a second run to this output is refused, not raced
            state = self.load_resume() if self.resume is not None else None
            t0 = time.perf_counter()
            try:
                result = self.stylize(callback=progress, resume=state, targets=targets)
            except StylizeInterrupted as e:
                with _interrupts_held():     # a second Ctrl-C must not cut the save short
                    self.save_interrupted(e, self.seconds_before + time.perf_counter() - t0)
                raise
            self.write(result, self.output, self.metadata(self.seconds_before + time.perf_counter() - t0),
                       overwrite=self.overwrite)
            self.finished()
        return result

    def save_interrupted(self, e: StylizeInterrupted, seconds: float) -> bool:
        """Write the checkpoint of an interrupted run, then its best result so far (marked ``interrupted_at``
        with the inputs' digest); False when there was nothing to save yet."""
        if self.checkpoint.exists() and not self._is_our_checkpoint(self.checkpoint):
            raise ConfigError(f"{self.checkpoint}: appeared during the run and is not a stylekit {self.medium} "
                              "checkpoint; it was left alone, so this run cannot be resumed")
        write_checkpoint(self.checkpoint, self.checkpoint_format, self.inputs,
                         {"config": jsonable(self.config.to_dict()), "state": e.state}, overwrite=True)
        if e.result is None:
            return False
        meta = self.metadata(seconds, interrupted_at=self.steps_done(e.state), inputs_sha256=self.inputs_digest())
        self.write(e.result, self.output, meta, overwrite=self.overwrite)
        return True

    def finished(self) -> None:
        """After the output was written: a resumed run's checkpoint is no longer needed."""
        if self.resume is not None and self.resume == self.checkpoint:
            self.checkpoint.unlink(missing_ok=True)

    def _is_our_checkpoint(self, path: Path) -> bool:
        try:
            read_checkpoint(path, self.checkpoint_format, self.medium, [], fields={}, files="", check_inputs=False)
        except InputError:
            return False
        return True


@contextlib.contextmanager
def _interrupts_held():
    """Hold SIGINT and SIGTERM inside the block (on the main thread, where signals arrive); one that came in
    meanwhile is delivered when it ends."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)
