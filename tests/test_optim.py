"""The optimiser: L-BFGS equivalence, convergence with the real network, stopping, NaN, interrupt/resume."""
from __future__ import annotations

import warnings

import pytest
import torch

from stylekit.errors import StylekitError
from stylekit.features import VGG19Features
from stylekit.losses import StyleTransferLoss
from stylekit.optim import (LBFGS, OptimizationInterrupted, Progress, auto_history, coarse_to_fine, optimize,
                            pyramid_sizes)


def quadratic(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g)
    A = A @ A.T / n + 0.1 * torch.eye(n)
    b = torch.randn(n, generator=g)

    def crit(x):
        v = 0.5 * x @ A @ x - b @ x
        return v, {"q": v}
    return crit, torch.linalg.solve(A, b)


def test_lbfgs_matches_torch_lbfgs_iterates():
    crit, _ = quadratic()
    seen = []
    optimize(torch.zeros(40), crit, steps=30, history=7, tol=0, clamp=None, callback=lambda p: seen.append(p.image.clone()))
    ours = seen[-1]  # the iterate after 29 updates (the returned best need not be the last: no line search)
    x = torch.zeros(40, requires_grad=True)
    ref = torch.optim.LBFGS([x], lr=1, max_iter=29, history_size=7, tolerance_grad=-1, tolerance_change=-1)

    def closure():
        ref.zero_grad()
        v = crit(x)[0]
        v.backward()
        return v
    ref.step(closure)
    torch.testing.assert_close(ours, x.detach(), rtol=1e-4, atol=1e-4)


def test_lbfgs_converges_on_quadratic():
    crit, xstar = quadratic()
    x = optimize(torch.zeros(40), crit, steps=200, history=10, clamp=None, tol=0)
    torch.testing.assert_close(x, xstar, rtol=1e-3, atol=1e-3)


def test_lbfgs_state_roundtrip():
    crit, _ = quadratic()
    opt = LBFGS(40, history=5)
    x = torch.zeros(40)
    for _ in range(8):
        x.requires_grad_(True)
        g = torch.autograd.grad(crit(x)[0], x)[0]
        x = (x + opt.step(g)).detach()
    clone = LBFGS(40, history=5)
    clone.load_state_dict(opt.state_dict())
    g = torch.randn(40)
    torch.testing.assert_close(clone._apply_inverse_hessian(g), opt._apply_inverse_hessian(g))


def test_style_loss_falls_10x_in_50_lbfgs_steps_with_real_weights():
    torch.manual_seed(0)
    net = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    loss = StyleTransferLoss(net, content_weight=0, style_layers={k: 0.2 for k in net.layers})
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    style = torch.stack([(torch.sin(xx / 2) > 0).float(), (torch.cos(yy / 3) > 0).float(), 0.5 * torch.ones(64, 64)])
    loss.set_style(style[None])
    x0 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    before = float(loss(x0)[1]["style"])
    x = optimize(x0, loss, steps=50)
    after = float(loss(x)[1]["style"])
    assert after * 10 <= before, (before, after)


def test_callback_progress_and_no_printing(capsys):
    crit, _ = quadratic()
    seen: list[Progress] = []
    optimize(torch.zeros(40), crit, steps=5, clamp=None, callback=seen.append, tol=0)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5]
    assert all(p.steps == 5 and set(p.terms) == {"q"} and p.elapsed >= 0 for p in seen)
    assert seen[-1].loss < seen[0].loss
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_callback_can_stop():
    crit, _ = quadratic()
    seen = []
    optimize(torch.zeros(40), crit, steps=50, clamp=None, callback=lambda p: seen.append(p) or p.step >= 3)
    assert len(seen) == 3


def test_relative_tolerance_stops_early():
    calls = []

    def flat(x):
        calls.append(1)
        v = (x * 0).sum() + 1.0
        return v, {}
    optimize(torch.zeros(3), flat, steps=100, tol=1e-6, patience=4, clamp=None)
    assert len(calls) == 5


def test_nan_stops_with_warning_and_returns_last_finite():
    state = {"n": 0}

    def crit(x):
        state["n"] += 1
        v = ((x - 2) ** 2).sum()
        return (v * float("nan") if state["n"] > 4 else v), {}
    with pytest.warns(RuntimeWarning, match="non-finite") as record:
        x = optimize(torch.zeros(3), crit, steps=20, clamp=None)
    assert torch.isfinite(x).all()
    assert state["n"] == 5 + 3                 # three restarts from the best iterate, then it gives up
    assert sum("restarting" in str(w.message) for w in record) == 3
    assert float(((x - 2) ** 2).sum()) < 12  # improved over the start


def test_lbfgs_restarts_after_an_overshoot_and_converges():
    # Not finite outside |x| < 5. With step size 3 the quasi-Newton steps overshoot and diverge until they land
    # there; the restart with half the step size converges.
    def crit(x):
        v = ((x - 2) ** 2).sum()
        return (v if float(x.abs().max()) < 5 else v * float("inf")), {}
    with pytest.warns(RuntimeWarning, match="restarting"):
        x = optimize(torch.zeros(3), crit, steps=40, lr=3.0, clamp=None)  # lr 3: each step overshoots 2x
    torch.testing.assert_close(x, torch.full((3,), 2.0), atol=1e-3, rtol=0)


def test_adam_clamps_and_lbfgs_does_not():
    crit = lambda x: (((x - 3) ** 2).sum(), {})  # noqa: E731 - optimum outside [0, 1]
    seen = []
    xa = optimize(torch.full((4,), 0.5), crit, optimizer="adam", steps=30, lr=0.5,
                  callback=lambda p: seen.append(p.image.clone()))
    assert all(float(s.max()) <= 1.0 for s in seen) and torch.allclose(xa, torch.ones(4))
    xl = optimize(torch.full((4,), 0.5), crit, steps=10)
    assert float(xl.max()) > 1.0  # L-BFGS is never projected


def test_deterministic():
    crit, _ = quadratic()
    a = optimize(torch.zeros(40), crit, steps=20, clamp=None)
    b = optimize(torch.zeros(40), crit, steps=20, clamp=None)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["lbfgs", "adam"])
def test_interrupt_and_resume_equals_uninterrupted(kind):
    crit, _ = quadratic()
    full = optimize(torch.zeros(40), crit, optimizer=kind, steps=25, clamp=None, tol=0, lr=0.1 if kind == "adam" else None)
    count = {"n": 0}

    def flaky(x):
        count["n"] += 1
        if count["n"] == 11:
            raise KeyboardInterrupt
        return crit(x)
    with pytest.raises(OptimizationInterrupted) as info:
        optimize(torch.zeros(40), flaky, optimizer=kind, steps=25, clamp=None, tol=0, lr=0.1 if kind == "adam" else None)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.state["step"] == 10
    resumed = optimize(torch.zeros(40), crit, optimizer=kind, steps=25, clamp=None, tol=0,
                       lr=0.1 if kind == "adam" else None, state=info.value.state)
    torch.testing.assert_close(resumed, full, rtol=1e-5, atol=1e-5)


def test_bad_options():
    crit, _ = quadratic()
    with pytest.raises(StylekitError):
        optimize(torch.zeros(40), crit, steps=0)
    with pytest.raises(StylekitError):
        optimize(torch.zeros(40), crit, optimizer="sgd")


def test_pyramid_sizes():
    assert pyramid_sizes(512, scales=1) == [512]
    s = pyramid_sizes(512, scales=3, min_edge=128)
    assert s == [128, 256, 512]
    assert pyramid_sizes(100, scales=4, min_edge=128) == [100]
    assert all(a < b for a, b in zip(s, s[1:]))


def test_auto_history_bounds_memory():
    assert auto_history(3 * 256 * 256) == 100
    big = 3 * 4096 * 4096
    m = auto_history(big)
    assert 5 <= m < 100 and 2 * m * big * 4 <= 2 * 1024 ** 3


def test_coarse_to_fine_warm_starts():
    shapes_seen = []

    def make(hw):
        shapes_seen.append(hw)
        return lambda x: (((x - 0.25) ** 2).mean(), {})
    out = coarse_to_fine(torch.ones(1, 3, 32, 32), make, [(8, 8), (16, 16), (32, 32)], steps=[20, 5, 1])
    assert shapes_seen == [(8, 8), (16, 16), (32, 32)]
    # the last scale ran one evaluation and no update, so its value comes from the warm start
    assert out.shape == (1, 3, 32, 32) and float((out - 0.25).abs().max()) < 0.05
