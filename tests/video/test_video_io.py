"""Video files <-> frames: frame count, timing, rotation, audio and settings survive a round trip."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from stylekit.errors import ConfigError, InputError
from stylekit.video.io import (frame_shape, probe_video, read_metadata, read_video, write_frames,
                               write_video)

from _video_clips import H, W, audio_packets, make_clip, pattern


def test_frame_shape_keeps_the_aspect_with_even_sides():
    assert frame_shape(32, 48, 32) == (20, 32)
    assert frame_shape(1080, 1920, 384) == (216, 384)
    assert frame_shape(48, 32, 31) == (30, 20)
    assert all(v % 2 == 0 for v in frame_shape(333, 517, 101))


def test_read_gives_the_frames_upright_and_scaled(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=3)
    frames, info = read_video(clip)
    assert frames.shape == (3, H, W, 3) and frames.dtype == torch.uint8
    assert (frames[0].float() - torch.from_numpy(pattern(0)).float()).abs().mean() < 8   # H.264, not lossless
    assert info.frames == 3 and info.rate == 10 and info.audio == ("aac",) and not info.variable_rate
    assert read_video(clip, size=32)[0].shape == (3, 20, 32, 3)
    rotated = make_clip(tmp_path / "r.mov", frames=2, rotation=90)
    frames, info = read_video(rotated)
    assert info.rotation == 90 and frames.shape == (2, W, H, 3) and info.display_size == (W, H)


@pytest.mark.parametrize("name,kw", [("c.mp4", {}), ("c.mov", {"rotation": 90}), ("c.mkv", {"pts": [0, 1, 3, 4, 7]}),
                                     ("a.mp4", {"sar": Fraction(4, 3), "rotation": 270}),
                                     ("c.gif", {"codec": "gif", "audio": False}),
                                     ("c.webm", {"codec": "libvpx-vp9", "audio": False})])
def test_round_trip_keeps_count_timing_rotation_and_audio(tmp_path, name, kw):
    clip = make_clip(tmp_path / name, frames=5, **kw)
    frames, info = read_video(clip)
    out = write_video(255 - frames, tmp_path / "out.mp4", info=info, metadata={"a": [1, "é"]}, audio_from=clip)
    back, again = read_video(out)
    assert back.shape == frames.shape
    assert again.frames == info.frames and again.rotation == info.rotation
    assert again.sample_aspect_ratio == info.sample_aspect_ratio == kw.get("sar")
    times = [t * info.time_base for t in info.pts]
    assert [t * again.time_base for t in again.pts] == times          # every timestamp, so the rate too
    assert again.variable_rate == ("pts" in kw)
    assert audio_packets(out) == audio_packets(clip)                   # copied, not re-encoded
    assert read_metadata(out) == {"a": [1, "é"]}
    # a GIF's dithered 8-bit palette loses more in 4:2:0 chroma
    assert (back.float() - (255 - frames).float()).abs().mean() < (16 if name.endswith(".gif") else 6)


def test_written_video_is_h264_yuv420p(tmp_path):
    import av
    clip = make_clip(tmp_path / "c.mp4", frames=2)
    frames, info = read_video(clip, size=32)
    write_video(frames, tmp_path / "o.mp4", info=info)
    with av.open(str(tmp_path / "o.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.width, cc.height) == ("h264", "yuv420p", 32, 20)
        assert not c.streams.audio


def test_write_never_clobbers_and_leaves_nothing_on_failure(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=2)
    frames, info = read_video(clip)
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(ConfigError, match="already exists"):
        write_video(frames, out, info=info)
    assert out.read_bytes() == b"precious"
    with pytest.raises(ConfigError):
        write_video(frames[:0], tmp_path / "empty.mp4", info=info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "o.mp4"]


def test_frames_folder(tmp_path):
    frames = torch.from_numpy(pattern(0))[None].repeat(3, 1, 1, 1)
    out = write_frames(frames, tmp_path / "frames", metadata={"k": 1})
    assert sorted(p.name for p in out.iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert read_metadata(out)["k"] == 1
    with pytest.raises(ConfigError, match="already exists"):
        write_frames(frames, out)
    write_frames(frames[:2], out, overwrite=True)
    assert len(list(out.iterdir())) == 2
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a folder of frames"):
        write_frames(frames, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_probe_refuses_what_is_not_a_video(tmp_path):
    from PIL import Image
    png = tmp_path / "still.png"
    Image.fromarray(pattern(0)).save(png)
    with pytest.raises(InputError, match="still image"):
        probe_video(png)
    with pytest.raises(InputError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
