"""Reading and normalising audio, and every bad input of issue 4 (all generated here, none committed)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stylekit.audio.io import PEAK_CEILING, finalize_output, load_audio, prepare_audio, read_metadata, write_audio
from stylekit.errors import ConfigError, InputError, StylekitError

from _audio_data import SR, textureish, voiceish, write


def _rms(y):
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


# --- inputs that must work ---------------------------------------------------------------------------------

def test_normal_wav_is_mono_working_rate_and_loudness_normalised(tmp_path):
    p = write(tmp_path / "v.wav", voiceish(0.5))
    clip = load_audio(p)
    assert clip.samples.shape == (11025,) and clip.sample_rate == SR and clip.source == str(p)
    assert _rms(clip.samples) == pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize("channels", [6, 8])
def test_many_channels_are_mixed_down(tmp_path, channels):
    y = voiceish(0.4)
    data = np.stack([y * (k + 1) / channels for k in range(channels)], axis=1)
    clip = load_audio(write(tmp_path / "multi.wav", data))
    assert clip.samples.shape == (len(y),)
    # the mix is proportional to the mono source
    assert np.corrcoef(clip.samples, y)[0, 1] > 0.999


@pytest.mark.parametrize("rate", [96000, 192000, 8000])
def test_other_rates_are_resampled(tmp_path, rate):
    y = voiceish(0.5, sr=rate)
    clip = load_audio(write(tmp_path / f"r{rate}.wav", y, rate))
    assert clip.sample_rate == SR
    assert abs(len(clip.samples) - round(0.5 * SR)) <= 1
    ref = voiceish(0.5)
    spec = lambda v: np.abs(np.fft.rfft(v[:10000]))[:3000]
    assert np.corrcoef(spec(clip.samples), spec(ref))[0, 1] > 0.9


def test_8bit_wav_is_read(tmp_path):
    p = write(tmp_path / "u8.wav", voiceish(0.4), subtype="PCM_U8")
    assert sf.info(str(p)).subtype == "PCM_U8"
    clip = load_audio(p)
    assert np.corrcoef(clip.samples, voiceish(0.4))[0, 1] > 0.98


def test_dc_offset_is_removed(tmp_path):
    y = 0.3 + 0.1 * textureish(0.5)
    clip = load_audio(write(tmp_path / "dc.wav", y, subtype="FLOAT"))
    assert abs(float(clip.samples.mean())) < 1e-3 and _rms(clip.samples) == pytest.approx(0.1, rel=1e-3)


def test_clipped_input_is_accepted(tmp_path):
    y = np.clip(4 * voiceish(0.5), -1, 1)
    clip = load_audio(write(tmp_path / "clip.wav", y))
    assert np.isfinite(clip.samples).all()


@pytest.mark.parametrize("ext,fmt", [(".flac", "FLAC"), (".ogg", "OGG")])
def test_flac_and_ogg(tmp_path, ext, fmt):
    p = tmp_path / f"x{ext}"
    sf.write(str(p), voiceish(0.5), SR, format=fmt)
    assert load_audio(p).samples.shape[0] == pytest.approx(11025, abs=2)


def test_integer_arrays_are_scaled():
    y = (voiceish(0.3) * 32767).astype(np.int16)
    clip = prepare_audio(y, SR)
    assert np.corrcoef(clip.samples, y.astype(float))[0, 1] > 0.9999


# --- inputs that must fail with one line naming the file ---------------------------------------------------

def _bad(tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    if kind == "silent":
        write(p, np.zeros(SR, dtype=np.float32))
    elif kind == "short":
        write(p, voiceish(0.05))
    elif kind == "zero_length":
        write(p, np.zeros(0, dtype=np.float32))
    elif kind == "one_sample":
        write(p, np.array([0.5], dtype=np.float32))
    elif kind == "text":
        p.write_text("this is not audio\n" * 20)
    elif kind == "corrupt_header":
        good = tmp_path / "good.wav"
        write(good, voiceish(0.5))
        data = bytearray(good.read_bytes())
        data[8:16] = b"JUNKJUNK"          # breaks the WAVE / fmt chunk ids
        p.write_bytes(bytes(data))
    elif kind == "truncated":
        good = tmp_path / "good.wav"
        write(good, voiceish(0.5))
        p.write_bytes(good.read_bytes()[:30])
    elif kind == "nan":
        y = voiceish(0.5)
        y[100] = np.nan
        write(p, y, subtype="FLOAT")
    elif kind == "inf":
        y = voiceish(0.5)
        y[100] = np.inf
        write(p, y, subtype="FLOAT")
    return p


BAD = ["silent", "short", "zero_length", "one_sample", "text", "corrupt_header", "truncated", "nan", "inf"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_inputs_raise_input_error_naming_the_file(tmp_path, kind):
    p = _bad(tmp_path, kind)
    with pytest.raises(InputError) as e:
        load_audio(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        load_audio("/nonexistent/x.wav")


# --- output ------------------------------------------------------------------------------------------------

def test_finalize_output_length_loudness_and_peaks():
    y = voiceish(1.0)
    out = finalize_output(y, length=len(y) + 100, target_rms=0.05)
    assert out.shape == (len(y) + 100,) and _rms(out) == pytest.approx(0.05, rel=1e-3)
    loud = finalize_output(y, length=len(y), target_rms=0.9)       # would clip: gain limited instead
    assert np.abs(loud).max() <= PEAK_CEILING + 1e-6
    assert finalize_output(y, length=10, target_rms=0.1).shape == (10,)


def test_finalize_output_never_returns_nan_or_silence():
    with pytest.raises(StylekitError):
        finalize_output(np.full(100, np.nan), length=100, target_rms=0.1)
    with pytest.raises(StylekitError):
        finalize_output(np.zeros(100), length=100, target_rms=0.1)


def test_write_audio_is_atomic_and_does_not_overwrite(tmp_path):
    p = tmp_path / "o.wav"
    y = 0.5 * voiceish(0.2)
    write_audio(p, y, SR)
    assert sf.info(str(p)).subtype == "PCM_16"
    with pytest.raises(ConfigError, match="exists"):
        write_audio(p, y, SR)
    write_audio(p, y, SR, subtype="float", overwrite=True)
    assert sf.info(str(p)).subtype == "FLOAT"
    assert [f.name for f in tmp_path.iterdir()] == ["o.wav"]       # no temp files left behind
    with pytest.raises(ConfigError):
        write_audio(p, y, SR, subtype="pcm24", overwrite=True)


def test_write_audio_embeds_metadata_and_read_metadata_reads_it(tmp_path):
    p = tmp_path / "m.wav"
    y = 0.5 * voiceish(0.2)
    meta = {"stylekit": "0.1.0", "settings_sha256": "ab" * 32, "seconds": 1.5, "config": {"steps": 3},
            "content": "ü.wav", "styles": ["a.wav"]}
    write_audio(p, y, SR, metadata=meta)
    assert read_metadata(p) == meta
    got, sr = sf.read(str(p))
    assert sr == SR and np.abs(got - y).max() < 1e-4        # the samples are unchanged by the comment
    # a file without metadata, with a foreign comment, or not audio at all: {}
    write_audio(tmp_path / "plain.wav", y, SR)
    assert read_metadata(tmp_path / "plain.wav") == {}
    with sf.SoundFile(str(tmp_path / "foreign.wav"), "w", SR, 1, format="WAV") as f:
        f.comment = "recorded in the garden"
        f.write(y)
    assert read_metadata(tmp_path / "foreign.wav") == {}
    (tmp_path / "junk.wav").write_bytes(b"junk" * 10)
    assert read_metadata(tmp_path / "junk.wav") == {}
    assert read_metadata(tmp_path / "missing.wav") == {}


def test_long_metadata_keeps_the_essential_keys(tmp_path):
    from stylekit.audio.io import ESSENTIAL_KEYS, MAX_COMMENT
    meta = {"stylekit": "0.1.0", "settings_sha256": "cd" * 32, "seconds": 12.25, "interrupted_at": 40,
            "inputs_sha256": "ef" * 32, "float": True,
            "content": "c" * 3000, "styles": ["s" * 500] * 4, "config": {"steps": 3}}
    write_audio(tmp_path / "long.wav", 0.5 * voiceish(0.2), SR, subtype="float", metadata=meta)
    got = read_metadata(tmp_path / "long.wav")
    assert {k: got[k] for k in ESSENTIAL_KEYS} == {k: meta[k] for k in ESSENTIAL_KEYS}
    assert got["float"] is True and got["metadata_shortened"] is True
    assert not {"content", "styles", "config"} & set(got)
    # even when the other keys alone are too long, the essential ones survive
    huge = {**meta, "note": "n" * (2 * MAX_COMMENT)}
    write_audio(tmp_path / "huge.wav", 0.5 * voiceish(0.2), SR, metadata=huge)
    got = read_metadata(tmp_path / "huge.wav")
    assert {k: got[k] for k in ESSENTIAL_KEYS} == {k: meta[k] for k in ESSENTIAL_KEYS} and "note" not in got


def test_pcm16_output_clips_instead_of_wrapping(tmp_path):
    p = tmp_path / "loud.wav"
    write_audio(p, np.array([0.5, 1.5, -2.0, 0.0] * 100, np.float32), SR)
    y, _ = sf.read(str(p))
    assert y.max() <= 1.0 and y[1] > 0.99 and y[2] == -1.0
