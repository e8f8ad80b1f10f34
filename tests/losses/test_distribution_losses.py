"""Guided Gram, mean-std, W2, sliced Wasserstein and histogram losses: gradients, identities, modules."""
from __future__ import annotations

import pytest
import torch

from stylekit.errors import ConfigError
from stylekit.losses import (STYLE_LOSSES, GramStyleLoss, GuidedGramStyleLoss, SlicedWassersteinStyleLoss,
                             StyleTransferLoss, channel_quantiles, gram_matrix, guided_gram, histogram_loss,
                             normalize_masks, sliced_wasserstein_loss, sqrtm, w2_loss, weighted_moments)
from stylekit.losses import functional as Fn

D = torch.float64


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(2, 4, 5, 6, dtype=D, generator=g).requires_grad_(True)
    t = torch.randn(1, 4, 7, 5, dtype=D, generator=g)
    mask = torch.rand(1, 1, 5, 6, dtype=D, generator=g)
    proj = torch.randn(4, 3, dtype=D, generator=g)
    return f, t, mask, proj / proj.norm(dim=0)


def test_sqrtm_is_a_square_root_with_an_exact_gradient():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 5, 9, dtype=D, generator=g)
    spd = a @ a.transpose(1, 2) / 9 + 0.2 * torch.eye(5, dtype=D)
    z = sqrtm(spd, iterations=40)
    torch.testing.assert_close(z @ z, spd, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda x: sqrtm((x + x.transpose(1, 2)) / 2, iterations=40),
                                    (spd.clone().requires_grad_(True),))


@pytest.mark.parametrize("name", ["guided_gram", "w2", "w2_masked", "sw", "sw_masked", "sw_weighted", "hist",
                                  "hist_masked", "mean_std_masked", "content_masked"])
def test_gradcheck(name):
    f, t, mask, proj = _data()
    tm, tc = Fn.moments_mean_cov(*weighted_moments(t))
    tw = torch.rand(35, dtype=D, generator=torch.Generator().manual_seed(3))
    q = channel_quantiles(t, 16).to(D)
    c = torch.randn(1, 4, 5, 6, dtype=D, generator=torch.Generator().manual_seed(4))
    fn = {"guided_gram": lambda x: guided_gram(x, mask).pow(2).sum(),
          "w2": lambda x: w2_loss(x, tm, tc),
          "w2_masked": lambda x: w2_loss(x, tm, tc, mask=mask, normalize=True),
          "sw": lambda x: sliced_wasserstein_loss(x, t, proj, normalize=True),
          "sw_masked": lambda x: sliced_wasserstein_loss(x, t, proj, mask=mask),
          "sw_weighted": lambda x: sliced_wasserstein_loss(x, t, proj, target_weights=tw),
          "hist": lambda x: histogram_loss(x, q, normalize=True),
          "hist_masked": lambda x: histogram_loss(x, q, mask=mask),
          "mean_std_masked": lambda x: Fn.mean_std_loss(x, *Fn.mean_std(t), mask=mask),
          "content_masked": lambda x: Fn.content_loss(x, c, mask=mask, normalize=True)}[name]
    assert torch.autograd.gradcheck(fn, (f,))


def test_identities():
    f, t, mask, proj = _data()
    ones = torch.ones(1, 1, 5, 6, dtype=D)
    torch.testing.assert_close(guided_gram(f, ones), gram_matrix(f))
    assert float(sliced_wasserstein_loss(t, t, proj)) == 0
    assert float(histogram_loss(t, channel_quantiles(t, 35).to(D))) < 1e-12
    tm, tc = Fn.moments_mean_cov(*weighted_moments(t))
    assert float(w2_loss(t, tm, tc, normalize=True)) < 1e-6
    # a mask selecting one half gives the statistics of that half
    half = torch.zeros(1, 1, 5, 6, dtype=D)
    half[..., :3] = 1
    torch.testing.assert_close(guided_gram(f, half), gram_matrix(f[..., :3]))
    m, s = weighted_moments(f, half)
    torch.testing.assert_close(m, f[..., :3].mean((-2, -1)))
    # 1-D optimal transport: a shifted copy is at distance shift^2 along every unit direction
    e = torch.eye(4, dtype=D)
    torch.testing.assert_close(sliced_wasserstein_loss(t + 0.5, t, e), torch.tensor(0.25, dtype=D))


def test_normalize_masks_overlap_and_coverage():
    m = torch.zeros(2, 1, 2, 4)
    m[0, ..., :3] = 1          # overlaps the second mask in column 2
    m[1, ..., 2:] = 1
    w, coef = normalize_masks(m)
    assert torch.equal(w.sum(0)[0], torch.ones(2, 4))
    assert float(w[0, 0, 0, 2]) == 0.5 and float(w[1, 0, 0, 3]) == 1
    torch.testing.assert_close(coef, torch.tensor([2.5 / 4, 1.5 / 4]))
    w, coef = normalize_masks(torch.full((1, 1, 2, 2), 0.5))   # grey: half a style, kept
    assert float(w.max()) == 0.5 and float(coef) == 0.5


def _feats(seed, shape=(1, 4, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.rand(*shape, generator=g), "b": torch.rand(shape[0], 6, 3, 3, generator=g)}


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_module_agrees_with_function_and_white_mask_is_no_mask(name):
    styles = [_feats(1), _feats(2, (1, 4, 8, 7))]
    x = _feats(3)
    cls = STYLE_LOSSES[name]
    plain = cls(styles[:1], normalize=True)
    white = cls(styles[:1], normalize=True, masks=torch.ones(1, 1, 12, 10))
    if name == "sw":
        plain.auto_redraw = white.auto_redraw = False
    assert not white.masked
    torch.testing.assert_close(plain(x), white(x))
    t = plain.target("a")
    expected = {"gram": lambda: Fn.style_loss(x["a"], t["gram"], normalize=True),
                "mean-std": lambda: Fn.mean_std_loss(x["a"], t["mean"], t["std"], normalize=True),
                "w2": lambda: w2_loss(x["a"], t["mean"], t["cov"], target_cov_sqrt=t["cov_sqrt"], normalize=True),
                "sw": lambda: sliced_wasserstein_loss(x["a"], styles[0]["a"], plain.proj_a, normalize=True),
                "hist": lambda: histogram_loss(x["a"], t["quantiles"], normalize=True)}[name]()
    torch.testing.assert_close(plain.layer_losses(x)["a"], expected)
    masks = torch.zeros(2, 1, 12, 10)
    masks[0, ..., :6], masks[1, ..., 4:] = 1, 0.7
    masked = cls(styles, normalize=True, masks=masks)
    assert masked.masked and torch.isfinite(masked(x))
    if masked.moment_based:   # the tiled form (sums of moments) equals the direct one
        moments = {k: [weighted_moments(x[k], m) for m in masked.layer_masks(x[k].shape[-2:]).split(1)]
                   for k in x}
        for k, v in masked.moment_losses(moments).items():
            torch.testing.assert_close(v, masked.layer_losses(x)[k])


def test_binned_ranks_pair_samples_as_the_sort_does():
    # Long rows are ranked from a histogram (O(N)) instead of a sort: the loss and its gradient agree with the
    # sorted pairing's, ties (ReLU zeros) are spread over their ranks as a sort spreads them, the default
    # switches at BINNED_RANKS_FROM, and a sample set matched to itself is ~0.
    g = torch.Generator().manual_seed(0)
    n = Fn.BINNED_RANKS_FROM
    x = (torch.randn(2, 3, n, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5])[:, None]
         ).requires_grad_(True)
    target = (torch.randn(3, 1000, generator=g, dtype=torch.float64) + 1).sort(-1).values
    exact = Fn.sorted_match_loss(x, target, exact=True)
    binned = Fn.sorted_match_loss(x, target)
    torch.testing.assert_close(binned, Fn.sorted_match_loss(x, target, exact=False))
    torch.testing.assert_close(binned, exact, rtol=2e-3, atol=0)
    ge, = torch.autograd.grad(exact.sum(), x)
    gb, = torch.autograd.grad(binned.sum(), x)
    assert float((ge - gb).norm() / ge.norm()) < 0.02
    tied = x.detach().relu()                     # about half of every row exactly 0
    torch.testing.assert_close(Fn.sorted_match_loss(tied, target), Fn.sorted_match_loss(tied, target, exact=True),
                               rtol=5e-3, atol=0)
    short = x[..., : n - 1]
    assert torch.equal(Fn.sorted_match_loss(short, target), Fn.sorted_match_loss(short, target, exact=True))
    same = target[None, :, torch.randperm(1000, generator=g)].repeat(1, 1, 5)
    assert float(Fn.sorted_match_loss(same, target, exact=False).max()) < 1e-3 * float(target.pow(2).mean())


def test_sliced_wasserstein_draws_are_deterministic_and_redrawn():
    loss = SlicedWassersteinStyleLoss(_feats(1), seed=3)
    loss.redraw(5)
    p5 = loss.proj_a.clone()
    loss.redraw(6)
    assert not torch.equal(p5, loss.proj_a)
    loss.redraw(5)
    assert torch.equal(p5, loss.proj_a)
    x = _feats(2)
    a, b = loss(x), loss(x)          # auto_redraw: each call its own directions
    assert float(a) != float(b)
    assert torch.allclose(loss.proj_a.norm(dim=0), torch.ones(4))


def test_sliced_wasserstein_directions_per_layer():
    # default: one per channel (Heitz et al.); projection_ratio scales each layer's own channel count
    assert SlicedWassersteinStyleLoss(_feats(1)).proj_b.shape == (6, 6)
    wide = SlicedWassersteinStyleLoss(_feats(1), projection_ratio=1.5)
    assert wide.proj_a.shape == (4, 6) and wide.proj_b.shape == (6, 9)
    assert SlicedWassersteinStyleLoss(_feats(1), projections=5, projection_ratio=1.5).proj_b.shape == (6, 5)
    with pytest.raises(ValueError, match="projection_ratio"):
        SlicedWassersteinStyleLoss(_feats(1), projection_ratio=0)


def test_guided_gram_module_needs_masks_and_unknown_losses_are_refused():
    with pytest.raises(ConfigError):
        GuidedGramStyleLoss(_feats(1), None)
    with pytest.raises(ConfigError, match="black everywhere"):
        GramStyleLoss([_feats(1), _feats(2)], masks=torch.zeros(2, 1, 4, 4))
    with pytest.raises(ConfigError, match="2 styles"):
        GramStyleLoss([_feats(1), _feats(2)], masks=torch.ones(1, 1, 4, 4))
    net = torch.nn.Identity()
    net.layers = ["relu1_1"]
    with pytest.raises(ConfigError, match="unknown style loss 'foo'"):
        StyleTransferLoss(net, style_loss="foo")


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_style_losses_train_a_batch(name):
    """Each loss is usable as a training loss: a batch, a content batch, and gradients for the parameters."""
    from stylekit.features import VGG19Features
    net = VGG19Features(["relu1_1", "relu2_1"], winograd=False)
    loss = StyleTransferLoss(net, content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
                             style_loss=name)
    g = torch.Generator().manual_seed(0)
    loss.set_style(torch.rand(1, 3, 24, 24, generator=g))
    batch = torch.rand(3, 3, 16, 16, generator=g)
    w = torch.zeros(1, requires_grad=True)
    total, terms = loss(batch + w, content=batch)
    total.backward()
    assert set(terms) == {"content", "style"} and torch.isfinite(w.grad).all() and float(w.grad.abs()) > 0
