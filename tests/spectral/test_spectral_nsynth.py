"""The real NSynth path: the reader on records exactly as NSynth ships them, the note selection options of
`train`/`eval`/`encode`, split folders, and training memory bounded whatever the number of notes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from _spectral_data import NSYNTH_FIXTURE, make_nsynth_fixture
from stylekit.cli import cli, main
from stylekit.errors import ConfigError, InputError
from stylekit.spectral.config import FAMILIES, NoteFilter, SOURCES
from stylekit.spectral.nsynth import read_split, resolve_split, select_notes
from stylekit.spectral.train import load_segments

from _spectral_data import one_thread  # noqa: E402,F401  (autouse fixture)

_FIELDS = {"note": int, "note_str": str, "instrument": int, "instrument_str": str, "pitch": int, "velocity": int,
           "sample_rate": int, "qualities": list, "qualities_str": list, "instrument_family": int,
           "instrument_family_str": str, "instrument_source": int, "instrument_source_str": str}


@pytest.fixture(scope="module")
def nsynth(tmp_path_factory):
    return make_nsynth_fixture(tmp_path_factory.mktemp("nsynth"))


def _run(*args):
    r = CliRunner().invoke(cli, ["spectral", *map(str, args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_fixture_has_nsynths_fields_types_and_names():
    for split in ("train", "valid", "test"):
        raw = json.loads((NSYNTH_FIXTURE / f"nsynth-{split}" / "examples.json").read_text())
        for key, rec in raw.items():
            assert {k: type(v) for k, v in rec.items()} == _FIELDS
            assert key == rec["note_str"] == f"{rec['instrument_str']}-{rec['pitch']:03d}-{rec['velocity']:03d}"
            assert rec["instrument_str"].startswith(f"{rec['instrument_family_str']}_{rec['instrument_source_str']}_")
            assert FAMILIES[rec["instrument_family"]] == rec["instrument_family_str"]
            assert SOURCES[rec["instrument_source"]] == rec["instrument_source_str"]
            assert len(rec["qualities"]) == 10 and rec["sample_rate"] == 16000


def test_reader_reads_every_field(nsynth):
    notes = read_split(nsynth, "test")
    raw = json.loads((nsynth / "nsynth-test" / "examples.json").read_text())
    assert [n.note_str for n in notes] == sorted(raw)
    for n in notes:
        assert n.to_json() == raw[n.note_str]
        info = sf.info(str(n.path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 64000, "PCM_16")
        assert n.path == nsynth / "nsynth-test" / "audio" / f"{n.note_str}.wav"
    synth_lead = [n for n in read_split(nsynth, "train") if n.instrument_family_str == "synth_lead"]
    assert synth_lead and synth_lead[0].instrument_source_str == "synthetic"


def test_split_folder_or_root(nsynth):
    assert resolve_split(nsynth / "nsynth-valid") == nsynth / "nsynth-valid"
    assert resolve_split(nsynth, "valid") == nsynth / "nsynth-valid"
    assert resolve_split(nsynth) == nsynth / "nsynth-test"
    assert read_split(nsynth / "nsynth-valid", None) == read_split(nsynth, "valid")
    with pytest.raises(ConfigError, match="is the 'valid' split folder, but the 'test' split was asked for"):
        resolve_split(nsynth / "nsynth-valid", "test")


def test_bad_qualities_are_refused_naming_the_file(nsynth, tmp_path):
    import shutil
    root = tmp_path / "bad"
    shutil.copytree(nsynth, root)
    f = root / "nsynth-test" / "examples.json"
    raw = json.loads(f.read_text())
    next(iter(raw.values()))["qualities"] = 3
    f.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="nsynth-test/examples.json: record .* qualities"):
        read_split(root, "test")


def test_selection(nsynth):
    notes = read_split(nsynth, "train")
    assert [n.note_str for n in select_notes(notes, NoteFilter(families=("organ",)))] == [
        "organ_electronic_007-048-050", "organ_electronic_007-060-050"]
    kept = select_notes(notes, NoteFilter(sources=("acoustic",), velocities=(127, 100)))
    assert {n.note_str for n in kept} == {"keyboard_acoustic_004-057-100", "mallet_acoustic_047-072-127",
                                          "mallet_acoustic_047-084-127"}
    assert [n.pitch for n in select_notes(notes, NoteFilter(pitches=(60,)))] == [60, 60]
    # max_notes: evenly spaced through the note_str order, first and last included
    three = select_notes(notes, NoteFilter(max_notes=3))
    assert [n.note_str for n in three] == [notes[0].note_str, notes[4].note_str, notes[-1].note_str]
    with pytest.raises(ConfigError, match="unknown value 'drums'"):
        NoteFilter(families=("drums",))


def test_train_eval_encode_take_the_selection(nsynth, tmp_path, capsys):
    _run("train", nsynth, "--model", "pca", "--latent", "4", "--families", "organ,mallet", "--max-notes", "3",
         "-o", tmp_path / "pca.pt")
    from stylekit.spectral.models import load_model
    meta = load_model(tmp_path / "pca.pt")[2]
    assert meta["n_train_notes"] == 3 and meta["notes"]["families"] == ["mallet", "organ"]
    out = _run("eval", tmp_path / "pca.pt", nsynth / "nsynth-test", "--perceptual-notes", "0", "--sources",
               "synthetic", "--json", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["notes"] == r["n_notes"] == 2 and "over 2 notes" in out       # bass_synthetic, vocal_synthetic
    _run("eval", tmp_path / "pca.pt", nsynth, "--split", "valid", "--perceptual-notes", "0", "--pitches", "60-90",
         "--max-notes", "1", "--json", tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text())["notes"] == 1
    _run("encode", nsynth, "--split", "train", "--model", tmp_path / "pca.pt", "--velocities", "127,50",
         "-o", tmp_path / "z.pt")
    z = torch.load(tmp_path / "z.pt", weights_only=True)
    assert z["latents"].shape == (4, 4) and sorted(z["velocity"].tolist()) == [50, 50, 127, 127]
    assert set(z["family"]) == {"mallet", "organ"}
    with pytest.raises(SystemExit) as e:
        main(["spectral", "eval", str(tmp_path / "pca.pt"), str(nsynth), "--families", "vocal", "--sources",
              "acoustic", "--perceptual-notes", "0"])
    assert e.value.code == 2 and "match the selection" in capsys.readouterr().err


def _fake_notes(n: int, frames: int = 32, bins: int = 16):
    """Notes whose frames carry their own index: (index, frame) -> value."""
    return [(i, frames, bins) for i in range(n)]


def _fake_features(note):
    i, frames, bins = note
    return np.full((frames, bins), float(i), dtype=np.float32)


def test_training_memory_is_bounded_whatever_the_number_of_notes():
    import weakref
    alive: list = []
    most_alive = 0

    def features(note):
        # the notes are streamed: when a note is read, no earlier note's frames may still be held
        nonlocal most_alive
        arr = _fake_features(note)
        alive[:] = [r for r in alive if r() is not None]
        most_alive = max(most_alive, len(alive))
        alive.append(weakref.ref(arr))
        return arr

    for n in (200, 4000):
        seg = load_segments(_fake_notes(n), None, seq_len=4, segments_per_note=0, seed=0, max_frames=400,
                            features=features)
        assert seg.shape == (100, 4, 16)                    # max_frames // seq_len segments, never more
    assert most_alive == 0
    # reservoir sampling keeps every segment with the same chance: the kept notes spread over the whole set
    ids = seg[:, 0, 0].numpy()
    assert 0.35 * 4000 < ids.mean() < 0.65 * 4000 and ids.min() < 800 and ids.max() > 3200


def test_below_the_bound_every_segment_is_kept_in_order():
    seg = load_segments(_fake_notes(10), None, seq_len=4, segments_per_note=0, seed=0, max_frames=10_000,
                        features=_fake_features)
    assert seg.shape == (80, 4, 16)
    np.testing.assert_array_equal(seg[::8, 0, 0].numpy(), np.arange(10))


def test_default_synthetic_set_is_large_and_the_cli_says_the_same():
    from stylekit.spectral.cli import synth_cmd
    from stylekit.spectral.config import SynthConfig, format_int_list, parse_int_list
    cfg = SynthConfig()
    instruments = len(cfg.programs) * len(cfg.soundfonts)
    assert instruments >= 60 and instruments * len(cfg.pitches) * len(cfg.velocities) >= 10_000
    assert len(cfg.pitches) > 25 and len(cfg.velocities) > 5       # more than the earlier 24-instrument set
    defaults = {p.name: p.default for p in synth_cmd.params}
    assert parse_int_list(defaults["programs"], lo=0, hi=119, name="p") == cfg.programs
    assert parse_int_list(defaults["pitches"], lo=0, hi=127, name="p") == cfg.pitches
    assert parse_int_list(defaults["velocities"], lo=1, hi=127, name="v") == cfg.velocities
    assert format_int_list((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
