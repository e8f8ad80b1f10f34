"""Interrupt, checkpoint and --resume for `stylekit audio`; the device option (CPU only here)."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stylekit._checkpoint import write_checkpoint
from stylekit._device import resolve_device
from stylekit.audio.config import AudioStyleConfig
from stylekit.audio.io import read_metadata
from stylekit.audio.job import CHECKPOINT_FORMAT, AudioJob
from stylekit.audio.pipeline import stylize_audio
from stylekit.errors import ConfigError, InputError, StylizeInterrupted

from _audio_data import SR, one_line_error, run, textureish, voiceish, write

# Several chunks (1 s, overlapping by 0.25 s) so that an interrupt can fall after a finished chunk.
SMALL = dict(steps=6, griffin_lim_iters=4, chunk_seconds=1.0, overlap_seconds=0.25, device="cpu")
CLI_SMALL = ["--steps", "6", "--griffin-lim-iters", "4", "--chunk-seconds", "1.0", "--overlap-seconds", "0.25",
             "--device", "cpu", "--float", "-q"]


@pytest.fixture
def clips():
    return (voiceish(2.5), SR), (textureish(1.0), SR)


@pytest.fixture
def wavs(tmp_path):
    return write(tmp_path / "content.wav", voiceish(2.5)), write(tmp_path / "style.wav", textureish(1.0))


def _interrupt_after(n_steps):
    count = {"n": 0}

    def callback(p):
        count["n"] += 1
        if count["n"] == n_steps:
            raise KeyboardInterrupt
    return callback


def save_checkpoint(path, *, config, inputs, state):
    """A checkpoint as :class:`AudioJob` writes it on Ctrl-C."""
    return write_checkpoint(path, CHECKPOINT_FORMAT, inputs, {"config": config.to_dict(), "state": state},
                            overwrite=True)


def load_checkpoint(path, *, inputs, output="out.wav"):
    """(config, state) of a checkpoint, read as ``--resume`` reads it."""
    job = AudioJob(inputs[0], inputs[1:], Path(path).parent / output, resume=path)
    state = job.load_resume()
    return job.config, state


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("stop_at", [3, 9, 17])   # in the first, second and third chunk
def test_resume_gives_the_uninterrupted_result(clips, stop_at):
    content, style = clips
    full = stylize_audio(content, style, **SMALL)
    with pytest.raises(StylizeInterrupted) as e:
        stylize_audio(content, style, callback=_interrupt_after(stop_at), **SMALL)
    progress = e.value.state
    assert progress["chunk"] == (stop_at - 1) // SMALL["steps"] and len(progress["done"]) == progress["chunk"]
    partial = e.value.result
    assert partial.interrupted and partial.samples.shape == full.samples.shape
    assert np.isfinite(partial.samples).all()
    resumed = stylize_audio(content, style, resume=_roundtrip(progress), **SMALL)
    np.testing.assert_allclose(resumed.samples, full.samples, atol=1e-4)


def test_resume_refuses_progress_of_other_inputs(clips):
    content, style = clips
    with pytest.raises(StylizeInterrupted) as e:
        stylize_audio(content, style, callback=_interrupt_after(9), **SMALL)
    with pytest.raises(ConfigError, match="not valid"):
        stylize_audio((voiceish(1.5), SR), style, resume=e.value.state, **SMALL)
    with pytest.raises(ConfigError, match="not valid"):
        stylize_audio(content, style, resume={"chunk": 5, "done": [], "state": None}, **SMALL)


def test_config_round_trips_through_plain_data():
    import json

    from stylekit.audio.config import SpectrogramConfig
    cfg = AudioStyleConfig(steps=7, widths=(3, 5), device="cpu", style_blend=(1.0, 3.0), threads=None,
                           spectrogram=SpectrogramConfig(kind="linear", fmax=8000.0))
    assert AudioStyleConfig.from_dict(_roundtrip(cfg.to_dict())) == cfg
    assert AudioStyleConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg     # JSON too (metadata)
    assert SpectrogramConfig.from_dict(cfg.spectrogram.to_dict()) == cfg.spectrogram
    assert AudioStyleConfig.from_dict({}) == AudioStyleConfig()
    for bad in ({"spectrogram": {}, "stepz": 3}, {"spectrogram": {"n_fftt": 3}}, {"steps": -1}, {"widths": "ab"},
                {"style_blend": [0, 0]}, {"spectrogram": 3}, "config", {"spectrogram": {"kind": "cqt"}}):
        with pytest.raises(ConfigError):
            AudioStyleConfig.from_dict(bad)


def test_cli_interrupt_writes_result_and_checkpoint_then_resume_matches(tmp_path, wavs, monkeypatch):
    import stylekit.optim as optim

    content, style = wavs
    ref = tmp_path / "ref.wav"
    assert run(content, style, "-o", ref, *CLI_SMALL).exit_code == 0

    real = optim.optimize
    count = {"n": 0}

    def interrupting(x0, criterion, *, callback=None, **kw):
        def cb(p):
            count["n"] += 1
            if count["n"] == 9:
                raise KeyboardInterrupt      # what Ctrl-C or SIGTERM (through stylekit._command.sigterm_as_interrupt) raises
            return callback(p) if callback is not None else None
        return real(x0, criterion, callback=cb, **kw)

    monkeypatch.setattr(optim, "optimize", interrupting)
    out = tmp_path / "out.wav"
    r = run(content, style, "-o", out, *CLI_SMALL)
    assert r.exit_code == 130, r.output
    ckpt = tmp_path / "out.ckpt.pt"
    assert out.exists() and ckpt.exists()
    assert "--resume" in r.output and str(ckpt) in r.output
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []    # no temp files left
    monkeypatch.setattr(optim, "optimize", real)
    meta = read_metadata(out)
    assert meta["interrupted_at"] == 8 and meta["inputs_sha256"]      # the best so far, marked as partial

    # the output is this run's own partial result: --resume replaces it without --overwrite
    r = run(content, style, "-o", out, "--resume", ckpt, *CLI_SMALL)
    assert r.exit_code == 0, r.output
    a, _ = sf.read(str(ref))
    b, _ = sf.read(str(out))
    np.testing.assert_allclose(b, a, atol=1e-4)
    assert not ckpt.exists() and "interrupted_at" not in read_metadata(out)
    assert read_metadata(out)["settings_sha256"] == read_metadata(ref)["settings_sha256"]


def test_resume_does_not_replace_a_foreign_file(tmp_path, wavs, monkeypatch):
    import stylekit.optim as optim

    content, style = wavs
    real = optim.optimize

    def interrupting(x0, criterion, *, callback=None, **kw):
        return real(x0, criterion, callback=_interrupt_after(2), **kw)

    monkeypatch.setattr(optim, "optimize", interrupting)
    out = tmp_path / "out.wav"
    assert run(content, style, "-o", out, *CLI_SMALL).exit_code == 130
    monkeypatch.setattr(optim, "optimize", real)
    write(out, voiceish(0.3))                      # someone else's file now has the output's name
    one_line_error(run(content, style, "-o", out, "--resume", tmp_path / "out.ckpt.pt", *CLI_SMALL), out)


def test_checkpoint_loads_with_weights_only_and_keeps_settings(tmp_path, wavs):
    content, style = wavs
    cfg = AudioStyleConfig(steps=4, style_weight=12.0)
    path = save_checkpoint(tmp_path / "c.ckpt.pt", config=cfg, inputs=(content, style),
                           state={"chunk": 0, "done": [], "state": None})
    data = torch.load(path, weights_only=True)
    assert data["format"] == CHECKPOINT_FORMAT
    got, progress = load_checkpoint(path, inputs=(content, style))
    assert got == cfg and progress["chunk"] == 0


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("kind", ["garbage", "pickle_object", "foreign_dict", "other_inputs", "bad_config",
                                  "bad_progress", "truncated", "missing"])
def test_cli_refuses_bad_checkpoints_in_one_line(tmp_path, wavs, kind):
    content, style = wavs
    ckpt = tmp_path / f"{kind}.pt"
    good = dict(config=AudioStyleConfig(), state={"chunk": 0, "done": [], "state": None})
    if kind == "garbage":
        ckpt.write_bytes(b"\x00not a checkpoint" * 40)
    elif kind == "pickle_object":
        torch.save({"format": CHECKPOINT_FORMAT, "x": _Evil()}, ckpt)
    elif kind == "foreign_dict":
        torch.save({"format": "stylekit-image-checkpoint/1", "state": {}}, ckpt)
    elif kind == "other_inputs":
        other = write(tmp_path / "other.wav", voiceish(1.0, seed=5))
        save_checkpoint(ckpt, inputs=(other, style), **good)
    elif kind == "bad_config":
        save_checkpoint(ckpt, inputs=(content, style), **good)
        data = torch.load(ckpt, weights_only=True)
        data["config"]["steps"] = -3
        torch.save(data, ckpt)
    elif kind == "bad_progress":
        save_checkpoint(ckpt, inputs=(content, style), config=AudioStyleConfig(), state={"chunk": 2, "done": []})
    elif kind == "truncated":
        save_checkpoint(ckpt, inputs=(content, style), **good)
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    out = tmp_path / "out.wav"
    line = one_line_error(run(content, style, "-o", out, "--resume", ckpt, *CLI_SMALL), ckpt)
    assert "this must never run" not in line
    assert not out.exists()


def test_pickled_object_is_refused_by_the_loader(tmp_path, wavs):
    content, style = wavs
    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(InputError, match="not loaded"):
        load_checkpoint(p, inputs=(content, style))


def test_device_cpu_runs_and_missing_cuda_is_one_line(tmp_path, wavs, monkeypatch):
    content, style = wavs
    out = tmp_path / "out.wav"
    r = run(content, style, "-o", out, "--device", "cpu", "--steps", "2", "--griffin-lim-iters", "2", "-q")
    assert r.exit_code == 0, r.output
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    out2 = tmp_path / "out2.wav"
    line = one_line_error(run(content, style, "-o", out2, "--device", "cuda", "-q"))
    assert "cuda" in line.lower() and not out2.exists()
    with pytest.raises(ConfigError):
        AudioStyleConfig(device="tpu")
