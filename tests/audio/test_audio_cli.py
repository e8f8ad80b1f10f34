"""`stylekit audio` through click's CliRunner on tiny clips, and the Python API sharing its config."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import soundfile as sf

import stylekit
from stylekit._options import build, cli_fields
from stylekit.audio.config import AudioStyleConfig, SpectrogramConfig
from stylekit.audio.io import read_metadata
from stylekit.audio.pipeline import build_config, stylize_audio
from stylekit.errors import ConfigError, StylizeInterrupted

from _audio_data import SR, one_line_error, run, textureish, voiceish, write

FAST = ["--steps", "3", "--griffin-lim-iters", "4", "-q"]


@pytest.fixture
def content_wav(tmp_path):
    return write(tmp_path / "content.wav", voiceish(0.6))


@pytest.fixture
def style_wav(tmp_path):
    return write(tmp_path / "style.wav", textureish(0.8))


def _check_output(path, n, rate, channels=None):
    y, sr = sf.read(str(path))
    assert sr == rate and y.shape == ((n,) if channels is None else (n, channels))
    assert np.isfinite(y).all() and np.abs(y).max() < 1.0
    assert np.sqrt(np.mean(y ** 2)) > 1e-3        # not silent
    return y


def test_basic_run_has_content_length_rate_and_loudness(tmp_path, content_wav, style_wav):
    out = tmp_path / "out.wav"
    r = run(content_wav, style_wav, "-o", out, *FAST)
    assert r.exit_code == 0, r.output
    y = _check_output(out, int(0.6 * SR), SR)
    c, _ = sf.read(str(content_wav))
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(c ** 2)), rel=0.02)
    assert sf.info(str(out)).subtype == "PCM_16"
    meta = read_metadata(out)          # the settings that made it are in the WAV
    assert meta["config"]["steps"] == 3 and len(meta["settings_sha256"]) == 64 and "interrupted_at" not in meta
    # the same command again finds its own finished output: refused without --overwrite, as any existing file
    assert "already exists" in one_line_error(run(content_wav, style_wav, "-o", out, *FAST), out)


def test_output_keeps_the_contents_own_rate_and_sample_count(tmp_path, style_wav):
    content = write(tmp_path / "c44.wav", np.stack([voiceish(0.5, sr=44100)] * 2, axis=1), 44100)
    out = tmp_path / "out.wav"
    r = run(content, style_wav, "-o", out, "--float", *FAST)
    assert r.exit_code == 0, r.output
    _check_output(out, int(0.5 * 44100), 44100, channels=2)     # the content's channels are kept
    assert sf.info(str(out)).subtype == "FLOAT"


def test_style_shorter_than_content_and_several_styles(tmp_path, content_wav):
    s1 = write(tmp_path / "s1.wav", textureish(0.2, seed=3))
    s2 = write(tmp_path / "s2.wav", textureish(0.3, seed=4))
    out = tmp_path / "out.wav"
    r = run(content_wav, s1, s2, "--style-blend", "1,3", "-o", out, *FAST)
    assert r.exit_code == 0, r.output
    _check_output(out, int(0.6 * SR), SR)
    r = run(content_wav, s1, s2, "--style-blend", "1", "-o", tmp_path / "o2.wav", *FAST)
    one_line_error(r)


def test_plot_writes_png(tmp_path, content_wav, style_wav):
    out, png = tmp_path / "out.wav", tmp_path / "out.plot.png"     # --plot is a switch, as for images
    r = run(content_wav, style_wav, "-o", out, "--plot", *FAST)
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_to_overwrite_without_flag(tmp_path, content_wav, style_wav):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep")
    one_line_error(run(content_wav, style_wav, "-o", out, *FAST), out)
    assert out.read_bytes() == b"keep"
    assert run(content_wav, style_wav, "-o", out, "--overwrite", *FAST).exit_code == 0
    one_line_error(run(content_wav, style_wav, "-o", content_wav, "--overwrite", *FAST))


def _bad_file(tmp_path, kind):
    p = tmp_path / f"bad_{kind}.wav"
    if kind == "silent":
        write(p, np.zeros(SR // 2, dtype=np.float32))
    elif kind == "short":
        write(p, voiceish(0.05))
    elif kind == "not_audio":
        p.write_text("hello\n" * 50)
    elif kind == "corrupt_header":
        good = write(tmp_path / "g.wav", voiceish(0.5))
        b = bytearray(good.read_bytes())
        b[0:4] = b"RIFX"
        b[8:12] = b"WAVX"
        p.write_bytes(bytes(b))
    elif kind == "nan":
        y = voiceish(0.5)
        y[5] = np.nan
        write(p, y, subtype="FLOAT")
    elif kind == "zero_length":
        write(p, np.zeros(0, dtype=np.float32))
    return p


@pytest.mark.parametrize("kind", ["silent", "short", "not_audio", "corrupt_header", "nan", "zero_length"])
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_inputs_end_in_one_line_and_exit_2(tmp_path, content_wav, style_wav, kind, role):
    bad = _bad_file(tmp_path, kind)
    args = (bad, style_wav) if role == "content" else (content_wav, bad)
    out = tmp_path / "out.wav"
    one_line_error(run(*args, "-o", out, *FAST), bad)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["6ch", "96k", "8bit", "dc", "clipped"])
def test_awkward_but_valid_inputs_work(tmp_path, style_wav, kind):
    y = voiceish(0.5)
    rate, subtype = SR, None
    if kind == "6ch":
        y = np.stack([y] * 6, axis=1)
    elif kind == "96k":
        rate, y = 96000, voiceish(0.5, sr=96000)
    elif kind == "8bit":
        subtype = "PCM_U8"
    elif kind == "dc":
        y, subtype = y + 0.4, "FLOAT"
    elif kind == "clipped":
        y = np.clip(5 * y, -1, 1)
    content = write(tmp_path / f"{kind}.wav", y, rate, subtype=subtype)
    out = tmp_path / "out.wav"
    r = run(content, style_wav, "-o", out, *FAST)
    assert r.exit_code == 0, r.output
    _check_output(out, y.shape[0], rate, channels=y.shape[1] if y.ndim == 2 else None)


@pytest.mark.parametrize("kind", ["9ch", "7kHz", "200kHz", "short style"])
def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, content_wav, style_wav, kind):
    content, style = content_wav, style_wav
    if kind == "9ch":
        content = write(tmp_path / "nine.wav", np.stack([voiceish(0.5)] * 9, axis=1))
        expect = "9 channels"
    elif kind == "7kHz":
        content = write(tmp_path / "low.wav", voiceish(0.5, sr=7000), 7000)
        expect = "7000 Hz"
    elif kind == "200kHz":
        style = write(tmp_path / "high.wav", textureish(0.5, sr=200_000), 200_000)
        expect = "200000 Hz"
    else:     # 0.12 s passes the general minimum but is shorter than one window of n_fft 4096 at 22,050 Hz
        style = write(tmp_path / "short.wav", textureish(0.12))
        expect = "one analysis window"
    out = tmp_path / "o.wav"
    extra = ["--n-fft", "4096"] if kind == "short style" else []
    line = one_line_error(run(content, style, "-o", out, *extra, *FAST))
    assert expect in line
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_stereo_content_keeps_its_image_and_mono_style_works(tmp_path, style_wav):
    v = voiceish(0.8, sr=44100)
    content = write(tmp_path / "left.wav", np.stack([0.9 * v, 0.2 * v], axis=1), 44100)   # panned left
    out = tmp_path / "out.wav"
    assert run(content, style_wav, "-o", out, *FAST).exit_code == 0
    y = _check_output(out, len(v), 44100, channels=2)
    share = (y ** 2).sum(0) / (y ** 2).sum()
    assert share[0] == pytest.approx(0.81 / (0.81 + 0.04), abs=0.02)      # the content's pan
    assert np.corrcoef(y[:, 0], y[:, 1])[0, 1] > 0.98                     # and its (narrow) width


def test_bad_options(tmp_path, content_wav, style_wav):
    one_line_error(run(content_wav, style_wav, "-o", tmp_path / "o.mp3", *FAST))
    one_line_error(run(content_wav, style_wav, "-o", tmp_path / "o.wav", "--steps", "0", "-q"))
    one_line_error(run(content_wav, style_wav, "-o", tmp_path / "o.wav", "--n-fft", "1000", "--hop-length",
                       "900", "-q"))
    assert "--n-mels 144 or fewer" in one_line_error(run(content_wav, style_wav, "-o", tmp_path / "o.wav",
                                                         "--n-fft", "1024", "-q"))   # 224 bands need n_fft 2048
    one_line_error(run(content_wav, "-o", tmp_path / "o.wav"))     # no style
    for floor in ("0", "2"):                                          # need 0 < log floor < full scale
        assert "log_floor" in one_line_error(run(content_wav, style_wav, "-o", tmp_path / "o.wav", "--log-floor",
                                                 floor, "-q"))


def test_interrupt_saves_best_so_far_and_exits_130(tmp_path, content_wav, style_wav, monkeypatch):
    import stylekit.optim as optim

    def interrupted(x0, criterion, **kw):
        criterion(x0)
        raise optim.OptimizationInterrupted(x0.clone(), {})

    monkeypatch.setattr(optim, "optimize", interrupted)
    out = tmp_path / "out.wav"
    r = run(content_wav, style_wav, "-o", out, *FAST)
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.output
    _check_output(out, int(0.6 * SR), SR)
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []    # no temp files


def test_api_raises_interrupted_with_result(content_wav, style_wav, monkeypatch):
    import stylekit.optim as optim

    monkeypatch.setattr(optim, "optimize", lambda x0, c, **kw: (_ for _ in ()).throw(
        optim.OptimizationInterrupted(x0.clone(), {})))
    with pytest.raises(StylizeInterrupted) as e:
        stylize_audio(content_wav, style_wav, steps=2, griffin_lim_iters=2)
    assert e.value.result.interrupted and e.value.result.samples.shape == (int(0.6 * SR),)


def test_cli_defaults_are_the_config_defaults():
    cfg = AudioStyleConfig()
    names = [f.name for f, _ in cli_fields(AudioStyleConfig)]
    assert {"steps", "network", "kind", "n_mels", "style_blend", "device", "threads"} <= set(names)
    for f, default in cli_fields(AudioStyleConfig):
        expected = getattr(cfg.spectrogram, f.name) if hasattr(cfg.spectrogram, f.name) else getattr(cfg, f.name)
        assert default == expected, f.name
    # no values given, or every CLI option unset (None): the config's defaults
    assert build(AudioStyleConfig, {}) == cfg
    assert build(AudioStyleConfig, {name: None for name in names}) == cfg
    assert build_config(**{name: None for name in names}) == cfg
    help_text = " ".join(re.sub("[│╭╮╰╯─]", " ", run("--help").output).split())     # rich's boxes undone
    assert f"[default: {cfg.steps}]" in help_text and f"[default: {cfg.network}]" in help_text
    # --threads 0 keeps torch's own thread setting
    assert build(AudioStyleConfig, {"threads": 0}).threads is None
    assert build(AudioStyleConfig, {"style_blend": "1,3"}).style_blend == (1.0, 3.0)


def test_api_is_exported_and_uses_the_same_config(content_wav, style_wav):
    assert stylekit.stylize_audio is stylize_audio
    r = stylekit.stylize_audio(content_wav, [style_wav], steps=2, griffin_lim_iters=2, kind="linear", n_fft=512,
                               hop_length=128)
    assert r.config.spectrogram == SpectrogramConfig(kind="linear", n_fft=512, hop_length=128,
                                                     griffin_lim_iters=2)
    assert r.samples.shape == (int(0.6 * SR),) and np.isfinite(r.samples).all()
    with pytest.raises(ConfigError, match="unknown"):
        build_config(stepz=3)
    with pytest.raises(ConfigError):
        build_config(network="resnet")
    assert dataclasses.is_dataclass(r.config) and r.config.__dataclass_params__.frozen


def test_job_status_knows_its_own_output_and_ignores_runtime_settings(tmp_path, content_wav, style_wav):
    from stylekit.audio.job import AudioJob, AudioOutput
    out = tmp_path / "out.wav"
    assert run(content_wav, style_wav, "-o", out, *FAST).exit_code == 0
    cfg = build(AudioStyleConfig, {"steps": 3, "griffin_lim_iters": 4})
    assert AudioJob(content_wav, [style_wav], out, cfg).status() == ("done", None)
    faster = dataclasses.replace(cfg, threads=2, device="cpu")        # where and how fast: the same work
    assert AudioJob(content_wav, [style_wav], out, faster).status()[0] == "done"
    assert AudioJob(content_wav, [style_wav], out, dataclasses.replace(cfg, steps=4)).status()[0] == "conflict"
    as_float = AudioJob(content_wav, [style_wav], out, cfg, options=AudioOutput(float_output=True))
    assert as_float.status()[0] == "conflict" and as_float.output_settings() == {"float": True}
    assert AudioJob(content_wav, [style_wav], out, cfg).output_settings() == {}
    with pytest.raises(ConfigError, match="plot must be true or false"):
        AudioOutput(plot="spec.png")
