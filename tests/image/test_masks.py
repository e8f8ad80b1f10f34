"""Spatial masks and the distribution style losses through the image pipeline, the tiling and the command."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylekit import StylizeInterrupted, stylize_image
from stylekit.cli import cli
from stylekit.features import VGG19Features
from stylekit.image import load_image
from stylekit.image.tiling import TiledStyleTransferLoss
from stylekit.losses import StyleTransferLoss, gram_matrix

LAYERS = {"relu1_1": 0.5, "relu2_1": 0.5}
FAST = dict(size=48, scales=1, iterations=40, device="cpu", style_layers=LAYERS, content_layers={"relu2_1": 1.0})


def _save_mask(path, array):
    Image.fromarray((np.asarray(array) * 255).astype(np.uint8)).save(path)
    return path


def _halves(h, w):
    left = torch.zeros(h, w)
    left[:, : w // 2] = 1
    return left, 1 - left


def test_two_regions_each_take_their_own_style(content_png, style_jpg, style2_png):
    torch.manual_seed(0)
    content = load_image(content_png)
    left, right = _halves(*content.shape[-2:])
    out = stylize_image(content, [style_jpg, style2_png], style_masks=[left, right], style_weight=50.0, **FAST).data
    net = VGG19Features(list(LAYERS), winograd=False)
    with torch.no_grad():
        styles = [net(load_image(p, long_edge=48)) for p in (style_jpg, style2_png)]
        w = out.shape[-1]
        regions = [net(out[..., : w // 2]), net(out[..., w // 2:])]

    def dist(f, s):
        return sum(float((gram_matrix(f[k]) - gram_matrix(s[k])).norm() / gram_matrix(s[k]).norm()) for k in LAYERS)

    for i, region in enumerate(regions):
        own, other = dist(region, styles[i]), dist(region, styles[1 - i])
        assert own < other, (i, own, other)


def test_one_white_mask_is_the_unmasked_run(tmp_path, content_png, style_jpg):
    white = _save_mask(tmp_path / "white.png", np.ones((32, 48)))
    kw = dict(FAST, iterations=5)
    a = stylize_image(content_png, [style_jpg], **kw).data
    b = stylize_image(content_png, [style_jpg], style_masks=(str(white),), **kw).data
    assert torch.equal(a, b)


@pytest.mark.parametrize("loss", ["gram", "mean-std", "w2"])
def test_tiled_masked_objective_equals_whole_image(loss):
    # float64: exactness is a property of the arithmetic (in float32 the covariance's cancellation rounds)
    g = torch.Generator().manual_seed(0)
    content, x = (torch.rand(1, 3, 40, 56, generator=g, dtype=torch.float64) for _ in range(2))
    styles = [torch.rand(1, 3, 30, 30, generator=g, dtype=torch.float64),
              torch.rand(1, 3, 36, 28, generator=g, dtype=torch.float64)]
    masks = torch.stack(_halves(40, 56))[:, None]
    masks[1, ..., 20:30] = 0.5           # overlap and a grey band
    cmask = torch.rand(1, 1, 40, 56, generator=g)
    net = VGG19Features(["relu1_1", "relu2_1", "relu2_2"], winograd=False).double()
    args = dict(content_layers={"relu2_2": 1.0}, style_layers=LAYERS, style_loss=loss, style_weight=5.0)
    plain, tiled = StyleTransferLoss(net, **args), TiledStyleTransferLoss(net, tile=16, **args)
    for crit in (plain, tiled):
        crit.set_content(content, mask=cmask)
        crit.set_style_features([{k: v for k, v in net(s).items() if k in LAYERS} for s in styles], masks=masks)
    values = []
    for crit in (plain, tiled):
        y = x.clone().requires_grad_(True)
        total, terms = crit(y)
        (grad,) = torch.autograd.grad(total, y)
        values.append((total.detach(), grad))
    # (the style targets and masks are stored in float32: agreement to ~1e-7, not to float64 rounding)
    torch.testing.assert_close(values[0][0], values[1][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(values[0][1], values[1][1], rtol=1e-4, atol=1e-6 * float(values[0][1].abs().max()))


@pytest.mark.parametrize("optimizer, keys", [("lbfgs", [0, 0, 1, 1, 2, 2]), ("adam", [0, 1, 2, 3, 4, 5])])
def test_sliced_wasserstein_directions_are_held_for_lbfgs(content_png, style_jpg, monkeypatch, optimizer, keys):
    # L-BFGS keeps one set of directions for SW_LBFGS_HOLD steps (a consistent objective for its curvature
    # pairs); Adam draws at every step; a run interrupted inside a hold resumes with the same draws.
    import stylekit.image.pipeline as pipeline
    from stylekit.losses import SlicedWassersteinStyleLoss
    monkeypatch.setattr(pipeline, "SW_LBFGS_HOLD", 2)
    drawn: list[int] = []
    shapes: set[tuple[int, int]] = set()
    redraw = SlicedWassersteinStyleLoss.redraw

    def spy(self, key):
        drawn.append(int(key))
        shapes.update(tuple(b.shape) for name, b in self.named_buffers() if name.startswith("proj_"))
        return redraw(self, key)

    monkeypatch.setattr(SlicedWassersteinStyleLoss, "redraw", spy)
    kw = dict(FAST, iterations=6, style_loss="sw", optimizer=optimizer)
    full = stylize_image(content_png, [style_jpg], **kw).data
    assert drawn[1:] == keys            # (drawn[0]: the loss draws set 0 when it is made)
    # the pipeline's directions per channel (relu1_1: 64 channels)
    assert (64, round(64 * pipeline.SW_PROJECTION_RATIO)) in shapes and pipeline.SW_PROJECTION_RATIO > 1
    assert torch.equal(full, _interrupted_and_resumed(content_png, style_jpg, 3, **kw))


def _interrupted_and_resumed(content, style, after: int, **kw) -> torch.Tensor:
    """The result of a run interrupted (Ctrl-C) at its ``after``-th progress call, then resumed."""
    n = {"calls": 0}

    def stop(p):
        n["calls"] += 1
        if n["calls"] == after:
            raise KeyboardInterrupt

    with pytest.raises(StylizeInterrupted) as e:
        stylize_image(content, [style], callback=stop, **kw)
    return stylize_image(content, [style], resume=e.value.state, **kw).data


def test_sliced_wasserstein_run_is_deterministic_and_resumes_exactly(content_png, style_jpg):
    kw = dict(FAST, iterations=6, style_loss="sw", scales=2, min_size=24, coarse_iterations=4)
    full = stylize_image(content_png, [style_jpg], **kw).data
    assert torch.equal(full, stylize_image(content_png, [style_jpg], **kw).data)
    assert torch.equal(full, _interrupted_and_resumed(content_png, style_jpg, 7, **kw))


def _run(*args):
    return CliRunner().invoke(cli, ["image", *map(str, args)], catch_exceptions=False)


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


CLI_FAST = ["--size", "32", "--iterations", "2", "--scales", "1", "-q"]


def test_masked_command_records_masks_and_accepts_stretch(tmp_path, content_png, style_jpg, style2_png):
    left, right = (_save_mask(tmp_path / f"{n}.png", m.numpy()) for n, m in zip("lr", _halves(32, 48)))
    out = tmp_path / "o.png"
    r = _run(content_png, style_jpg, style2_png, "-o", out, *CLI_FAST, "--style-mask", left, "--style-mask", right,
             "--content-mask", left, "--style-loss", "w2")
    assert r.exit_code == 0, r.output
    from stylekit.image import read_metadata
    cfg = read_metadata(out)["config"]
    assert cfg["style_masks"] == ["l.png", "r.png"] and cfg["content_mask"] == "l.png"   # by name
    square = _save_mask(tmp_path / "square.png", np.ones((20, 20)))
    assert _run(content_png, style_jpg, "-o", tmp_path / "s.png", *CLI_FAST, "--style-mask", square,
                "--mask-resize", "stretch").exit_code == 0


def test_batch_takes_one_style_mask_per_style_and_a_comma_in_a_mask_name(tmp_path, content_png, style_jpg,
                                                                         style2_png):
    left, right = (_save_mask(tmp_path / f"{n}.png", m.numpy()) for n, m in zip(["a,left", "right"], _halves(32, 48)))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["batch", str(content_png), "--style", str(style_jpg), "--style", str(style2_png),
                                 "-o", str(out), *CLI_FAST, "--device", "cpu", "--workers", "0",
                                 "--style-mask", str(left), "--style-mask", str(right)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    from stylekit.image import read_metadata
    written = [f for f in out.iterdir() if f.suffix == ".png"]
    assert len(written) == 1
    assert read_metadata(written[0])["config"]["style_masks"] == ["a,left.png", "right.png"]
    again = tmp_path / "again"
    r = CliRunner().invoke(cli, ["batch", str(content_png), "--style", str(style_jpg), "--style", str(style2_png),
                                 "-o", str(again), *CLI_FAST, "--device", "cpu", "--workers", "0", "--full-paths",
                                 "--style-mask", str(left), "--style-mask", str(right)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = read_metadata(next(f for f in again.iterdir() if f.suffix == ".png"))
    assert meta["config"]["style_masks"] == [str(left.resolve()), str(right.resolve())]
    assert meta["content"] == str(content_png.resolve())


def test_bad_masks_and_losses_exit_2_with_one_line(tmp_path, content_png, style_jpg, style2_png):
    left, right = (_save_mask(tmp_path / f"{n}.png", m.numpy()) for n, m in zip("lr", _halves(32, 48)))
    black = _save_mask(tmp_path / "black.png", np.zeros((32, 48)))
    square = _save_mask(tmp_path / "square.png", np.ones((20, 20)))
    text = tmp_path / "mask.png"
    text.write_text("not an image")
    base = [content_png, style_jpg, style2_png, "-o", tmp_path / "o.png", *CLI_FAST]
    cases = [(["--style-mask", text, "--style-mask", left], "not an image"),
             (["--style-mask", left], "1 time(s) for 2 style"),
             (["--style-mask", black, "--style-mask", left], "black everywhere"),
             (["--style-mask", square, "--style-mask", right], "--mask-resize stretch"),
             (["--content-mask", square], "aspect ratio"),
             (["--style-loss", "nope"], "style-loss")]
    for extra, needle in cases:
        assert needle in _one_line_error(_run(*base, *extra)), extra
    assert not (tmp_path / "o.png").exists()
    line = _one_line_error(_run(content_png, style_jpg, "-o", tmp_path / "t.png", *CLI_FAST, "--style-loss", "sw",
                                "--tile", "16"))
    assert "sw cannot be tiled" in line
