"""The warp, the reliability mask and the temporal term, on known motion (analytic values first)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylekit.video.flow import optical_flow, reliable, warp_flow
from stylekit.video.temporal import TemporalTerm, flow_tensor, temporal_loss, warp

from _video_clips import pattern


def constant_flow(h, w, dx, dy):
    f = np.zeros((h, w, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


def test_warp_by_a_whole_pixel_shift_moves_the_pixels():
    img = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    out = warp(img, constant_flow(10, 12, 2, -1))          # out(x, y) = img(x + 2, y - 1)
    assert torch.allclose(out[..., 1:, :-2], img[..., :-1, 2:], atol=1e-6)
    assert torch.allclose(out[..., 1:, -1], img[..., :-1, -1], atol=1e-6)   # beyond the edge: the border
    assert torch.allclose(warp(img, constant_flow(10, 12, 0, 0)), img, atol=1e-6)


def test_warp_by_half_a_pixel_reproduces_a_ramp():
    ramp = torch.arange(8, dtype=torch.float32).view(1, 1, 1, 8).expand(1, 1, 4, 8)
    out = warp(ramp, flow_tensor(constant_flow(4, 8, 0.5, 0)))
    # the cubic kernel reproduces linear functions exactly, away from the repeated border
    assert torch.allclose(out[..., 1:-2], ramp[..., 1:-2] + 0.5, atol=1e-5)


def test_warp_agrees_with_opencv_bicubic_remap():
    import cv2
    img = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    flow = np.random.default_rng(2).uniform(-2, 2, (9, 11, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:9, 0:11].astype(np.float32)
    a = cv2.remap(img, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    b = warp(torch.from_numpy(img).permute(2, 0, 1)[None], flow)[0].permute(1, 2, 0).numpy()
    inner = (slice(2, -2), slice(2, -2))      # away from the border, where the two pad differently
    assert np.allclose(a[inner], b[inner], atol=2e-3)


def test_warp_flow_samples_a_field_and_says_what_is_inside():
    field = np.arange(12, dtype=np.float32).reshape(3, 4, 1).repeat(2, -1)
    out, inside = warp_flow(field, constant_flow(3, 4, 1, 0))
    assert np.allclose(out[:, :-1], field[:, 1:]) and inside[:, :-1].all() and not inside[:, -1].any()


def test_temporal_loss_analytic():
    x, t = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    assert float(temporal_loss(x, t, torch.ones(1, 1, 4, 4))) == pytest.approx(1.0)
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2] = 1
    assert float(temporal_loss(x, t, half)) == pytest.approx(0.5)
    assert float(temporal_loss(x, x.clone(), half)) == 0.0
    # d/dx of 1/D sum c (x - t)^2 is 2 c (x - t) / D
    xg = torch.full((1, 3, 4, 4), 0.25, dtype=torch.float64, requires_grad=True)
    temporal_loss(xg, t.double(), half.double()).backward()
    assert torch.allclose(xg.grad, 2 * half.double() * 0.25 / 48)
    assert torch.autograd.gradcheck(lambda v: temporal_loss(v, t.double(), half.double()), (xg,))


def test_temporal_term_wraps_a_criterion_at_each_scale():
    target = torch.zeros(1, 3, 8, 8)
    term = TemporalTerm(target, np.ones((8, 8), np.float32), weight=10.0)

    def base(x):
        return x.sum() * 0 + 1.0, {"content": torch.tensor(1.0)}

    for hw in ((8, 8), (4, 4)):
        total, terms = term(base, hw)(torch.full((1, 3, *hw), 0.5))
        assert set(terms) == {"content", "temporal"}
        assert float(terms["temporal"]) == pytest.approx(10 * 0.25)
        assert float(total) == pytest.approx(1.0 + 2.5)


def test_dis_flow_recovers_a_known_shift():
    a, b = pattern(0, 96, 64, shift=3), pattern(1, 96, 64, shift=3)   # b is a moved 3 px to the right
    flow = optical_flow(a, b)                                           # a(p) ~ b(p + flow(p))
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.25)


def test_reliable_mask_of_a_pan_excludes_only_what_comes_from_outside():
    h, w = 12, 16
    back, fwd = constant_flow(h, w, -2, 0), constant_flow(h, w, 2, 0)   # the scene moves 2 px right
    mask = reliable(back, fwd)
    assert mask.dtype == np.float32 and mask.shape == (h, w)
    assert (mask[:, 2:] == 1).all() and (mask[:, :2] == 0).all()       # x - 2 < 0 was not in the frame


def test_reliable_mask_marks_occlusions_and_motion_boundaries():
    h, w = 16, 20
    back, fwd = constant_flow(h, w, -2, 0), constant_flow(h, w, 2, 0)
    fwd[4:8, 6:10] = 0                 # there the flows disagree: seen in one frame only
    mask = reliable(back, fwd)
    assert (mask[4:8, 8:12] == 0).all() and mask[12:, 4:].min() == 1
    step = constant_flow(h, w, 0, 0)
    step[:, 10:, 0] = -4               # a moving object's edge
    mask = reliable(step, -step)
    assert (mask[:, 9:11] == 0).all() and (mask[:, :8] == 1).all()
