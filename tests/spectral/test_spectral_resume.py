"""`stylekit spectral train`: interruption (Ctrl-C and SIGTERM), --resume, determinism with a seed, and safe
loading of its checkpoints (weights_only, tampered and foreign files refused in one line).

The data set is written here (synthetic harmonic notes at 16 kHz in the NSynth layout), so these tests need
no FluidSynth.
"""
from __future__ import annotations

import json
import os
import pickle
import signal

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from stylekit.cli import cli
from stylekit.spectral import train as train_mod
from stylekit.spectral.models import load_model

from _spectral_data import one_thread  # noqa: F401  (autouse fixture)

SR = 16000
# A small STFT (33 bins) and tiny model keep every run well under a second.
FAST = ["--model", "dae", "--latent", "4", "--epochs", "3", "--batch-frames", "32", "--seq-len", "8",
        "--segments-per-note", "0", "--n-fft", "64", "--hop", "32", "--seed", "5"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("notes")
    audio = root / "nsynth-train" / "audio"
    audio.mkdir(parents=True)
    records = {}
    t = np.arange(int(0.4 * SR)) / SR
    for i, pitch in enumerate((48, 55, 60, 67)):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * np.exp(-3 * t)
        key = f"synth_{i:03d}-{pitch:03d}-100"
        sf.write(str(audio / f"{key}.wav"), (0.3 * y / np.abs(y).max()).astype(np.float32), SR, subtype="PCM_16")
        records[key] = {"note": i, "note_str": key, "instrument": i, "instrument_str": f"synth_{i:03d}",
                        "pitch": pitch, "velocity": 100, "sample_rate": SR, "qualities": [0] * 10,
                        "qualities_str": [], "instrument_family": 9, "instrument_family_str": "synth_lead",
                        "instrument_source": 2, "instrument_source_str": "synthetic"}
    (root / "nsynth-train" / "examples.json").write_text(json.dumps(records))
    return root


def run(*args):
    r = CliRunner().invoke(cli, ["spectral", "train", *map(str, args)])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def one_line_error(r, *needles):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def weights(path):
    return load_model(path)[0].state_dict()


def assert_same_weights(a, b):
    sa, sb = weights(a), weights(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def _stop_during_epoch(monkeypatch, epoch: int, how: str) -> None:
    """Make training stop in the middle of ``epoch`` the way a user would: Ctrl-C or `kill` (SIGTERM)."""
    real = train_mod.fit

    def fit(model, segments, cfg, *, on_step=None, **kw):
        def step(p):
            if p.epoch == epoch and p.step == 1:
                if how == "sigint":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGTERM)  # the command turns SIGTERM into an interrupt
            if on_step is not None:
                on_step(p)
        return real(model, segments, cfg, on_step=step, **kw)
    monkeypatch.setattr(train_mod, "fit", fit)


class _Unhandled(Exception):
    pass


def _unhandled_sigterm(signum, frame):
    raise _Unhandled("the command did not handle SIGTERM")


@pytest.mark.parametrize("how", ["sigint", "sigterm"])
def test_train_interrupt_then_resume_equals_uninterrupted_run(tmp_path, data, monkeypatch, how):
    # Should the command not install its own handler, this one fails the test instead of killing pytest.
    previous = signal.signal(signal.SIGTERM, _unhandled_sigterm)
    try:
        _interrupt_then_resume(tmp_path, data, monkeypatch, how)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt_then_resume(tmp_path, data, monkeypatch, how):
    full = tmp_path / "full.pt"
    assert run(data, *FAST, "-o", full).exit_code == 0
    part = tmp_path / "part.pt"
    _stop_during_epoch(monkeypatch, 3, how)
    r = run(data, *FAST, "-o", part)
    assert r.exit_code == 130, r.output
    assert "part.pt.partial" in r.output and "--resume" in r.output
    assert not part.exists() and (tmp_path / "part.pt.partial").is_file()
    assert signal.getsignal(signal.SIGTERM) is _unhandled_sigterm  # the command restored the handler
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.pt", "part.pt.partial"]  # no temp files
    monkeypatch.undo()
    r = run(data, *FAST, "-o", part, "--resume")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "part.pt.partial").exists()
    assert_same_weights(full, part)


def test_train_is_deterministic_with_a_seed_and_the_seed_matters(tmp_path, data):
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    assert run(data, *FAST, "-o", a).exit_code == 0
    assert run(data, *FAST, "-o", b).exit_code == 0
    assert_same_weights(a, b)
    assert run(data, *FAST, "--seed", "6", "-o", c).exit_code == 0
    sa, sc = weights(a), weights(c)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_resume_refuses_other_options_a_missing_point_and_a_tampered_point(tmp_path, data, monkeypatch):
    out = tmp_path / "m.pt"
    one_line_error(run(data, *FAST, "-o", out, "--resume"), "m.pt.partial", "no resume point")
    _stop_during_epoch(monkeypatch, 2, "sigint")
    assert run(data, *FAST, "-o", out).exit_code == 130
    monkeypatch.undo()
    partial = tmp_path / "m.pt.partial"
    # without --resume an existing resume point is never silently discarded
    one_line_error(run(data, *FAST, "-o", out), "m.pt.partial", "--resume")
    one_line_error(run(data, *FAST, "--lr", "0.01", "-o", out, "--resume"), "m.pt.partial", "other options")
    good = partial.read_bytes()

    ck = torch.load(partial, weights_only=True)
    ck["extra"]["optimizer"]["param_groups"][0]["lr"] = 10.0  # optimiser state is covered by a digest too
    torch.save(ck, partial)
    one_line_error(run(data, *FAST, "-o", out, "--resume"), "m.pt.partial", "checksum mismatch")

    ck = torch.load(tmp_path / "m.pt.partial", weights_only=True)
    ck["state_dict"][next(iter(ck["state_dict"]))].add_(1e-3)
    torch.save(ck, partial)
    one_line_error(run(data, *FAST, "-o", out, "--resume"), "m.pt.partial", "checksum mismatch")

    partial.write_bytes(pickle.dumps(_Evil()))  # a pickle that would run code: weights_only refuses it
    one_line_error(run(data, *FAST, "-o", out, "--resume"), "m.pt.partial", "not a loadable")
    assert not out.exists()

    partial.write_bytes(good)
    assert run(data, *FAST, "-o", out, "--resume").exit_code == 0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_load_with_weights_only(tmp_path, data, monkeypatch):
    out = tmp_path / "m.pt"
    assert run(data, *FAST, "-o", out).exit_code == 0
    calls = []
    real = torch.load

    def spy(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real(*a, **kw)
    monkeypatch.setattr(torch, "load", spy)
    load_model(out)
    assert calls == [True]


@pytest.mark.parametrize("command", ["eval", "encode"])
def test_tampered_or_foreign_model_is_refused_in_one_line(tmp_path, data, command):
    out = tmp_path / "m.pt"
    assert run(data, *FAST, "-o", out).exit_code == 0
    ck = torch.load(out, weights_only=True)
    ck["meta"]["train"]["seed"] = 99  # provenance is covered by the digest as well as the weights
    torch.save(ck, tmp_path / "tampered.pt")
    torch.save(load_model(out)[0].state_dict(), tmp_path / "foreign.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    note = next((data / "nsynth-train" / "audio").iterdir())
    for name, needle in (("tampered.pt", "checksum mismatch"), ("foreign.pt", "foreign checkpoint"),
                         ("evil.pt", "not a loadable")):
        model = tmp_path / name
        args = (["eval", model, data, "--split", "train", "--perceptual-notes", "0"] if command == "eval"
                else ["encode", note, "-o", tmp_path / "z.pt", "--model", model])
        r = CliRunner().invoke(cli, ["spectral", *map(str, args)])
        one_line_error(r, name, needle)
    assert not (tmp_path / "z.pt").exists()
