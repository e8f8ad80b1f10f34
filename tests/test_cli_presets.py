"""Presets and the settings in an output: ``--config FILE.toml``, ``stylekit settings OUTPUT``, input names
instead of paths, and the scales that actually ran; each through the command line on tiny inputs."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from stylekit.cli import cli
from stylekit.image import ImageStyleConfig, read_metadata
from stylekit.image.job import ImageJob, ImageOutput

FAST = ["--size", "32", "--iterations", "2", "--coarse-iterations", "2", "--scales", "1", "-q"]


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_export_and_replay_give_the_same_settings_digest(tmp_path, content_png, style_jpg, style2_png):
    """run -> stylekit settings -> --config: the replay is the same work (same digest, config and output)."""
    init = tmp_path / "start.png"
    shutil.copy(content_png, init)
    out = tmp_path / "out.tif"
    r = run("image", content_png, style_jpg, style2_png, "-o", out, *FAST, "--style-weight", "7.25",
            "--content-layers", "relu4_2:0.123456789,relu3_1", "--style-blend", "0.7,0.3", "--init", init,
            "--preserve-color", "luminance", "--tile", "64", "--bit-depth", "16", "--seed", "3")
    assert r.exit_code == 0, r.output
    preset = tmp_path / "preset.toml"
    r = run("settings", out, "-o", preset)
    assert r.exit_code == 0, r.output
    text = preset.read_text()
    assert "style-weight = 7.25" in text and "[image]\nbit-depth = 16" in text and str(tmp_path) not in text
    # printed without -o: the same preset (its comments name no preset file)
    printed = run("settings", out).stdout
    assert "--config PRESET.toml" in printed and "--config preset.toml" in text
    assert [ln for ln in printed.splitlines() if not ln.startswith("#")] == \
        [ln for ln in text.splitlines() if not ln.startswith("#")]
    again = tmp_path / "again.tif"
    cwd = os.getcwd()
    os.chdir(tmp_path)       # the preset names its files (the init image) by name: replay beside them
    try:
        r = run("image", content_png, style_jpg, style2_png, "-o", again, "--config", preset, "-q")
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    a, b = read_metadata(out), read_metadata(again)
    assert a["settings_sha256"] == b["settings_sha256"] and a["config"] == b["config"]
    assert a["config"]["content_layers"] == {"relu4_2": 0.123456789, "relu3_1": 1.0}
    # batch takes the same preset: the output's own options ([image]) are stylekit image's only
    os.chdir(tmp_path)
    try:
        r = run("batch", content_png, "--style", style_jpg, "--style", style2_png, "-o", tmp_path / "b",
                "--config", preset, "--workers", "0", "-q", "--size", "32", "--iterations", "2", "--scales", "1")
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    # and the first output is "done" for a job built from the preset's settings
    cfg = ImageStyleConfig.from_dict({**a["config"], "init": str(init)})
    assert ImageJob(content_png, [style_jpg, style2_png], out, cfg, options=ImageOutput(bit_depth=16)).status() \
        == ("done", None)


def test_an_option_typed_on_the_command_line_wins_over_the_preset(tmp_path, content_png, style_jpg):
    preset = tmp_path / "p.toml"
    preset.write_text('style-weight = 9.0\niterations = 2\nsize = 32\nscales = 1\n'
                      '[image]\ncontent_weight = 0.5\n[audio]\nsteps = 1000\n')
    out = tmp_path / "o.png"
    r = run("image", content_png, style_jpg, "-o", out, "--config", preset, "--style-weight", "2", "-q")
    assert r.exit_code == 0, r.output
    cfg = read_metadata(out)["config"]
    assert (cfg["style_weight"], cfg["iterations"], cfg["content_weight"]) == (2.0, 2, 0.5)


@pytest.mark.parametrize("body,needles", [
    ("no-such-option = 1\n", ["p.toml", "'no-such-option' is not an option of stylekit image"]),
    ("plot = 3\n", ["plot is a switch"]),
    ("style-weight = \n", ["p.toml", "not a TOML preset"]),
    ("style-weight = -1.0\n", ["style-weight"]),
    ("[image]\nstyle-weigth = 1.0\n", ["style-weigth"]),
])
def test_bad_presets_are_one_line(tmp_path, content_png, style_jpg, body, needles):
    preset = tmp_path / "p.toml"
    preset.write_text(body)
    one_line_error(run("image", content_png, style_jpg, "-o", tmp_path / "o.png", "--config", preset, *FAST),
                   *needles)
    assert not (tmp_path / "o.png").exists()


def test_missing_preset_and_output_without_settings_are_one_line(tmp_path, content_png, style_jpg):
    one_line_error(run("image", content_png, style_jpg, "-o", tmp_path / "o.png", "--config",
                       tmp_path / "none.toml"), "none.toml", "no such preset")
    one_line_error(run("settings", content_png), "content.png", "no stylekit settings")
    one_line_error(run("settings", content_png, "-o", tmp_path / "x.json"), "no stylekit settings")


def test_settings_refuses_to_overwrite_and_wants_toml(tmp_path, content_png, style_jpg):
    out = tmp_path / "o.png"
    assert run("image", content_png, style_jpg, "-o", out, *FAST).exit_code == 0
    one_line_error(run("settings", out, "-o", tmp_path / "p.json"), ".toml")
    keep = tmp_path / "p.toml"
    keep.write_text("precious")
    one_line_error(run("settings", out, "-o", keep), "already exists")
    assert keep.read_text() == "precious"
    assert run("settings", out, "-o", keep, "--overwrite").exit_code == 0 and "iterations = 2" in keep.read_text()


def test_audio_settings_round_trip_with_spectrogram_and_output_options(tmp_path):
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from _audio_data import textureish, voiceish, write
    from stylekit.audio.io import read_metadata as read_wav_meta

    content, style = write(tmp_path / "v.wav", voiceish(0.4)), write(tmp_path / "t.wav", textureish(0.5))
    out, again, preset = tmp_path / "o.wav", tmp_path / "o2.wav", tmp_path / "p.toml"
    common = ["--steps", "2", "--griffin-lim-iters", "2", "-q"]
    r = run("audio", content, style, "-o", out, *common, "--n-mels", "64", "--fmax", "8000", "--float",
            "--style-weight", "12.5")
    assert r.exit_code == 0, r.output
    assert run("settings", out, "-o", preset).exit_code == 0
    text = preset.read_text()
    assert "n-mels = 64" in text and "fmax = 8000.0" in text and "float = true" in text
    assert run("audio", content, style, "-o", again, "--config", preset, "-q").exit_code == 0
    a, b = read_wav_meta(out), read_wav_meta(again)
    assert a["settings_sha256"] == b["settings_sha256"] and a["config"] == b["config"] and b.get("float")


# --- input names, not paths -------------------------------------------------------------------------------

def test_outputs_name_their_inputs_and_full_paths_is_opt_in(tmp_path, content_png, style_jpg):
    mask = tmp_path / "mask.png"
    shutil.copy(content_png, mask)
    named, full = tmp_path / "named.png", tmp_path / "full.png"
    args = [content_png, style_jpg, *FAST, "--content-mask", mask]
    assert run("image", *args, "-o", named).exit_code == 0
    assert run("image", *args, "-o", full, "--full-paths").exit_code == 0
    a, b = read_metadata(named), read_metadata(full)
    assert (a["content"], a["styles"], a["config"]["content_mask"]) == ("content.png", ["style.jpg"], "mask.png")
    assert str(tmp_path) not in json.dumps(a)
    assert (b["content"], b["config"]["content_mask"]) == (str(content_png.resolve()), str(mask.resolve()))
    assert a["settings_sha256"] == b["settings_sha256"]        # how inputs are recorded is not the work


def test_a_finished_output_is_done_from_any_folder(tmp_path, content_png, style_jpg):
    """The digest compares files by absolute path, so the same run typed with relative names from the output's
    folder, or with absolute paths from elsewhere, finds the output done (batch skips it; no conflict)."""
    mask = tmp_path / "mask.png"
    shutil.copy(content_png, mask)
    out = tmp_path / "o.png"
    assert run("image", content_png, style_jpg, "-o", out, *FAST, "--content-mask", mask).exit_code == 0
    cfg = dict(size=32, iterations=2, coarse_iterations=2, scales=1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rel = ImageJob("content.png", ["style.jpg"], "o.png", ImageStyleConfig(**cfg, content_mask="mask.png"))
        assert rel.status() == ("done", None)
        other = ImageJob("content.png", ["style.jpg"], "o.png", ImageStyleConfig(**cfg, content_mask="other.png"))
        assert other.status()[0] == "conflict"
    finally:
        os.chdir(cwd)


# --- the scales that ran ---------------------------------------------------------------------------------

def test_a_size_too_small_for_the_scales_is_said_and_recorded(tmp_path, content_png, style_jpg):
    out = tmp_path / "o.png"
    r = run("image", content_png, style_jpg, "-o", out, "--size", "64", "--scales", "3", "--iterations", "2",
            "--coarse-iterations", "2")
    assert r.exit_code == 0, r.output
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert notes == ["note: 1 of --scales 3 will run: a 64 px output leaves no room for more above --min-size "
                     "160 (lower --min-size, or raise --size)"]
    meta = read_metadata(out)
    assert meta["config"]["scales"] == 3 and meta["scales_run"] == ["64x43"]
    # scales that fit run and are recorded, without a note
    out2 = tmp_path / "o2.png"
    r = run("image", content_png, style_jpg, "-o", out2, "--size", "64", "--scales", "2", "--min-size", "32",
            "--iterations", "2", "--coarse-iterations", "2")
    assert r.exit_code == 0 and "note:" not in r.stderr, r.output
    assert read_metadata(out2)["scales_run"] == ["32x22", "64x43"]


def test_batch_reads_a_preset_with_its_own_table(tmp_path, content_png, style_jpg):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(content_png, folder / "c.png")
    preset = tmp_path / "p.toml"
    preset.write_text('iterations = 2\nsize = 32\nscales = 1\nstyle-weight = 3.5\n'
                      '[batch]\nworkers = 0\nformat = "jpg"\n[image]\nbit-depth = 16\n')
    out = tmp_path / "out"
    r = run("batch", folder, "--style", style_jpg, "-o", out, "--config", preset, "-q")
    assert r.exit_code == 0, r.output
    cfg = read_metadata(out / "c.jpg")["config"]      # [batch] applied; [image] is stylekit image's only
    assert (cfg["iterations"], cfg["size"], cfg["style_weight"]) == (2, 32, 3.5)
    # the run is done: the same command skips it
    r = run("batch", folder, "--style", style_jpg, "-o", out, "--config", preset)
    assert r.exit_code == 0 and "0 done, 1 skipped" in r.output, r.output
