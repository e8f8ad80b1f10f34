"""`stylekit image` through click's CliRunner on tiny images, and the Python API it shares its config with."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylekit
from stylekit.cli import cli
from stylekit.image import load_image, read_metadata
from stylekit.image import ImageStyleConfig
from stylekit.image.cli import image as image_cmd

FAST = ["--size", "32", "--iterations", "3", "--coarse-iterations", "2", "--scales", "1", "-q"]


def run(*args):
    return CliRunner().invoke(cli, ["image", *map(str, args)], catch_exceptions=False)


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_basic_run_writes_output_with_settings(tmp_path, content_png, style_jpg):
    out = tmp_path / "out.png"
    r = run(content_png, style_jpg, "-o", out, *FAST)
    assert r.exit_code == 0, r.output
    x = load_image(out)
    assert x.shape == (1, 3, 21, 32)
    meta = read_metadata(out)
    # the inputs by name: a shared output shows no private folders (--full-paths records them)
    assert meta["config"]["iterations"] == 3 and meta["content"] == content_png.name
    assert meta["styles"] == [style_jpg.name] and str(tmp_path) not in json.dumps(meta)
    # the result differs from the content: the style moved something
    assert (x - load_image(content_png, long_edge=32)).abs().mean() > 0.005


def test_no_overwrite_without_flag(tmp_path, content_png, style_jpg):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    line = one_line_error(run(content_png, style_jpg, "-o", out, *FAST))
    assert "already exists" in line and "--overwrite" in line
    assert out.read_bytes() == b"precious"
    assert run(content_png, style_jpg, "-o", out, *FAST, "--overwrite").exit_code == 0
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("extra,needle", [
    (["--style-weight", "-1"], "style-weight"),
    (["--content-layers", "relu9_9"], "relu9_9"),
    (["--iterations", "0"], "iterations"),
    (["--size", "8"], "minimum is 16"),
    (["--pooling", "median"], "pooling"),
    (["--style-blend", "1,2"], "style-blend"),
    (["--init", "nothere.png"], "init"),
    (["--style-layers", "relu1_1:abc"], "layer weight"),
    (["--bit-depth", "16"], "tif"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, content_png, style_jpg, extra, needle):
    line = one_line_error(run(content_png, style_jpg, "-o", tmp_path / "o.png", *FAST, *extra))
    assert needle in line
    assert not (tmp_path / "o.png").exists()


def test_bad_paths(tmp_path, content_png, style_jpg):
    assert "nothere.png" in one_line_error(run(tmp_path / "nothere.png", style_jpg, "-o", tmp_path / "o.png", *FAST))
    assert "does not exist" in one_line_error(run(content_png, style_jpg, "-o", tmp_path / "no" / "o.png", *FAST))
    assert "same as an input" in one_line_error(run(content_png, style_jpg, "-o", content_png, "--overwrite", *FAST))
    assert "format" in one_line_error(run(content_png, style_jpg, "-o", tmp_path / "o.gifx", *FAST))
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    line = one_line_error(run(content_png, text, "-o", tmp_path / "o.png", *FAST))
    assert "text.jpg" in line and "not an image" in line
    assert "Missing argument" in one_line_error(CliRunner().invoke(cli, ["image", str(content_png), "-o", "x.png"]))


@pytest.mark.parametrize("extra", [
    ["--preserve-color", "luminance"], ["--preserve-color", "histogram"], ["--init", "noise", "--seed", "3"],
    ["--pooling", "avg"], ["--optimizer", "adam"], ["--weights", "caffe", "--device", "cpu", "--tv-weight", "1"],
    ["--content-layers", "relu3_2", "--style-layers", "relu1_1:1,relu2_1:0.5", "--style-scale", "0.5"],
])
def test_options_run(tmp_path, content_png, style_jpg, extra):
    out = tmp_path / "o.png"
    r = run(content_png, style_jpg, "-o", out, *FAST, *extra)
    assert r.exit_code == 0, r.output
    assert load_image(out).shape == (1, 3, 21, 32)


def test_luminance_mode_keeps_content_colours(tmp_path, content_png, style_jpg):
    out = tmp_path / "o.png"
    assert run(content_png, style_jpg, "-o", out, *FAST, "--preserve-color", "luminance").exit_code == 0
    from stylekit.image import rgb_to_yiq
    iq_out = rgb_to_yiq(load_image(out))[:, 1:]
    iq_content = rgb_to_yiq(load_image(content_png, long_edge=32))[:, 1:]
    assert (iq_out - iq_content).abs().max() < 0.02


def test_blend_two_styles_save_every_plot_and_formats(tmp_path, content_png, style_jpg, style2_png):
    out = tmp_path / "o.jpg"
    r = run(content_png, style_jpg, style2_png, "-o", out, *FAST, "--style-blend", "0.7,0.3", "--save-every", "2",
            "--plot", "--scales", "2", "--size", "40")
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "o.plot.png").exists()
    assert sorted(p.name for p in tmp_path.glob("o.step*.jpg"))
    assert read_metadata(out)["config"]["style_blend"] == [0.7, 0.3]
    tif = tmp_path / "o16.tif"
    assert run(content_png, style_jpg, "-o", tif, *FAST, "--bit-depth", "16").exit_code == 0
    with Image.open(tif) as img:
        assert img.size == (32, 21)


def test_interrupt_saves_best_and_exits_130(tmp_path, content_png, style_jpg, monkeypatch):
    import stylekit.optim as optim
    real = optim._evaluate
    calls = {"n": 0}

    def interrupting(criterion, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(criterion, x)
    monkeypatch.setattr(optim, "_evaluate", interrupting)
    out = tmp_path / "o.png"
    r = CliRunner().invoke(cli, ["image", str(content_png), str(style_jpg), "-o", str(out), *FAST, "--iterations", "50"])
    assert r.exit_code == 130
    assert load_image(out).shape == (1, 3, 21, 32)
    assert read_metadata(out)["interrupted_at"] == 2


def test_cli_defaults_come_from_the_config(monkeypatch):
    # every config field is an option; left out, it takes the library's default, which --help shows
    import stylekit._command as command
    from stylekit._options import cli_fields
    from stylekit.image.job import ImageJob
    names = {p.name for p in image_cmd.params}
    assert {f.name for f, _ in cli_fields(ImageStyleConfig)} <= names
    seen = []
    monkeypatch.setattr(command, "run_job", lambda job, **kw: seen.append(job))
    monkeypatch.setattr(ImageJob, "load", lambda self: None)
    r = CliRunner().invoke(image_cmd, ["c.png", "s.png", "-o", "never.png"], standalone_mode=False)
    assert r.exception is None, r.output
    assert seen[0].config == ImageStyleConfig()
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", CliRunner().invoke(image_cmd, ["--help"]).output).split())
    assert "--iterations INTEGER" in text and "[default: 60]" in text and "[default: relu4_2:1]" in text


def test_python_api(content_png, style_jpg):
    result = stylekit.stylize_image(content_png, [style_jpg], size=32, iterations=3, coarse_iterations=2, scales=1)
    out = result.data
    assert out.shape == (1, 3, 21, 32) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert result.size == (21, 32) and result.config.size == 32 and not result.interrupted
    again = stylekit.stylize_image(content_png, style_jpg, config=ImageStyleConfig(size=32, iterations=3, scales=1))
    assert torch.equal(out, again.data)  # deterministic, and a single style need not be a list
    with pytest.raises(stylekit.StylekitError):
        stylekit.stylize_image(content_png, [style_jpg], size=32, iterations=-5)
    assert dataclasses.replace(ImageStyleConfig(), size=64).size == 64
    json.dumps(ImageStyleConfig().to_dict())
    cfg = ImageStyleConfig(size=64, style_blend=(0.7, 0.3), style_layers={"relu2_1": 0.5}, tile=64)
    assert ImageStyleConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(stylekit.StylekitError, match="unknown image option"):
        ImageStyleConfig.from_dict({"iterationz": 3})


def test_style_targets_are_computed_once_and_give_identical_results(content_png, style_jpg, monkeypatch):
    from stylekit.image import pipeline
    opts = dict(size=32, iterations=3, coarse_iterations=2, scales=2, min_size=16)
    a = stylekit.stylize_image(content_png, [style_jpg], **opts).data
    targets = stylekit.style_targets([style_jpg], **opts)
    assert len(targets.features) == 2  # one entry per scale
    calls = []
    real = pipeline.resize_long_edge
    monkeypatch.setattr(pipeline, "resize_long_edge", lambda x, e: calls.append(e) or real(x, e))
    b = stylekit.stylize_image(content_png, targets, **opts).data
    c = stylekit.stylize_image(content_png, targets, **opts).data
    assert len(calls) == 2  # the content only: no style image is resized (nor run through the network) again
    assert torch.equal(a, b) and torch.equal(b, c)


def test_interrupt_then_resume_matches_uninterrupted_run(tmp_path, content_png, style_jpg, monkeypatch):
    import stylekit.optim as optim
    args = [str(content_png), str(style_jpg), "--size", "32", "--iterations", "6", "--coarse-iterations", "4",
            "--scales", "2", "--min-size", "16", "-q"]
    full = tmp_path / "full.png"
    assert CliRunner().invoke(cli, ["image", *args, "-o", str(full)]).exit_code == 0
    real = optim._evaluate
    calls = {"n": 0}

    def interrupting(criterion, x):
        calls["n"] += 1
        if calls["n"] == 7:  # during the second scale
            raise KeyboardInterrupt
        return real(criterion, x)
    monkeypatch.setattr(optim, "_evaluate", interrupting)
    part = tmp_path / "part.png"
    assert CliRunner().invoke(cli, ["image", *args, "-o", str(part)]).exit_code == 130
    ckpt = tmp_path / "part.ckpt.pt"
    assert ckpt.exists()
    monkeypatch.setattr(optim, "_evaluate", real)
    done = tmp_path / "done.png"
    r = CliRunner().invoke(cli, ["image", *args, "-o", str(done), "--resume", str(ckpt)])
    assert r.exit_code == 0, r.output
    a, b = load_image(full), load_image(done)
    assert (a - b).abs().max() <= 2 / 255


def test_foreign_or_mismatched_checkpoint_is_refused(tmp_path, content_png, style_jpg, style2_png):
    import pickle
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(print))  # a pickle that would call code
    line = one_line_error(run(content_png, style_jpg, "-o", tmp_path / "o.png", *FAST, "--resume", evil))
    assert "evil.pt" in line and "not a stylekit checkpoint" in line
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    assert "not a stylekit image checkpoint" in one_line_error(
        run(content_png, style_jpg, "-o", tmp_path / "o.png", *FAST, "--resume", other))
    from stylekit._checkpoint import write_checkpoint
    from stylekit.image.job import CHECKPOINT_FORMAT
    good = tmp_path / "good.pt"
    write_checkpoint(good, CHECKPOINT_FORMAT, [content_png, style_jpg],
                     {"config": ImageStyleConfig(size=32).to_dict(), "state": {"scale": 0}}, overwrite=False)
    assert "different content or style" in one_line_error(
        run(content_png, style2_png, "-o", tmp_path / "o.png", *FAST, "--resume", good))


def test_dry_run_prints_estimate_and_writes_nothing(tmp_path, content_png, style_jpg):
    out = tmp_path / "out.png"
    r = run(content_png, style_jpg, "-o", out, "--size", "64", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "estimated peak memory" in r.output and "estimated time" in r.output
    assert not out.exists()


def test_run_that_cannot_fit_fails_with_the_estimate(tmp_path, content_png, style_jpg):
    out = tmp_path / "out.png"
    line = one_line_error(run(content_png, style_jpg, "-o", out, "--size", "64", "--tile", "off",
                              "--max-memory", "0.001"))
    assert "needs about" in line
    assert not out.exists()


def test_save_every_in_luminance_mode_saves_colour_images(tmp_path, content_png, style_jpg):
    out = tmp_path / "out.png"
    r = run(content_png, style_jpg, "-o", out, *FAST, "--preserve-color", "luminance", "--save-every", "2")
    assert r.exit_code == 0, r.output
    snap = load_image(tmp_path / "out.step00002.png")
    assert float((snap[:, 0] - snap[:, 2]).abs().mean()) > 0.01   # the content's colours, not a grey iterate


@pytest.mark.parametrize("args, words", [
    (["--size", str(2 ** 70)], "size must be an integer in"),
    (["--size", "100000"], "whole-image tensors alone"),
    (["--style-scale", "1e9"], "style-scale must be a finite number"),
    (["--content-weight", "0", "--style-weight", "0"], "all zero"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--iterations", "-1"], "iterations must be an integer"),
    (["--device", "tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
])
def test_numbers_past_any_sense_are_one_line_before_any_work(tmp_path, content_png, style_jpg, args, words):
    out = tmp_path / "o.png"
    line = one_line_error(run(content_png, style_jpg, "-o", out, *args))
    assert words in line and not out.exists()


def test_any_integer_seed_is_accepted_and_always_gives_the_same_run(content_png, style_jpg):
    kw = dict(size=32, iterations=2, scales=1, init="noise")
    a = stylekit.stylize_image(content_png, style_jpg, seed=2 ** 70, **kw)
    b = stylekit.stylize_image(content_png, style_jpg, seed=2 ** 70, **kw)
    assert torch.equal(a.data, b.data) and 0 <= a.config.seed < 2 ** 64
