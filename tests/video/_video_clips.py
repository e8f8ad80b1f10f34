"""Tiny video clips made with PyAV inside the tests (no stored media): a few frames of 48x32."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

W, H, RATE = 48, 32, 10


def pattern(i: int, w: int = W, h: int = H, shift: int = 2) -> np.ndarray:
    """Frame ``i``: a smooth colourful picture moving ``shift`` px right per frame, with a bright square."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx = xx - shift * i
    r = 0.5 + 0.5 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    g = 0.5 + 0.5 * np.sin((xx + yy) / 6.0)
    b = 0.5 + 0.5 * np.cos(xx / 9.0 - yy / 4.0)
    img = np.stack([r, g, b], -1)
    img[8:16, (10 + shift * i) % (w - 8):(10 + shift * i) % (w - 8) + 8] = 1.0
    return (img * 255).astype(np.uint8)


def make_clip(path: Path, *, frames: int = 4, w: int = W, h: int = H, rate: int = RATE, audio: bool = True,
              rotation: int = 0, pts: list[int] | None = None, codec: str = "libx264",
              sar: Fraction | None = None) -> Path:
    """Write a clip: H.264 (or ``codec``) video, AAC mono audio as long as the video, optional rotation,
    pixel aspect ratio ``sar`` and explicit timestamps (in 1/``rate`` s units, for a variable frame rate)."""
    import av
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=rate)
        v.width, v.height = w, h
        v.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        if pts is not None:
            v.codec_context.time_base = v.time_base = Fraction(1, rate)
        if rotation:
            v.set_display_rotation(rotation)
        if sar is not None:
            v.sample_aspect_ratio = sar
        a = c.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], Fraction(1, rate)
            for p in v.encode(f.reformat(format=v.pix_fmt) if codec == "gif" else f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(int(8000 * frames / rate)) / 8000
            s = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(s, format="fltp", layout="mono")
            af.sample_rate = 8000
            for p in a.encode(af):
                c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def audio_only(path: Path) -> Path:
    """An MP4 with an AAC track and no video stream."""
    import av
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.float32), format="fltp", layout="mono")
        af.sample_rate = 8000
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)
    return path


def no_frames(path: Path) -> Path:
    """A video stream that holds no frame (an AVI: the containers that keep an empty stream)."""
    import av
    with av.open(str(path), "w", format="avi") as c:
        v = c.add_stream("mpeg4", rate=RATE)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        c.start_encoding()
    return path


def corrupt_middle(path: Path, frames: int = 20) -> Path:
    """A clip whose 11th video packet is garbled."""
    import av
    make_clip(path, frames=frames, audio=False)
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    pos, size = packets[frames // 2]
    for k in range(pos, pos + size):
        data[k] = (data[k] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    return path


def audio_packets(path: Path) -> list[bytes]:
    """The bytes of every audio packet, in order."""
    import av
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
