"""Exact tiled evaluation: the tiled objective and gradient equal the whole-image ones."""
import pytest
import torch

from stylekit.features import VGG19Features
from stylekit.losses import StyleTransferLoss, gram_matrix
from stylekit.image.tiling import TiledStyleTransferLoss, halo_for, layer_stride, receptive_field, tile_grid, tiled_grams


def test_receptive_fields_match_the_architecture():
    # 3x3 convs add 2 * jump, 2x2 pools add jump and double it (VGG16's conv5_3 is the textbook 196).
    assert receptive_field("conv1_1") == 3
    assert receptive_field("relu1_2") == 5
    assert receptive_field("pool1") == 6
    assert receptive_field("relu3_1") == 24
    assert receptive_field("relu5_1") == 156
    assert layer_stride("relu1_1") == 1 and layer_stride("relu4_2") == 8 and layer_stride("pool5") == 32
    halo = halo_for(["relu1_1", "relu5_1"])
    assert halo % 16 == 0 and halo >= 156 // 2 + 16


@pytest.mark.parametrize("hw,tile", [((70, 101), 16), ((33, 17), 8), ((64, 64), 200)])
def test_cores_cover_the_image_exactly_once(hw, tile):
    cover = torch.zeros(hw, dtype=torch.int32)
    for t, _, _ in tile_grid(*hw, tile, layers=["relu3_1"]):
        y0, y1, x0, x1 = t.core
        ry0, ry1, rx0, rx1 = t.region
        assert ry0 <= y0 < y1 <= ry1 and rx0 <= x0 < x1 <= rx1
        assert ry0 % 4 == 0 and rx0 % 4 == 0      # regions start on the deepest stride: pools line up
        cover[y0:y1, x0:x1] += 1
    assert bool((cover == 1).all())


def _pair(layers_c, layers_s, tile, **kw):
    # Exactness is a property of the arithmetic of tiles, so compare with the direct convolutions: the Winograd
    # kernels round differently for differently placed windows (about 1e-5 per layer).
    net = VGG19Features([*layers_c, *layers_s], winograd=False)
    args = dict(content_layers={k: 1.0 for k in layers_c}, style_layers={k: 1.0 / len(layers_s) for k in layers_s},
                content_weight=1.0, style_weight=5.0, **kw)
    return net, StyleTransferLoss(net, **args), TiledStyleTransferLoss(net, tile=tile, **args)


def _value_grad(loss, x):
    x = x.clone().requires_grad_(True)
    total, terms = loss(x)
    (g,) = torch.autograd.grad(total, x)
    return total.detach(), {k: float(v.detach()) for k, v in terms.items()}, g


@pytest.mark.parametrize("normalize,tv", [(True, 0.0), (False, 0.5)])
def test_tiled_objective_and_gradient_equal_whole_image(normalize, tv):
    torch.manual_seed(0)
    content, style, x = torch.rand(1, 3, 70, 101), torch.rand(1, 3, 40, 50), torch.rand(1, 3, 70, 101)
    net, plain, tiled = _pair(["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"], 16, normalize=normalize, tv_weight=tv)
    plain.set_content(content)
    plain.set_style(style)
    tiled.set_content(content)
    tiled.set_style_features({k: v for k, v in net(style).items()})
    assert len(tiled.grid(70, 101)) == 5 * 7
    t0, terms0, g0 = _value_grad(plain, x)
    t1, terms1, g1 = _value_grad(tiled, x)
    assert float(t1) == pytest.approx(float(t0), rel=1e-5)
    assert terms1 == pytest.approx(terms0, rel=1e-5)
    assert float((g1 - g0).norm() / g0.norm()) < 1e-5


def test_tiled_deep_layers_exact():
    """Up to relu5_1 (receptive field 156 px) with cores smaller than the halo."""
    torch.manual_seed(1)
    content, x = torch.rand(1, 3, 200, 176), torch.rand(1, 3, 200, 176)
    net, plain, tiled = _pair(["relu4_2"], ["relu1_1", "relu3_1", "relu5_1"], 64)
    grams = tiled_grams(net, content.flip(-1), ["relu1_1", "relu3_1", "relu5_1"], 64)
    full = net(content.flip(-1))
    for k, g in grams.items():
        torch.testing.assert_close(g, gram_matrix(full[k]), rtol=1e-5, atol=1e-4)
    plain.set_content(content)
    plain.set_style_features({k: v for k, v in full.items()})
    tiled.set_content(content)
    tiled.set_style_grams(grams)
    t0, _, g0 = _value_grad(plain, x)
    t1, _, g1 = _value_grad(tiled, x)
    assert float(t1) == pytest.approx(float(t0), rel=1e-5)
    assert float((g1 - g0).norm() / g0.norm()) < 1e-5


def test_tiled_needs_matching_content():
    net, _, tiled = _pair(["relu2_2"], ["relu1_1"], 16)
    tiled.set_content(torch.rand(1, 3, 40, 40))
    tiled.set_style_features(net(torch.rand(1, 3, 40, 40)))
    from stylekit.errors import ConfigError
    with pytest.raises(ConfigError, match="same size"):
        tiled(torch.rand(1, 3, 48, 40))


# --- the pipeline: tiles, estimates, precision ---------------------------------------------------------------

def test_stylize_image_tiled_equals_untiled(content_png, style_jpg):
    from stylekit import stylize_image
    kw = dict(size=72, scales=1, iterations=4, style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
              content_layers={"relu2_2": 1.0}, device="cpu")
    whole = stylize_image(content_png, [style_jpg], tile="off", **kw).data
    tiled = stylize_image(content_png, [style_jpg], tile=16, **kw).data
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 2e-3


def test_estimates_scale_with_size_and_pick_tiles():
    import torch

    from stylekit.errors import ConfigError
    from stylekit.image.estimate import choose_tile, estimate_run, saved_bytes_per_pixel
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    net, cpu = VGG19Features(layers), torch.device("cpu")
    per_px = saved_bytes_per_pixel(net, cpu)
    assert 64 * 4 < per_px < 64 * 4 * 40          # at least conv1_1's output, at most a few dozen maps
    kw = dict(layers=layers, content_layers=["relu4_2"], calibrate=False)
    small = estimate_run(net, cpu, [(512, 512)], [1], **kw)
    large = estimate_run(net, cpu, [(1024, 1024)], [1], **kw)
    for part in ("activations", "optimiser"):     # grow with the pixels
        assert 3.0 < large.parts[part] / small.parts[part] < 4.2
    big = large.peak_bytes
    tiled = estimate_run(net, cpu, [(1024, 1024)], [1], tiles=[256], **kw)
    assert tiled.parts["activations"] < large.parts["activations"] / 2
    tiled = tiled.peak_bytes
    opts = dict(layers=layers, content_layers=["relu4_2"], optimizer="lbfgs")
    assert choose_tile(net, cpu, (512, 512), budget=big, **opts) is None
    assert choose_tile(net, cpu, (1024, 1024), budget=(tiled + big) / 2, **opts) is not None
    with pytest.raises(ConfigError, match="needs about"):
        choose_tile(net, cpu, (1024, 1024), budget=1e6, **opts)


def test_bf16_objective_close_to_fp32():
    import torch
    torch.manual_seed(0)
    net, plain, _ = _pair(["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"], 16)
    plain.set_content(torch.rand(1, 3, 64, 64))
    plain.set_style(torch.rand(1, 3, 64, 64))
    x = torch.rand(1, 3, 64, 64)
    t32, _, g32 = _value_grad(plain, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t16, _, g16 = _value_grad(plain, x)
    assert t16.dtype == torch.float32                 # Grams and losses stay fp32 under autocast
    assert float(t16) == pytest.approx(float(t32), rel=0.05)
    assert float(torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0)) > 0.98


def test_precision_and_tile_options_validated():
    from stylekit import ImageStyleConfig
    from stylekit.errors import ConfigError
    for bad in (dict(precision="fp8"), dict(tile=3), dict(tile="sometimes"), dict(max_memory=-1.0)):
        with pytest.raises(ConfigError):
            ImageStyleConfig(**bad)


def test_cpu_estimates_count_transforms_workspace_and_the_memory_the_allocator_keeps(monkeypatch):
    import stylekit.image.estimate as est
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    net, cpu = VGG19Features(layers, winograd=True), torch.device("cpu")
    kw = dict(layers=layers, content_layers=["relu2_1"], calibrate=False)
    parts = lambda **k: est.estimate_run(net, cpu, [(300, 200)], [1], **k, **kw).parts   # noqa: E731
    monkeypatch.setattr(est, "kept_bytes", lambda: 0)
    p = parts()
    assert "freed memory the allocator keeps" not in p
    assert p["filter transforms"] == net.transform_bytes(cpu)
    assert p["convolution workspace"] == net.workspace_bytes(300, 200, cpu) > 0
    # tiled: the workspace of the largest tile with its halo, smaller than the whole image's
    assert 0 < parts(tiles=[64])["convolution workspace"] < p["convolution workspace"]
    monkeypatch.setattr(est, "kept_bytes", lambda: 5)
    assert parts()["freed memory the allocator keeps"] == 5
    monkeypatch.setattr(est, "kept_bytes", lambda: 1 << 50)       # capped at one set of activations
    p = parts()
    assert p["freed memory the allocator keeps"] == p["activations"]
