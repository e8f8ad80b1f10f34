"""The pieces of ``stylekit serve`` without a server: snapshots (size, throttle, stop), frames, form values."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stylekit.errors import ConfigError
from stylekit.optim import Progress
from stylekit.serve.config import ServeConfig
from stylekit.serve.frames import image_frame, spectrogram_frame
from stylekit.serve.runs import MAX_PREVIEW_EDGE, StopRequested, _Publisher
from stylekit.serve.settings import parse_settings


def _run(medium="image", preserve_color="none"):
    return SimpleNamespace(medium=medium, config=SimpleNamespace(preserve_color=preserve_color), steps=[],
                           stop=threading.Event(), frame=None, frame_version=0, first_preview_s=None, started=0.0)


def _progress(x, step=1):
    return Progress(step, 10, 1.5, {"content": 0.5, "style": 1.0}, 0.1 * step, x)


def test_snapshots_are_throttled_by_steps_and_time_and_stop_is_an_interrupt():
    run = _run()
    every2 = _Publisher(run, None, ServeConfig(preview_every=2, preview_interval=0), 0)
    x = torch.rand(1, 3, 8, 12)
    for i in range(1, 7):
        every2(_progress(x, i))
    assert [s["i"] for s in run.steps] == [1, 2, 3, 4, 5, 6] and run.steps[0]["terms"] == {"content": 0.5, "style": 1.0}
    assert run.frame_version == 3                         # steps 2, 4, 6
    slow = _run()
    once = _Publisher(slow, None, ServeConfig(preview_interval=3600), 4)
    for i in range(5):
        once(_progress(x, i))
    assert slow.frame_version == 1 and slow.steps[0]["i"] == 5     # counting goes on from the steps done
    slow.stop.set()
    with pytest.raises(StopRequested):
        once(_progress(x))
    assert issubclass(StopRequested, KeyboardInterrupt)           # the pipelines' Ctrl-C path


def test_an_image_snapshot_is_the_clamped_iterate_scaled_to_the_preview_size():
    run = _run()
    pub = _Publisher(run, None, ServeConfig(preview_interval=0), 0)
    x = torch.full((1, 3, 2, 3), 0.5)
    x[0, 0, 0, 0], x[0, 1, 1, 2] = 1.7, -0.3                      # L-BFGS iterates leave [0, 1]
    pub(_progress(x))
    f = run.frame
    px = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
    assert (f.width, f.height, f.channels) == (3, 2, 3)
    assert px[0, 0, 0] == 255 and px[1, 2, 1] == 0 and px[0, 1, 2] == 128
    pub(_progress(torch.rand(1, 3, 600, 2400)))
    assert (run.frame.width, run.frame.height) == (MAX_PREVIEW_EDGE, MAX_PREVIEW_EDGE // 4)


def test_a_sound_snapshot_is_the_chunks_spectrogram_low_bands_at_the_bottom():
    run = _run("audio")
    pub = _Publisher(run, None, ServeConfig(preview_interval=0), 0)
    z = torch.zeros(1, 1, 4, 5)
    z[0, 0, 0] = 1.0                                              # the lowest band loud
    pub(_progress(z))
    f = run.frame
    px = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width)
    assert (f.width, f.height, f.channels) == (5, 4, 1)
    assert (px[-1] == 255).all() and (px[:-1] == 0).all()


def test_spectrogram_frames_show_80_db_below_the_peak_and_long_ones_are_pooled():
    spec = np.log(np.array([[1.0, 1e-2, 1e-4, 1e-6]], np.float32))   # 0, -40, -80, -120 dB
    f = spectrogram_frame(spec)
    px = list(np.frombuffer(f.data, np.uint8))
    assert px[0] == 255 and abs(int(px[1]) - 127.5) == 0.5 and px[2:] == [0, 0]
    wide = spectrogram_frame(np.zeros((3, 5000), np.float32), span=(0.0, 1.0))
    assert wide.height == 3 and wide.width <= 1200
    assert image_frame(torch.zeros(3, 2, 2)).data == bytes(12)


def test_form_values_parse_as_the_command_line_parses_them():
    cfg = parse_settings("image", {"size": "64", "style_blend": "1,3", "preserve_color": "luminance", "seed": 7,
                                   "iterations": " ", "style_weight": 2.5})
    assert (cfg.size, cfg.style_blend, cfg.preserve_color, cfg.seed, cfg.style_weight) == (64, (1.0, 3.0), "luminance",
                                                                                          7, 2.5)
    assert cfg.iterations == 60                                   # empty: the config's default
    assert parse_settings("audio", {"steps": "5", "init": "noise"}).steps == 5
    for medium, values, needle in [("image", {"size": "1e3"}, "valid integer"), ("image", {"seed": True}, "text or"),
                                   ("image", {"content_mask": "/etc/passwd"}, "unknown"), ("video", {}, "medium"),
                                   ("audio", {"steps": "0"}, "steps"), ("image", ["size"], "object")]:
        with pytest.raises(ConfigError, match=needle):
            parse_settings(medium, values)
