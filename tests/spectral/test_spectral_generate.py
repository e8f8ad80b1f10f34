"""`stylekit spectral sample` and `sweep` with the shipped VAE, and PGHI phase reconstruction."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from _spectral_data import nsynth_tone
from stylekit.cli import cli, main
from stylekit.spectral.features import SpectralSTFTConfig, _magnitude, to_audio, to_features
from stylekit.spectral.resynth import VAE_CHECKPOINT, VAE_CHECKPOINT_SHA256, load, sample_prior, sweep_latents

from _spectral_data import one_thread  # noqa: E402,F401  (autouse fixture)


def _run(*args):
    r = CliRunner().invoke(cli, ["spectral", *map(str, args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_shipped_vae_is_registered():
    assert VAE_CHECKPOINT.stat().st_size < 5_000_000
    assert hashlib.sha256(VAE_CHECKPOINT.read_bytes()).hexdigest() == VAE_CHECKPOINT_SHA256
    model, stft, meta = load(default="vae")
    assert (model.name, model.latent, model.beta) == ("vae", 16, 1e-3) and meta["train"]["seed"] == 0


def test_sample_draws_from_the_prior(tmp_path):
    model, _, _ = load(default="vae")
    z = sample_prior(model, n_frames=5, seed=3)
    assert z.shape == (5, 16) and torch.equal(z[0], z[4]) and torch.equal(z, sample_prior(model, n_frames=5, seed=3))
    assert not torch.equal(z, sample_prior(model, n_frames=5, seed=4))
    _run("sample", "-o", tmp_path / "s.wav", "--count", 2, "--seconds", 0.5, "--figure", tmp_path / "s.png")
    y, sr = sf.read(tmp_path / "s.wav")
    assert sr == 16000 and len(y) == 2 * 8000 and np.abs(y).max() > 1e-3
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_moves_one_dimension(tmp_path, capsys):
    z = torch.zeros(3, 4)
    steps = sweep_latents(z, dim=2, values=(-1.0, 2.0))
    assert [float(s[0, 2]) for s in steps] == [-1.0, 2.0] and all(float(s[:, [0, 1, 3]].abs().sum()) == 0
                                                                  for s in steps)
    sf.write(tmp_path / "n.wav", nsynth_tone(60, 100, seconds=0.5), 16000, subtype="PCM_16")
    _run("sweep", tmp_path / "n.wav", "-o", tmp_path / "w.wav", "--dim", 3, "--values", "-2,0,2",
         "--figure", tmp_path / "w.png")
    y, _ = sf.read(tmp_path / "w.wav")
    assert len(y) == 3 * 8000
    thirds = [np.sqrt(np.mean(y[i * 8000:(i + 1) * 8000] ** 2)) for i in range(3)]
    assert len({round(t, 4) for t in thirds}) == 3          # each step sounds different
    with pytest.raises(SystemExit) as e:
        main(["spectral", "sweep", str(tmp_path / "n.wav"), "-o", str(tmp_path / "x.wav"), "--dim", "16"])
    assert e.value.code == 2 and "--dim must be in 0-15" in capsys.readouterr().err


def test_sample_refuses_a_model_without_a_prior(tmp_path, capsys):
    from stylekit.spectral.resynth import DEFAULT_CHECKPOINT
    with pytest.raises(SystemExit) as e:
        main(["spectral", "sample", "-o", str(tmp_path / "s.wav"), "--model", str(DEFAULT_CHECKPOINT)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "needs a VAE checkpoint" in err and not (tmp_path / "s.wav").exists()


def test_pghi_rebuilds_a_consistent_phase():
    cfg = SpectralSTFTConfig()
    y = nsynth_tone(57, 100, seconds=1.0)
    x = to_features(y, cfg)
    mag = _magnitude(x, cfg)
    try:
        import pghipy  # noqa: F401
        methods = ("pghi", "griffinlim")
    except ImportError:     # PGHI is optional: its absence must name what to install
        with pytest.raises(Exception, match="pip install 'stylekit\\[spectral\\]'"):
            to_audio(x, cfg, method="pghi")
        methods = ("griffinlim",)
    for method in methods:
        back = _magnitude(to_features(to_audio(x, cfg, method=method, length=len(y)), cfg), cfg)
        sc = 20 * np.log10(np.linalg.norm(back - mag) / np.linalg.norm(mag))   # spectral convergence
        assert sc < -15, (method, sc)
    with pytest.raises(Exception, match="unknown phase method"):
        to_audio(x, cfg, method="nope")
