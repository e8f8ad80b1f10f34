"""Video files <-> frames, through PyAV (the only module that imports ``av``).

Frames are ``(N, H, W, 3)`` uint8 RGB tensors, upright (a stream's rotation applied), at the size a run works
at. A video is read whole before any work, so a file that cannot be used fails at once, with one line. What a
written video keeps of its input: the frame count and every frame's timestamp (so a variable frame rate stays
as it was), the rotation (the frames are turned back and the display matrix copied), the pixel aspect ratio,
and each audio track, copied packet for packet (not re-encoded). Video is H.264 in yuv420p; the settings that
made it are in the container's ``stylekit`` metadata tag. A folder output holds ``frame_000001.png``, ... with
the settings embedded in each PNG.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from .._io import atomic_write
from ..errors import ConfigError, InputError

__all__ = ["VideoInfo", "read_video", "probe_video", "write_video", "write_frames", "read_metadata",
           "frame_shape", "mp4_audio_check", "INPUT_SUFFIXES", "FRAME_PATTERN", "METADATA_KEY", "is_frames_folder"]

#: The containers ``stylekit video`` takes (anything FFmpeg reads also works; these are the ones tested).
INPUT_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".gif")
#: The name of the container metadata tag that holds the settings.
METADATA_KEY = "stylekit"
#: The name of frame ``i`` (1-based) in a folder of frames.
FRAME_PATTERN = "frame_{:06d}.png"
# FFmpeg demuxers of single pictures: such a file is an image, not a video.
_STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "image2pipe")


def _av():
    try:
        import av
    except ImportError:
        raise ConfigError("video needs PyAV: pip install 'stylekit[video]' (or av)") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says of its video stream and what a written video must keep.

    ``width`` and ``height`` are the stored frame's (before rotation); ``rotation`` is the display rotation in
    degrees, counterclockwise (a multiple of 90); ``pts`` the timestamps of the frames in ``time_base``;
    ``audio`` the codec names of the audio tracks.

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> probe_video(clip).frames, probe_video(clip).display_size
    (3, (16, 24))
    """

    path: str
    codec: str
    width: int
    height: int
    frames: int
    pts: tuple[int, ...]
    time_base: Fraction
    rate: Fraction
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None
    audio: tuple[str, ...] = ()

    @property
    def variable_rate(self) -> bool:
        """Whether the frames are not evenly spaced in time (the timestamps are kept as they are)."""
        steps = {b - a for a, b in zip(self.pts, self.pts[1:])}
        return len(steps) > 1 and max(steps) - min(steps) > 1

    @property
    def display_size(self) -> tuple[int, int]:
        """``(height, width)`` as shown, after the rotation."""
        return (self.width, self.height) if self.rotation % 180 else (self.height, self.width)

    def to_dict(self) -> dict:
        """The parts a reader of the output wants (JSON-ready)."""
        return {"frames": self.frames, "rate": str(self.rate), "variable_rate": self.variable_rate,
                "rotation": self.rotation, "audio_tracks": len(self.audio)}


def frame_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` of frames of a ``height x width`` video scaled to long edge ``size``, each rounded down to an
    even number (H.264 in 4:2:0 needs even sides).

    Examples
    --------
    >>> frame_shape(1080, 1920, 256)
    (144, 256)
    """
    s = size / max(height, width)
    return max(2, int(round(height * s)) // 2 * 2), max(2, int(round(width * s)) // 2 * 2)


def _open(path: str | os.PathLike):
    """The container and its video stream; InputError for a file that is no video."""
    av = _av()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        container = av.open(str(p))
    except av.FFmpegError as e:
        raise InputError(f"{p}: not a video file ({_why(e)})") from None
    if container.format.name in _STILL_FORMATS or any(n in _STILL_FORMATS for n in container.format.name.split(",")):
        container.close()
        raise InputError(f"{p}: is a still image, not a video (use stylekit image)")
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        container.close()
        raise InputError(f"{p}: has no video stream")
    return container, streams[0]


def _why(e: Exception) -> str:
    return getattr(e, "strerror", None) or type(e).__name__


class _Corrupt(Exception):
    """A frame the decoder marked corrupt."""


def _rotation(frame) -> int:
    r = int(round(getattr(frame, "rotation", 0) or 0))
    return r % 360 if r % 90 == 0 else 0


def _decode(path: str | os.PathLike, on_frame: Callable) -> VideoInfo:
    """Decode every frame of ``path``'s video stream, calling ``on_frame(av_frame)``; returns its info."""
    av = _av()
    p = Path(path)
    container, stream = _open(p)
    pts: list[int | None] = []
    rotation = 0
    with container:
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.is_corrupt:
                        raise _Corrupt
                    if not pts:
                        rotation = _rotation(frame)
                    pts.append(frame.pts)
                    on_frame(frame)
        except (av.FFmpegError, _Corrupt):
            raise InputError(f"{p}: the video stream is corrupt after frame {len(pts)}; stopped there and "
                             "wrote nothing (cut the clip before that point, or re-encode it)") from None
        if not pts:
            raise InputError(f"{p}: the video stream has no frames")
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        time_base = stream.time_base or Fraction(1, 1) / rate
        if any(t is None for t in pts) or any(b <= a for a, b in zip(pts, pts[1:])):
            # timestamps missing or not increasing: evenly spaced frames at the stream's rate
            time_base, pts = Fraction(1, 1) / Fraction(rate), list(range(len(pts)))
        sar = cc.sample_aspect_ratio if cc.sample_aspect_ratio not in (None, Fraction(1), Fraction(0)) else None
        audio = tuple(s.codec_context.name for s in container.streams.audio)
        return VideoInfo(str(p), cc.name, cc.width, cc.height, len(pts), tuple(int(t) for t in pts),
                         Fraction(time_base), Fraction(rate), rotation, sar, audio)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Decode ``path`` once and say what it holds (InputError for a file that is not a usable video).

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> probe_video(clip).codec, probe_video(clip).rate
    ('h264', Fraction(10, 1))
    """
    return _decode(path, lambda frame: None)


def read_video(path: str | os.PathLike, *, size: int | None = None) -> tuple[torch.Tensor, VideoInfo]:
    """Every frame of ``path``, upright, scaled to long edge ``size`` (sides rounded down to even numbers).

    Returns
    -------
    frames : torch.Tensor
        ``(N, H, W, 3)`` uint8 RGB.
    info : VideoInfo

    Raises
    ------
    InputError
        not a video; no video stream; no frames; corrupt data (the frame after which it is).

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> frames, info = read_video(clip, size=12)      # long edge 12, sides even
    >>> frames.shape, frames.dtype
    (torch.Size([3, 8, 12, 3]), torch.uint8)
    """
    from ..image.io import resize
    out: list[torch.Tensor] = []
    first: list[int] = []

    def keep(frame) -> None:
        if not first:
            first.append(_rotation(frame))
        img = torch.from_numpy(frame.to_ndarray(format="rgb24"))
        img = torch.rot90(img, first[0] // 90, (0, 1)) if first[0] else img
        if size is not None:
            hw = frame_shape(img.shape[0], img.shape[1], size)
            if hw != tuple(img.shape[:2]):
                x = resize(img.permute(2, 0, 1)[None].float() / 255, hw)
                img = (x[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8)
        out.append(img.contiguous())

    info = _decode(path, keep)
    shapes = {tuple(f.shape) for f in out}
    if len(shapes) > 1:
        raise InputError(f"{path}: the frame size changes within the video ({len(shapes)} sizes); "
                         "re-encode it at one size")
    return torch.stack(out), info


def _upright_to_stored(frame: torch.Tensor, rotation: int) -> torch.Tensor:
    return torch.rot90(frame, -(rotation // 90), (0, 1)).contiguous() if rotation else frame


def write_video(frames: torch.Tensor, path: str | os.PathLike, *, info: VideoInfo, metadata: dict | None = None,
                overwrite: bool = False, crf: int = 18, audio_from: str | os.PathLike | None = None) -> Path:
    """Write ``frames`` ((N, H, W, 3) uint8, upright) as an H.264 (yuv420p) MP4, atomically.

    The first N timestamps, the rotation and the pixel aspect ratio of ``info`` are kept; every audio track of
    ``audio_from`` is copied unchanged; ``metadata`` is stored as JSON in the container's ``stylekit`` tag.

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> clip.name, read_video(clip)[0].shape
    ('clip.mp4', torch.Size([3, 16, 24, 3]))
    """
    av = _av()
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or not len(frames):
        raise ConfigError(f"frames must be a non-empty (N, H, W, 3) uint8 tensor, got {tuple(frames.shape)}")
    if len(frames) > len(info.pts):
        raise ConfigError(f"{len(frames)} frames but only {len(info.pts)} timestamps")

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "use_metadata_tags"}) as out:
            if metadata is not None:
                out.metadata[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str)
            stream = _video_stream(out, frames, info, crf)
            audio = _audio_streams(out, audio_from)
            for i, img in enumerate(frames):
                f = av.VideoFrame.from_ndarray(_upright_to_stored(img, info.rotation).numpy(), format="rgb24")
                f.pts, f.time_base = info.pts[i], info.time_base
                for packet in stream.encode(f):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            _copy_audio(out, audio_from, audio)

    return atomic_write(path, encode, overwrite=overwrite)


def _video_stream(out, frames: torch.Tensor, info: VideoInfo, crf: int):
    h, w = frames.shape[1:3]
    if info.rotation % 180:
        h, w = w, h
    stream = out.add_stream("libx264", rate=info.rate, options={"crf": str(crf), "preset": "medium"})
    stream.width, stream.height, stream.pix_fmt = int(w), int(h), "yuv420p"
    stream.time_base = stream.codec_context.time_base = info.time_base
    if info.rotation:
        stream.set_display_rotation(info.rotation)
    if info.sample_aspect_ratio is not None:
        stream.sample_aspect_ratio = info.sample_aspect_ratio
    return stream


def mp4_audio_check(info: VideoInfo) -> None:
    """Refuse, with ConfigError, a video whose audio an MP4 cannot hold unchanged.

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> mp4_audio_check(probe_video(clip))      # no audio track: nothing to refuse
    """
    if not info.audio:
        return
    import io
    av = _av()
    with av.open(io.BytesIO(), "w", format="mp4") as probe:
        bad = [a for a in info.audio if a not in probe.supported_codecs]
    if bad:
        raise ConfigError(f"{info.path}: its {bad[0]} audio cannot be copied into an MP4 (write a folder of "
                          "PNG frames instead, or convert the audio first)")


def _audio_streams(out, source) -> list:
    """An output stream for each audio track of ``source`` (same codec and parameters, for packet copies)."""
    if source is None:
        return []
    av = _av()
    with av.open(str(source)) as c:
        return [(s.index, out.add_stream_from_template(s)) for s in c.streams.audio]


def _copy_audio(out, source, streams: list) -> None:
    if not streams:
        return
    av = _av()
    to = dict(streams)
    with av.open(str(source)) as c:
        for packet in c.demux(*[c.streams[i] for i in to]):
            if packet.dts is None:        # the flush packet at the end of each stream
                continue
            packet.stream = to[packet.stream.index]
            out.mux(packet)


def is_frames_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of frames this module wrote: only ``frame_NNNNNN.png`` files in it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> folder = write_frames(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), Path(tempfile.mkdtemp()) / "frames")
    >>> is_frames_folder(folder), is_frames_folder(folder.parent)
    (True, False)
    """
    import re
    p = Path(path)
    return p.is_dir() and all(re.fullmatch(r"frame_\d{6}\.png", n) for n in os.listdir(p))


def write_frames(frames: torch.Tensor, folder: str | os.PathLike, *, metadata: dict | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``frames`` ((N, H, W, 3) uint8) as ``folder/frame_000001.png``, ..., each with ``metadata``
    embedded. The folder appears whole or not at all; with ``overwrite`` it replaces a folder of frames (never
    any other folder).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> folder = write_frames(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), Path(tempfile.mkdtemp()) / "frames")
    >>> sorted(p.name for p in folder.iterdir())
    ['frame_000001.png', 'frame_000002.png']
    """
    from ..image.io import save_image
    out = Path(folder)
    if out.exists() and not (overwrite and is_frames_folder(out)):
        why = "use --overwrite to replace it" if is_frames_folder(out) else "and is not a folder of frames"
        raise ConfigError(f"{out}: already exists ({why})")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent or "."))
    try:
        for i, img in enumerate(frames, 1):
            save_image(img.permute(2, 0, 1)[None].float() / 255, tmp / FRAME_PATTERN.format(i), metadata=metadata)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_metadata(path: str | os.PathLike) -> dict:
    """The settings stored in a video written by :func:`write_video` or a folder by :func:`write_frames`
    (``{}`` when there are none).

    Examples
    --------
    >>> import tempfile, torch
    >>> from fractions import Fraction
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> frames = (torch.rand(3, 16, 24, 3) * 255).to(torch.uint8)               # three 24 x 16 RGB frames
    >>> info = VideoInfo(path="", codec="h264", width=24, height=16, frames=3, pts=(0, 1, 2),
    ...                  time_base=Fraction(1, 10), rate=Fraction(10))
    >>> clip = write_video(frames, folder / "clip.mp4", info=info, metadata={"seed": 0})
    >>> read_metadata(clip)
    {'seed': 0}
    """
    p = Path(path)
    if p.is_dir():
        from ..image.io import read_metadata as read_png
        first = p / FRAME_PATTERN.format(1)
        return read_png(first) if first.is_file() else {}
    av = _av()
    try:
        with av.open(str(p)) as c:
            text = c.metadata.get(METADATA_KEY)
    except av.FFmpegError:
        return {}
    try:
        meta = json.loads(text) if text else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}
