"""NSynth-format data: the FluidSynth generator's layout and splits, the reader, and its errors on bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from _spectral_data import TINY, make_tiny_dataset
from stylekit.errors import ConfigError, InputError
from stylekit.spectral.nsynth import FAMILIES, filter_notes, load_audio, read_split
from stylekit.spectral.synth import SynthConfig, gm_family, parse_int_list, synthesize
from stylekit.spectral.train import note_features

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs Debian's fluidsynth")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("nsynth"))


def test_layout_fields_and_audio_format(data):
    notes = {s: read_split(data, s) for s in ("train", "valid", "test")}
    assert sum(len(v) for v in notes.values()) == 2 * 2 * 3  # programs x soundfonts x pitches
    raw = json.loads((data / "nsynth-train" / "examples.json").read_text())
    rec = next(iter(raw.values()))
    assert set(rec) == {"note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
                        "qualities", "qualities_str", "instrument_family", "instrument_family_str",
                        "instrument_source", "instrument_source_str"}
    for n in notes["train"]:
        info = sf.info(str(n.path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 64000, "PCM_16")
        assert n.note_str == f"{n.instrument_str}-{n.pitch:03d}-{n.velocity:03d}"
        assert FAMILIES[n.instrument_family] == n.instrument_family_str == gm_family(n.instrument % 128)
    ids = [n.note for v in notes.values() for n in v]
    assert len(set(ids)) == len(ids)


def test_splits_are_instrument_disjoint(data):
    inst = {s: {n.instrument_str for n in read_split(data, s)} for s in ("train", "valid", "test")}
    assert all(inst.values())
    assert not (inst["train"] & inst["valid"]) and not (inst["train"] & inst["test"]) \
        and not (inst["valid"] & inst["test"])
    assert len(set.union(*inst.values())) == 4


def test_note_is_held_three_seconds_then_released(data):
    # Bowed strings sustain while held: loud just before the release at 3 s, near silent at the end.
    note = next(n for s in ("train", "valid", "test") for n in read_split(data, s)
                if n.instrument_family_str == "string" and n.instrument_source_str == "acoustic")
    y = load_audio(note.path, sample_rate=16000)
    rms = lambda a, b: float(np.sqrt(np.mean(y[int(a * 16000):int(b * 16000)] ** 2)))  # noqa: E731
    assert rms(2.5, 2.9) > 10 * rms(3.8, 4.0)
    assert rms(0.0, 0.1) > 0  # the note starts at once


def test_family_mapping_and_int_lists():
    assert [gm_family(p) for p in (0, 11, 19, 24, 33, 40, 48, 56, 65, 73, 81, 90, 105, 115)] == [
        "keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "brass", "reed", "flute",
        "synth_lead", "synth_lead", "string", "mallet"]
    with pytest.raises(ConfigError):
        gm_family(120)
    assert parse_int_list("21-24,30,36-42:3", lo=0, hi=127, name="x") == (21, 22, 23, 24, 30, 36, 39, 42)
    for bad in ("a-b", "200", "", "1-5:0"):
        with pytest.raises(ConfigError):
            parse_int_list(bad, lo=0, hi=127, name="x")


def test_generator_refuses_to_clobber(data):
    with pytest.raises(ConfigError, match="already exists"):
        synthesize(data, TINY)
    with pytest.raises(ConfigError, match="3 instruments"):
        SynthConfig(programs=(0,), soundfonts=("a.sf2",))


def test_filter(data):
    notes = read_split(data, "train") + read_split(data, "valid") + read_split(data, "test")
    kept = filter_notes(notes, families=["string"], pitches=[60])
    assert len(kept) == 2 and all(n.pitch == 60 and n.instrument_family_str == "string" for n in kept)
    assert filter_notes(notes, sources=["electronic"], velocities=[25]) == []
    with pytest.raises(ConfigError, match="unknown family"):
        filter_notes(notes, families=["drums"])


def _copy(data, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(data, dst)
    return dst


def test_corrupt_examples_json_names_the_file(data, tmp_path):
    root = _copy(data, tmp_path)
    f = root / "nsynth-test" / "examples.json"
    f.write_text(f.read_text()[:-20])
    with pytest.raises(InputError, match=r"nsynth-test/examples.json: corrupt"):
        read_split(root, "test")
    f.write_text(json.dumps({"x": {"note": 1}}))
    with pytest.raises(InputError, match=r"examples.json: record 'x' lacks field"):
        read_split(root, "test")
    with pytest.raises(ConfigError, match="unknown split"):
        read_split(root, "nope")


def test_missing_wav_names_the_file(data, tmp_path):
    root = _copy(data, tmp_path)
    victim = read_split(root, "valid")[0].path
    victim.unlink()
    with pytest.raises(InputError, match=f"{victim.name}: missing WAV"):
        read_split(root, "valid")


def test_wrong_sample_rate_names_the_file(data, tmp_path):
    from stylekit.spectral.features import SpectralSTFTConfig
    bad = tmp_path / "note22k.wav"
    sf.write(bad, np.zeros(22050, np.float32), 22050)
    with pytest.raises(InputError, match=r"note22k.wav: sample rate is 22050 Hz .* 16000"):
        note_features(bad, SpectralSTFTConfig())
    (tmp_path / "junk.wav").write_bytes(b"RIFF....nonsense")
    with pytest.raises(InputError, match="junk.wav: cannot read audio"):
        load_audio(tmp_path / "junk.wav", sample_rate=16000)
