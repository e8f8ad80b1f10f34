"""`stylekit spectral ...` end to end on a tiny rendered data set, and the shipped checkpoint."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from _spectral_data import make_tiny_dataset
from stylekit.cli import cli, main
from stylekit.errors import ConfigError
from stylekit.spectral.evaluate import load_result
from stylekit.spectral.features import SpectralSTFTConfig, features_to_db, to_features
from stylekit.spectral.models import load_model
from stylekit.spectral.nsynth import read_split
from stylekit.spectral.resynth import (DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT_SHA256, decode_latents,
                                       encode_audio, load, morph_latents)

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs Debian's fluidsynth")


from _spectral_data import one_thread  # noqa: E402,F401  (autouse fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("nsynth"))


def _run(*args):
    r = CliRunner().invoke(cli, ["spectral", *map(str, args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _exit2(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:
        main(["spectral", *map(str, args)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    return err


def test_synth_command(tmp_path):
    out = _run("synth", tmp_path / "d", "--programs", "0,24,40", "--pitches", "60", "--velocities", "100",
               "--soundfont", "/usr/share/sounds/sf2/TimGM6mb.sf2", "-j", "1", "--test-fraction", "0.3",
               "--valid-fraction", "0.3")
    assert "train: " in out
    assert sum(len(read_split(tmp_path / "d", s)) for s in ("train", "valid", "test")) == 3


def test_train_eval_compare(data, tmp_path):
    for model in ("pca", "dae"):
        _run("train", data, "--model", model, "--latent", "4", "--epochs", "1", "--segments-per-note", "0",
             "-o", tmp_path / f"{model}.pt")
    m, stft, meta = load_model(tmp_path / "dae.pt")
    assert (m.name, m.latent, stft, meta["train"]["epochs"]) == ("dae", 4, SpectralSTFTConfig(), 1)
    try:
        import visqol  # noqa: F401
    except ImportError:  # ViSQOL is optional: its absence must name the package to install
        with pytest.raises(ConfigError, match="pip install visqol-python"):
            CliRunner().invoke(cli, ["spectral", "eval", str(tmp_path / "pca.pt"), str(data), "--perceptual",
                                     "visqol"], catch_exceptions=False)
    out = _run("eval", tmp_path / "pca.pt", data, "--perceptual-notes", 1, "--json", tmp_path / "pca.json")
    r = load_result(tmp_path / "pca.json")
    assert f"RMSE {r.rmse_db:.3f} dB" in out and r.n_notes == len(read_split(data, "test"))
    assert 0.0 < r.psm < 1.0 and r.n_perceptual == 1 and r.moslqo is None  # the default score: PEMO-Q-like
    # The RMSE recomputed by hand: pooled over every frame and bin of every test note, in dB.
    pca = load_model(tmp_path / "pca.pt")[0]
    sq = []
    for note in read_split(data, "test"):
        x = to_features(sf.read(note.path, dtype="float32")[0], stft)
        x_hat = np.clip(pca(torch.from_numpy(x)).detach().numpy(), 0, 1)
        sq.append((features_to_db(x_hat, stft) - features_to_db(x, stft)).ravel() ** 2)
    assert r.rmse_db == pytest.approx(float(np.sqrt(np.concatenate(sq).mean())), rel=1e-5)
    assert r.rmse_db > 0.5  # 4 components cannot reconstruct unseen instruments exactly
    out = _run("compare", tmp_path / "pca.json", tmp_path / "dae.pt", "--data", data, "--perceptual-notes", "0",
               "--table", tmp_path / "t.md", "--plot", tmp_path / "p.png")
    table = (tmp_path / "t.md").read_text()
    assert "| PCA |" in table and "| DAE |" in table and "L = 4" in table and out == table
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "PCA beats the shallow AE" not in table  # no AE result given: that ordering is not claimed
    assert "DAE beats PCA" in table


def test_outputs_are_never_clobbered(data, tmp_path, capsys):
    (tmp_path / "m.pt").write_bytes(b"keep")
    err = _exit2(capsys, "train", data, "--model", "pca", "--latent", "2", "-o", tmp_path / "m.pt")
    assert "m.pt: already exists" in err and (tmp_path / "m.pt").read_bytes() == b"keep"


def test_bad_inputs_exit_2_naming_the_file(data, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    (bad / "nsynth-train" / "examples.json").write_text("{not json")
    err = _exit2(capsys, "train", bad, "--model", "pca", "--latent", "2", "-o", tmp_path / "x.pt")
    assert "nsynth-train/examples.json: corrupt" in err
    sf.write(tmp_path / "a44k.wav", np.zeros(4410, np.float32), 44100)
    err = _exit2(capsys, "encode", tmp_path / "a44k.wav", "-o", tmp_path / "z.pt")
    assert "a44k.wav: sample rate is 44100 Hz" in err
    (tmp_path / "fake.pt").write_bytes(b"garbage")
    err = _exit2(capsys, "eval", tmp_path / "fake.pt", data)
    assert "fake.pt: not a loadable" in err


def test_shipped_checkpoint_is_registered_and_small():
    assert DEFAULT_CHECKPOINT.stat().st_size < 5_000_000
    assert hashlib.sha256(DEFAULT_CHECKPOINT.read_bytes()).hexdigest() == DEFAULT_CHECKPOINT_SHA256
    model, stft, meta = load()
    assert (model.name, model.latent, stft.n_bins) == ("dae", 16, 513) and meta["train"]["seed"] == 0


def test_shipped_checkpoint_reconstructs_unseen_instruments(data):
    # The tiny set's instruments overlap the training set's programs but these renderings are new notes;
    # a latent-16 DAE should stay within a few dB (the reproduction measured ~2-3 dB on held-out instruments).
    model, stft, _ = load()
    err = []
    for note in read_split(data, "test") + read_split(data, "valid"):
        x = to_features(sf.read(note.path, dtype="float32")[0], stft)
        x_hat = np.clip(model(torch.from_numpy(x)).detach().numpy(), 0, 1)
        err.append(np.sqrt(np.mean((features_to_db(x_hat, stft) - features_to_db(x, stft)) ** 2)))
    assert float(np.mean(err)) < 8.0


def test_encode_decode_and_morph_with_the_shipped_model(data, tmp_path):
    notes = read_split(data, "train")
    a, b = notes[0].path, notes[-1].path
    _run("encode", a, "-o", tmp_path / "za.pt")
    _run("decode", tmp_path / "za.pt", "-o", tmp_path / "a.wav")
    ya, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sr == 16000 and len(ya) == 64000 and np.abs(ya).max() > 1e-3
    _run("morph", a, b, "-o", tmp_path / "m.wav", "--alpha", "0")
    ym, _ = sf.read(tmp_path / "m.wav", dtype="float32")
    np.testing.assert_array_equal(ym, ya)  # alpha 0 is A's own latent: same decode, same seeded phase
    _run("morph", a, b, "-o", tmp_path / "ramp.wav", "--ramp")
    assert sf.info(str(tmp_path / "ramp.wav")).frames == 64000


def test_morph_interpolates_latents_linearly():
    za, zb = torch.zeros(5, 3), torch.ones(7, 3)
    torch.testing.assert_close(morph_latents(za, zb, alpha=0.25), torch.full((5, 3), 0.25))
    torch.testing.assert_close(morph_latents(za, zb, alpha=None)[:, 0], torch.linspace(0, 1, 5))


def test_latents_from_another_model_are_refused(data, tmp_path, capsys):
    _run("train", data, "--model", "pca", "--latent", "16", "-o", tmp_path / "pca.pt")
    _run("encode", read_split(data, "train")[0].path, "-o", tmp_path / "z.pt", "--model", tmp_path / "pca.pt")
    err = _exit2(capsys, "decode", tmp_path / "z.pt", "-o", tmp_path / "o.wav")
    assert "z.pt: latents were made by another checkpoint" in err
    model, stft, _ = load()
    y = decode_latents(model, stft, encode_audio(model, stft, np.zeros(1600, np.float32)), length=1600)
    assert y.shape == (1600,)
