"""Loss module: closed forms, gradients (float64 gradcheck), Module == function, batches, devices."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from stylekit.errors import StylekitError
from stylekit.losses import (ContentLoss, GramStyleLoss, MeanStdStyleLoss, StyleTransferLoss, TVLoss, content_loss,
                             gram_loss, gram_matrix, mean_std, mean_std_loss, style_loss, tv_loss)


def test_gram_of_ones_is_ones():
    g = gram_matrix(torch.ones(2, 4, 5, 7))
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g, torch.ones(2, 4, 4))


def test_gram_closed_form():
    # F = [[1, 2], [3, 4]] over 2 positions: G = F F^T / 2
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2
    torch.testing.assert_close(gram_matrix(f), expected)
    torch.testing.assert_close(gram_matrix(f.reshape(1, 2, 2)), expected)  # (B, C, T) too


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gram_is_float32_for_half_features(dtype):
    f = torch.rand(1, 8, 64, 64) * 300  # activations in the hundreds overflow an fp16 product sum
    g = gram_matrix(f.to(dtype))
    assert g.dtype == torch.float32
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, gram_matrix(f.to(dtype).float()))


def test_gram_normalised_by_positions_makes_sizes_comparable():
    f = torch.rand(1, 3, 8, 8)
    tiled = f.repeat(1, 1, 2, 3)  # same statistics, 6x the positions
    torch.testing.assert_close(gram_matrix(f), gram_matrix(tiled))


def test_content_loss_values():
    a, b = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 2.0)
    assert content_loss(b, b) == 0
    assert content_loss(a, b) == pytest.approx(4.0)
    assert content_loss(a, b, normalize=True) == pytest.approx(1.0)  # ||0 - P||^2 / ||P||^2


def test_gram_loss_normalised_is_relative_frobenius():
    t = torch.eye(3)[None] * 2
    x = torch.zeros(1, 3, 3)
    assert gram_loss(x, t, normalize=True) == pytest.approx(1.0)
    assert gram_loss(t, t) == 0
    assert gram_loss(x, t) == pytest.approx(12 / 9)


def test_tv_loss_closed_form():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # dx: (1, 2) -> mean of 1, 4 = 2.5 ; dy: (2, 3) -> mean of 4, 9 = 6.5
    assert tv_loss(img) == pytest.approx(9.0)
    assert tv_loss(img, exponent=1) == pytest.approx((1 + 2) / 2 + (2 + 3) / 2, rel=1e-5)
    assert tv_loss(torch.ones(1, 3, 5, 5)) == 0


def test_mean_std_closed_form():
    f = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])  # (1, 2, 2)
    m, s = mean_std(f, eps=0)
    torch.testing.assert_close(m, torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(s, torch.tensor([[1.0, 0.0]]))


def _d(*shape):
    return torch.rand(*shape, dtype=torch.float64, requires_grad=True)


def test_gradcheck_functions():
    target = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    tg = gram_matrix(target)
    assert torch.autograd.gradcheck(lambda x: content_loss(x, target), (_d(2, 3, 4, 4),))
    assert torch.autograd.gradcheck(lambda x: content_loss(x, target, normalize=True), (_d(2, 3, 4, 4),))
    assert torch.autograd.gradcheck(lambda x: style_loss(x, tg), (_d(2, 3, 4, 4),))
    assert torch.autograd.gradcheck(lambda x: style_loss(x, tg, normalize=True), (_d(1, 3, 4, 4),))
    assert torch.autograd.gradcheck(lambda x: gram_matrix(x), (_d(1, 3, 2, 3),))
    assert torch.autograd.gradcheck(lambda x: tv_loss(x), (_d(1, 3, 5, 5),))
    assert torch.autograd.gradcheck(lambda x: tv_loss(x, exponent=1.0), (_d(1, 3, 5, 5),))
    m, s = mean_std(target)
    assert torch.autograd.gradcheck(lambda x: mean_std_loss(x, m, s), (_d(1, 3, 4, 4),))


class TinyNet(nn.Module):
    """A two-layer conv extractor for fast, float64-capable tests of StyleTransferLoss."""

    layers = ("a", "b")

    def __init__(self, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w1", torch.randn(4, 3, 3, 3, generator=g, dtype=dtype) * 0.5)
        self.register_buffer("w2", torch.randn(5, 4, 3, 3, generator=g, dtype=dtype) * 0.5)

    def forward(self, x):
        a = torch.relu(nn.functional.conv2d(x, self.w1, padding=1))
        b = torch.relu(nn.functional.conv2d(nn.functional.avg_pool2d(a, 2), self.w2, padding=1))
        return {"a": a, "b": b}


def test_gradcheck_style_transfer_loss():
    net = TinyNet(torch.float64)
    loss = StyleTransferLoss(net, content_layers={"b": 1.0}, style_layers={"a": 0.5, "b": 0.5}, tv_weight=0.1)
    loss.set_content(torch.rand(1, 3, 6, 6, dtype=torch.float64))
    loss.set_style(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: loss(x)[0], (_d(1, 3, 6, 6),))
    mloss = StyleTransferLoss(net, content_layers={"b": 1.0}, style_layers={"a": 1.0}, style_loss="mean_std")
    mloss.set_content(torch.rand(1, 3, 6, 6, dtype=torch.float64))
    mloss.set_style(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: mloss(x)[0], (_d(1, 3, 6, 6),))


def test_modules_equal_functions():
    torch.manual_seed(0)
    feats = {"a": torch.rand(2, 3, 5, 5), "b": torch.rand(2, 4, 3, 3)}
    s1 = {"a": torch.rand(1, 3, 7, 7), "b": torch.rand(1, 4, 4, 4)}
    s2 = {"a": torch.rand(1, 3, 6, 9), "b": torch.rand(1, 4, 2, 5)}   # a different size: allowed
    assert ContentLoss(s1["a"][:, :, :5, :5])(feats["a"]) == content_loss(feats["a"], s1["a"][:, :, :5, :5])
    lw = {"a": 0.3, "b": 0.7}
    mod = GramStyleLoss([s1, s2], layer_weights=lw, blend=[3, 1], normalize=True)
    expected = sum(w * gram_loss(gram_matrix(feats[k]), 0.75 * gram_matrix(s1[k]) + 0.25 * gram_matrix(s2[k]),
                                 normalize=True) for k, w in lw.items())
    torch.testing.assert_close(mod(feats), expected)
    assert TVLoss(exponent=1.0)(feats["a"]) == tv_loss(feats["a"], exponent=1.0)
    ms = MeanStdStyleLoss(s1, layer_weights={"a": 1.0})
    m, s = mean_std(s1["a"])
    torch.testing.assert_close(ms(feats), mean_std_loss(feats["a"], m, s))


def test_losses_are_zero_on_identical_inputs():
    f = {"a": torch.rand(1, 3, 5, 5)}
    assert GramStyleLoss(f)(f) == 0
    assert ContentLoss(f["a"], normalize=True)(f["a"]) == 0
    assert MeanStdStyleLoss(f)(f) < 1e-10


def test_style_transfer_loss_batch_training_use():
    net = TinyNet()
    loss = StyleTransferLoss(net, content_layers={"b": 1.0}, style_layers={"a": 1.0, "b": 1.0}, tv_weight=1.0)
    loss.set_style(torch.rand(1, 3, 12, 12))
    inputs = torch.rand(4, 3, 8, 8)
    out = inputs.clone().requires_grad_(True)
    total, terms = loss(out, content=inputs)
    assert set(terms) == {"content", "style", "tv"}
    assert terms["content"] == 0
    assert total.dim() == 0 and torch.isclose(total, sum(terms.values()))
    total.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    # per-sample style losses average over the batch
    singles = [loss(out[i:i + 1].detach(), content=inputs[i:i + 1])[1]["style"] for i in range(4)]
    torch.testing.assert_close(terms["style"].detach(), torch.stack(singles).mean())


def test_targets_are_buffers_and_move_with_to():
    net = TinyNet()
    loss = StyleTransferLoss(net, content_layers={"b": 1.0}, style_layers={"a": 1.0})
    loss.set_content(torch.rand(1, 3, 8, 8))
    loss.set_style([torch.rand(1, 3, 8, 8), torch.rand(1, 3, 10, 6)], blend=[1, 2])
    keys = set(loss.state_dict())
    assert "style.gram_a" in keys and "content.b.target" in keys
    moved = loss.to(torch.float64)
    assert moved.style.gram_a.dtype == torch.float64


def test_layer_lists_mean_equal_weights():
    net = TinyNet()
    x, c, s = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 10, 10)
    values = []
    for content_layers, style_layers in ((["b"], ["a", "b"]), ("b", ("a", "b", "a")),
                                         ({"b": 1.0}, {"a": 0.5, "b": 0.5})):
        loss = StyleTransferLoss(net, content_layers=content_layers, style_layers=style_layers)
        assert loss.style_layers == {"a": 0.5, "b": 0.5} and loss.content_layers == {"b": 1.0}
        loss.set_content(c)
        loss.set_style(s)
        values.append(loss(x)[0])
    assert values[0] == values[1] == values[2]


@pytest.mark.parametrize("kwargs", [{"content_weight": -1}, {"style_weight": float("nan")},
                                    {"style_layers": {"nope": 1.0}}, {"style_loss": "wasserstein"},
                                    {"style_layers": 3}, {"style_layers": [1, 2]}])
def test_bad_configuration_raises_stylekit_error(kwargs):
    with pytest.raises(StylekitError):
        StyleTransferLoss(TinyNet(), **{"content_layers": {"b": 1.0}, "style_layers": {"a": 1.0}, **kwargs})


def test_missing_targets_are_reported():
    loss = StyleTransferLoss(TinyNet(), content_layers={"b": 1.0}, style_layers={"a": 1.0})
    with pytest.raises(StylekitError, match="set_content"):
        loss(torch.rand(1, 3, 8, 8))
