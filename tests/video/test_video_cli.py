"""`stylekit video` through click's CliRunner on tiny generated clips: outputs, interrupt and resume, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylekit.cli import cli
from stylekit.video.io import read_metadata, read_video

from _video_clips import audio_only, audio_packets, corrupt_middle, make_clip, no_frames

FAST = ["--size", "32", "--iterations", "3", "--warm-iterations", "2", "--scales", "1", "--device", "cpu", "-q"]


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", frames=4)


@pytest.fixture
def style(tmp_path):
    p = tmp_path / "style.png"
    yy, xx = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([((xx // 3) % 2) * 255, ((yy // 5) % 2) * 200, (((xx + yy) // 4) % 2) * 150],
                             -1).astype(np.uint8)).save(p)
    return p


def run(*args):
    return CliRunner().invoke(cli, ["video", *map(str, args)], catch_exceptions=False)


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())])


def test_mp4_output_keeps_count_rate_and_audio(tmp_path, clip, style):
    out = tmp_path / "out.mp4"
    r = run(clip, style, "-o", out, *FAST, "--frames-dir", tmp_path / "frames")
    assert r.exit_code == 0, r.output
    frames, info = read_video(out)
    source = read_video(clip)[1]
    assert frames.shape == (4, 20, 32, 3) and info.frames == 4 and info.rate == source.rate
    assert [t * info.time_base for t in info.pts] == [t * source.time_base for t in source.pts]
    assert audio_packets(out) == audio_packets(clip)
    meta = read_metadata(out)
    assert meta["config"]["temporal_weight"] == 100 and meta["config"]["iterations"] == 3
    assert meta["video"]["frames"] == 4 and "interrupted_at" not in meta
    assert meta["scales_run"] == ["32x20"]        # --scales 1
    assert png_frames(tmp_path / "frames").shape == (4, 20, 32, 3)
    assert not (tmp_path / "out.ckpt.pt").exists()


def test_png_folder_output_and_the_result_moves_to_the_style(tmp_path, clip, style):
    out = tmp_path / "frames_out"
    assert run(clip, style, "-o", out, *FAST).exit_code == 0
    frames = png_frames(out)
    source = read_video(clip, size=32)[0].numpy()
    assert frames.shape == source.shape and np.abs(frames.astype(float) - source).mean() > 2
    assert read_metadata(out)["config"]["size"] == 32
    assert "already exists" in one_line_error(run(clip, style, "-o", out, *FAST))
    assert run(clip, style, "-o", out, *FAST, "--overwrite").exit_code == 0


def test_independent_frames_are_the_image_pipelines(tmp_path, clip, style):
    # --temporal-weight 0: each frame is what stylize_image gives for it, from the same settings
    from stylekit.image import stylize_image
    from stylekit.video import stylize_video
    from stylekit.video.pipeline import to_frame, to_image
    frames = read_video(clip, size=32)[0][:2]
    res = stylize_video(frames, [style], size=32, iterations=3, scales=1, temporal_weight=0, device="cpu")
    for i in range(2):
        one = stylize_image(to_image(frames[i]), [style], size=32, iterations=3, scales=1, device="cpu")
        assert torch.equal(res.data[i], to_frame(one.data))


def _interrupt_at(monkeypatch, n):
    import stylekit.optim as optim
    real = optim._evaluate
    calls = {"n": 0}

    def interrupting(criterion, x):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(criterion, x)
    monkeypatch.setattr(optim, "_evaluate", interrupting)
    return real


# evaluations: frame 1 takes 1-3, frame 2 4-5, frame 3 6-7, frame 4 8-9
@pytest.mark.parametrize("stop_at,done", [(2, 0), (5, 1), (6, 2)])
def test_interrupt_then_resume_gives_the_uninterrupted_frames(tmp_path, clip, style, monkeypatch, stop_at, done):
    import stylekit.optim as optim
    full = tmp_path / "full"
    assert run(clip, style, "-o", full, *FAST).exit_code == 0
    real = _interrupt_at(monkeypatch, stop_at)
    part = tmp_path / "part"
    r = CliRunner().invoke(cli, ["video", str(clip), str(style), "-o", str(part), *FAST])
    assert r.exit_code == 130, r.output
    ckpt = tmp_path / "part.ckpt.pt"
    assert ckpt.exists()
    if done:
        assert len(list(part.iterdir())) == done and read_metadata(part)["interrupted_at"] == done
    else:
        assert not part.exists()
    monkeypatch.setattr(optim, "_evaluate", real)
    r = run(clip, style, "-o", part, *FAST, "--resume", ckpt)
    assert r.exit_code == 0, r.output
    assert np.array_equal(png_frames(part), png_frames(full))
    assert "interrupted_at" not in read_metadata(part) and not ckpt.exists()


class _Killed(BaseException):
    """A stop that saves nothing, like ``kill -9`` (no handler runs)."""


@pytest.mark.parametrize("killed_at,kept", [(5, 1), (8, 3)])
def test_a_run_killed_without_saving_continues_after_the_kept_frames(tmp_path, clip, style, monkeypatch,
                                                                       killed_at, kept):
    import stylekit.optim as optim
    full = tmp_path / "full.mp4"
    assert run(clip, style, "-o", full, *FAST).exit_code == 0
    real = optim._evaluate
    calls = {"n": 0}

    def killed(criterion, x):
        calls["n"] += 1
        if calls["n"] == killed_at:
            raise _Killed
        return real(criterion, x)
    monkeypatch.setattr(optim, "_evaluate", killed)
    out = tmp_path / "out.mp4"
    with pytest.raises(_Killed):
        run(clip, style, "-o", out, *FAST)
    work = tmp_path / ".out.mp4.frames"
    assert not out.exists() and not (tmp_path / "out.ckpt.pt").exists()
    assert sorted(f.name for f in work.iterdir()) == [f"{i:06d}.png" for i in range(1, kept + 1)] + ["run.json"]
    monkeypatch.setattr(optim, "_evaluate", real)
    calls["n"] = 0
    r = CliRunner().invoke(cli, ["video", str(clip), str(style), "-o", str(out), *FAST[:-1]],
                           catch_exceptions=False)     # the same command again, not quiet
    assert r.exit_code == 0, r.output
    assert f"the first {kept} kept by an earlier run" in r.output
    assert np.array_equal(read_video(out)[0], read_video(full)[0])
    assert not work.exists()


def test_a_folder_in_the_kept_frames_place_that_is_not_stylekits_is_refused(tmp_path, clip, style):
    work = tmp_path / ".out.mp4.frames"
    work.mkdir()
    (work / "mine.txt").write_text("keep me")
    line = one_line_error(run(clip, style, "-o", tmp_path / "out.mp4", *FAST))
    assert "kept frames" in line and (work / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "out.mp4").exists()


def test_fewer_scales_than_asked_are_said_and_recorded(tmp_path, clip, style):
    out = tmp_path / "out.mp4"
    args = [a for a in FAST if a != "-q"]
    args[args.index("--scales") + 1] = "3"
    r = CliRunner().invoke(cli, ["video", str(clip), str(style), "-o", str(out), *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "note: 1 of --scales 3 will run on the first frame" in r.output
    assert read_metadata(out)["scales_run"] == ["32x20"] and read_metadata(out)["config"]["scales"] == 3


def test_interrupted_mp4_is_a_playable_partial_video(tmp_path, clip, style, monkeypatch):
    _interrupt_at(monkeypatch, 6)
    out = tmp_path / "out.mp4"
    r = CliRunner().invoke(cli, ["video", str(clip), str(style), "-o", str(out), *FAST])
    assert r.exit_code == 130 and "--resume" in r.output
    frames, info = read_video(out)
    assert info.frames == 2 and read_metadata(out)["interrupted_at"] == 2


def text_file(path):
    path.write_text("not a video")
    return path


BAD = {
    "not a video": (lambda d: text_file(d / "text.mp4"), "not a video"),
    "no video stream": (lambda d: audio_only(d / "sound.mp4"), "no video stream"),
    "zero frames": (lambda d: no_frames(d / "empty.avi"), "no frames"),
    "corrupt": (lambda d: corrupt_middle(d / "broken.mp4"), "corrupt after frame"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, style, case):
    make, needle = BAD[case]
    bad = make(tmp_path)
    before = set(tmp_path.iterdir())
    line = one_line_error(run(bad, style, "-o", tmp_path / "out.mp4", *FAST))
    assert needle in line and str(bad) in line
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize("extra,needle", [
    (["-o", "OUT/out.avi"], "unsupported output format .avi"),
    (["-o", "OUT/out.mp4", "--max-memory", "0.000001"], "more than"),
    (["-o", "OUT/out.mp4", "--temporal-weight", "-1"], "temporal-weight"),
    (["-o", "OUT/out.mp4", "--warm-iterations", "0"], "warm-iterations"),
    (["-o", "OUT/out.mp4", "--crf", "99"], "crf"),
])
def test_bad_options_are_one_line_and_leave_nothing(tmp_path, clip, style, extra, needle):
    before = set(tmp_path.iterdir())
    args = [a.replace("OUT", str(tmp_path)) for a in extra]
    assert needle in one_line_error(run(clip, style, *FAST, *args))
    assert set(tmp_path.iterdir()) == before


def test_style_that_is_not_an_image(tmp_path, clip):
    line = one_line_error(run(clip, clip, "-o", tmp_path / "out.mp4", *FAST))
    assert "clip.mp4" in line


def test_batch_takes_a_video_with_an_image_style_and_skips_it_when_done(tmp_path, clip, style):
    out = tmp_path / "out"
    args = ["batch", str(clip), "--style", str(style), "-o", str(out), "--size", "32", "--iterations", "3",
            "--warm-iterations", "2", "--scales", "1", "--device", "cpu", "--workers", "0", "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    frames, _ = read_video(out / "clip.mp4")
    assert len(frames) == 4
    import json
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done"]
    r = CliRunner().invoke(cli, args)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert r.exit_code == 0 and [r["status"] for r in rows] == ["skipped"]
