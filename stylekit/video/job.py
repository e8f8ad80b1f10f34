"""The video Job: the run protocol of :mod:`stylekit._job` for one clip (``stylekit video``, batch).

The output is an MP4 (H.264, yuv420p, the input's audio copied) or, for a name without a suffix, a folder of
PNG frames. Frames are finished one after another; Ctrl-C (or SIGTERM in the command) keeps the finished frames
in the checkpoint ``OUTPUT_STEM.ckpt.pt`` and writes them as a playable partial video marked
``interrupted_at``; ``--resume`` continues with the next frame (or the interrupted frame's next iteration).

Each finished frame is also kept on disk as it is made, in ``.OUTPUT_NAME.frames/`` beside the output (lossless
PNG, with the run's settings and input digests in ``run.json``), so that a run that could not save anything
(``kill -9``, a power cut) loses at most the frame under way: the same command run again continues after the
kept frames, and gives what an uninterrupted run gives (each frame starts from the previous one as written,
8-bit). The folder is removed once the output is written.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import check_output_path
from .._job import Job
from .._options import option
from ..errors import ConfigError, InputError
from .config import VideoStyleConfig

__all__ = ["VideoJob", "VideoOutput", "CHECKPOINT_FORMAT", "OUTPUT_SUFFIXES"]

CHECKPOINT_FORMAT = "stylekit-video-checkpoint/1"
#: The format tag of ``run.json`` in the kept-frames folder.
FRAMES_FORMAT = "stylekit-video-frames/1"
#: What a video job writes: an MP4, or (no suffix) a folder of PNG frames.
OUTPUT_SUFFIXES = (".mp4", "")


@dataclass(frozen=True)
class VideoOutput:
    """What a video job writes besides the frames' pixels.

    Examples
    --------
    >>> VideoOutput(crf=23).crf
    23
    >>> VideoOutput(crf=60)
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: --crf must be an integer from 0 to 51, got 60
    """

    crf: int = option(18, type=int, group="Input and output",
                      help="H.264 quality, 0-51: lower is better and larger (constant rate factor).")
    frames_dir: str | None = option(None, group="Input and output", metavar="DIR",
                                    show=lambda v: "none" if v is None else v,
                                    help="Also write the stylized frames to DIR as PNG files.")

    def __post_init__(self) -> None:
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be an integer from 0 to 51, got {self.crf!r}")


class VideoJob(Job):
    """One stylized clip: ``content`` (a video file) painted in the style of ``styles`` (images) under a
    :class:`VideoStyleConfig`; ``options`` is a :class:`VideoOutput`.

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> from stylekit.image.io import save_image
    >>> from stylekit.video.io import VideoInfo, write_video
    >>> folder = Path(tempfile.mkdtemp())
    >>> info = VideoInfo(path="", codec="h264", width=32, height=24, frames=2, pts=(0, 1),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video((torch.rand(2, 24, 32, 3) * 255).to(torch.uint8), folder / "clip.mp4", info=info)
    >>> painting = save_image(torch.rand(1, 3, 32, 32), folder / "painting.png")
    >>> job = VideoJob(clip, [painting], folder / "out.mp4", VideoStyleConfig(iterations=1, scales=1))
    >>> job.check()
    >>> _ = job.run()
    >>> job.status()[0]
    'done'
    """

    medium = "video"
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, content, styles, output, config: VideoStyleConfig | None = None, *,
                 options: VideoOutput | None = None, **kw) -> None:
        super().__init__(content, styles, output, config or VideoStyleConfig(), **kw)
        self.options = options or VideoOutput()
        self._frames = self._info = self._styles = None
        self.frames_kept = 0
        self._inputs_sha256 = ""

    @property
    def folder(self) -> bool:
        """Whether the output is a folder of PNG frames (a name without a suffix)."""
        return self.output.suffix == ""

    @property
    def frames_dir(self) -> Path | None:
        return Path(self.options.frames_dir) if self.options.frames_dir else None

    # --- planning ----------------------------------------------------------------------------------------

    def check_output(self) -> None:
        if self.output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ConfigError(f"{self.output}: unsupported output format {self.output.suffix}; use .mp4, or a "
                              "name without a suffix for a folder of PNG frames")

    def check(self) -> None:
        """Plan (:meth:`Job.check`), for a folder output and the ``--frames-dir`` folder too."""
        if self.folder:
            self.overwrite = self.overwrite or self._resumes_partial()
            self._check_folder(self.output, self.overwrite)
            self._check_checkpoint()
        else:
            super().check()
        self._check_work_dir()
        if self.frames_dir is not None:
            if self.frames_dir.resolve() == self.output.resolve():
                raise ConfigError(f"{self.frames_dir}: --frames-dir is the output")
            self._check_folder(self.frames_dir, self.overwrite)

    def _resumes_partial(self) -> bool:
        if self.resume is None:
            return False
        self.load_resume()
        return self.status()[0] == "partial"

    def _check_folder(self, folder: Path, overwrite: bool) -> None:
        from .io import is_frames_folder
        parent = folder.parent if str(folder.parent) else Path(".")
        if not parent.is_dir():
            raise ConfigError(f"{folder}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"{folder}: output folder {parent} is not writable")
        if folder.exists() and not is_frames_folder(folder):
            raise ConfigError(f"{folder}: exists and is not a folder of stylekit frames; it is never replaced")
        if folder.exists() and not overwrite:
            raise ConfigError(f"{folder}: already exists (use --overwrite to replace it)")
        if any(folder.resolve() == Path(p).resolve() for p in self.inputs):
            raise ConfigError(f"{folder}: output path is the same as an input")

    @property
    def work_dir(self) -> Path:
        """Where finished frames are kept while the run goes: ``.OUTPUT_NAME.frames`` beside the output."""
        return self.output.with_name(f".{self.output.name}.frames")

    def _check_work_dir(self) -> None:
        work = self.work_dir
        ours = work.is_dir() and (_frames_manifest(work) is not None or not any(work.iterdir()))
        if work.is_symlink() or (work.exists() and not ours):
            raise ConfigError(f"{work}: exists and is not stylekit's folder of kept frames; a video run needs "
                              "that name (move it, or choose another output)")

    def kept_frames(self) -> dict | None:
        """The frames an earlier run of these settings on these inputs kept in :attr:`work_dir` (it ended
        without saving: ``kill -9``), as a resume state; None when there are none."""
        import numpy as np
        import torch
        from PIL import Image

        from .._job import settings_digest
        meta = _frames_manifest(self.work_dir)
        if meta is None or meta.get("settings_sha256") != settings_digest(self.settings()) \
                or meta.get("inputs_sha256") != (self._inputs_sha256 or self.inputs_digest()):
            return None
        frames, shape = [], tuple(self.load()[0].shape[1:])
        for i, seconds in enumerate(meta["seconds"]):
            try:
                with Image.open(self.work_dir / f"{i + 1:06d}.png") as im:
                    a = np.asarray(im.convert("RGB"))
            except (OSError, ValueError):
                break
            if a.shape != shape:
                break
            frames.append(torch.from_numpy(a.copy()))
        if not frames:
            return None
        return {"frames": torch.stack(frames), "frame": None, "seconds": list(meta["seconds"][:len(frames)])}

    def _keep_frame(self, p, seconds: list[float]) -> None:
        """Write the finished frame ``p`` (a FrameProgress) to :attr:`work_dir`, then its entry in run.json."""
        from PIL import Image

        from .._job import settings_digest
        from .pipeline import to_frame
        work = self.work_dir
        work.mkdir(exist_ok=True)
        name = work / f"{p.frame:06d}.png"
        tmp = name.with_suffix(".png.part")
        Image.fromarray(to_frame(p.image).numpy()).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, name)
        seconds.append(float(p.seconds))
        meta = {"format": FRAMES_FORMAT, "settings_sha256": settings_digest(self.settings()),
                "inputs_sha256": self._inputs_sha256, "seconds": seconds}
        tmp = work / "run.json.part"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, work / "run.json")

    def _remove_work_dir(self) -> None:
        """Remove the kept frames (only the files this job writes there)."""
        work = self.work_dir
        if work.is_symlink() or not work.is_dir():
            return
        for f in work.iterdir():
            if re.fullmatch(r"\d{6}\.png(\.part)?|run\.json(\.part)?", f.name) and f.is_file():
                f.unlink()
        with contextlib.suppress(OSError):
            work.rmdir()

    def _check_checkpoint(self) -> None:
        if self.checkpoint.exists() and not self._is_our_checkpoint(self.checkpoint):
            raise ConfigError(f"{self.checkpoint}: exists and is not a stylekit video checkpoint; an "
                              "interrupted run would need that name (move the file, or choose another output)")
        check_output_path(self.checkpoint, overwrite=True, inputs=self.inputs)

    def extra_inputs(self) -> list[Path]:
        from ..image.job import ImageJob
        return ImageJob.extra_inputs(self)   # the image settings' files (an init image): one set for every frame

    def output_settings(self) -> dict:
        return {"crf": self.options.crf} if not self.folder else {}

    def check_state(self, state: dict) -> dict:
        import torch
        frames, frame = state.get("frames"), state.get("frame")
        if not (torch.is_tensor(frames) and frames.dtype == torch.uint8 and frames.dim() == 4
                and isinstance(state.get("seconds"), list) and (frame is None or isinstance(frame, dict))):
            raise InputError(f"{self.resume}: damaged stylekit video checkpoint (frames)")
        return state

    def steps_done(self, state: dict) -> int:
        return int(state["frames"].shape[0])

    def total_steps(self) -> int:
        return int(self.load()[0].shape[0])

    def describe_step(self, p) -> str:
        # called when frame p.frame is finished: name the frame now under way (the bar counts the finished)
        return f"frame {min(p.frame + 1, p.frames)}/{p.frames}"

    def scale_shapes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of each scale the first frame goes through (later frames run the last only):
        fewer than ``scales`` when the frame size leaves no room for them above ``min_size``."""
        import dataclasses

        from ..image.pipeline import _shapes
        hw = tuple(self.load()[0].shape[1:3])
        return _shapes(dataclasses.replace(self.config.image_config(), size=max(hw)), hw, max(hw))

    def notes(self) -> list[str]:
        n, asked = len(self.scale_shapes()), self.config.scales
        if n >= asked:
            return []
        size = max(self.load()[0].shape[1:3])
        return [f"note: {n} of --scales {asked} will run on the first frame: {size} px frames leave no room for "
                f"more above --min-size {self.config.min_size} (lower --min-size, or raise --size)"]

    def describe_result(self, result) -> str:
        kept = f"; the first {self.frames_kept} kept by an earlier run that was stopped" if self.frames_kept else ""
        return f"{result.frames} frames, {result.size[1]}x{result.size[0]}{kept}"

    # --- running -------------------------------------------------------------------------------------------

    def load(self):
        """Read the video and the styles now (once), so that a bad file fails before any long work; a frame
        size over the memory budget is refused here too."""
        if self._frames is None:
            from .._device import resolve_device
            from ..image.io import load_image
            from .io import mp4_audio_check, read_video
            frames, info = read_video(self.source, size=self.config.resolved_size(resolve_device(self.config.device)))
            styles = [load_image(s) for s in self.styles]
            if not self.folder:
                mp4_audio_check(info)
            self._check_memory(tuple(frames.shape[1:3]))
            self._frames, self._info, self._styles = frames, info, styles
        return self._frames, self._styles

    def _check_memory(self, hw: tuple[int, int]) -> None:
        import dataclasses

        from ..image.pipeline import estimate_image_run
        estimate_image_run(hw, config=dataclasses.replace(self.config.image_config(), size=max(hw)),
                           calibrate=False)

    def estimate(self):
        """The estimated peak memory and time of the first frame (``--dry-run``)."""
        import dataclasses

        from ..image.pipeline import estimate_image_run
        hw = tuple(self.load()[0].shape[1:3])
        return estimate_image_run(hw, config=dataclasses.replace(self.config.image_config(), size=max(hw)))

    @classmethod
    def style_targets(cls, styles: Sequence, config: VideoStyleConfig, names: Sequence[str] | None = None):
        from ..image.pipeline import style_targets
        return style_targets(list(styles), config=config.image_config(), style_names=names)

    def stylize(self, *, callback: Callable | None, resume: dict | None, targets: Any):
        from .pipeline import stylize_video
        frames, styles = self.load()
        self._inputs_sha256 = self.inputs_digest()     # read once: kept frames are checked and recorded with it
        if resume is None:
            resume = self.kept_frames()
            self.frames_kept = 0 if resume is None else int(resume["frames"].shape[0])
        seconds: list[float] = []
        if resume is not None:
            from .pipeline import FrameProgress, to_image
            for i, frame in enumerate(resume["frames"]):
                self._keep_frame(FrameProgress(i + 1, len(frames), float(resume["seconds"][i]) if
                                               i < len(resume["seconds"]) else 0.0, {}, to_image(frame)), seconds)

        def on_frame(p):
            self._keep_frame(p, seconds)
            return callback(p) if callback is not None else None

        return stylize_video(frames, targets if targets is not None else styles, config=self.config,
                             on_frame=on_frame, resume=resume, style_names=[str(s) for s in self.styles])

    def finished(self) -> None:
        super().finished()
        self._remove_work_dir()

    def metadata(self, seconds: float, **extra) -> dict:
        from .._device import resolve_device
        meta = super().metadata(seconds, **extra)
        meta["device"] = str(resolve_device(self.config.device))
        if self._info is not None:
            meta["video"] = self._info.to_dict()
        if self._frames is not None:
            meta["scales_run"] = [f"{w}x{h}" for h, w in self.scale_shapes()]   # the first frame's
        return meta

    def write(self, result, path: Path, metadata: dict, *, overwrite: bool) -> None:
        from .io import write_frames, write_video
        if self.folder:
            write_frames(result.data, path, metadata=metadata, overwrite=overwrite)
        else:
            write_video(result.data, path, info=self._info, metadata=metadata, overwrite=overwrite,
                        crf=self.options.crf, audio_from=self.source)
        if self.frames_dir is not None:
            write_frames(result.data, self.frames_dir, metadata=metadata, overwrite=True)

    @classmethod
    def read_metadata(cls, path: Path) -> dict:
        from .io import read_metadata
        return read_metadata(path)


def _frames_manifest(work: Path) -> dict | None:
    """The ``run.json`` of a kept-frames folder, or None when it is not one."""
    try:
        meta = json.loads((work / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(meta, dict) and meta.get("format") == FRAMES_FORMAT and isinstance(meta.get("seconds"), list)
            and all(isinstance(x, (int, float)) for x in meta["seconds"])):
        return None
    return meta
