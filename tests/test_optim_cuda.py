"""The L-BFGS of stylekit.optim on CUDA against the CPU (marker `cuda`).

Tolerances: on a float32 quadratic the iterates agree to 1e-4 (the same arithmetic, reordered sums; the
optimiser keeps its history in float32, so float64 is not compared). With the real network (IEEE fp32) the first loss agrees to 1e-4 relative and the run goes down.
"""
import copy

import pytest
import torch

from stylekit.features import VGG19Features
from stylekit.losses import StyleTransferLoss
from stylekit.optim import optimize

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("cuda_ieee")]


def quadratic(n, dtype, device):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = (a @ a.T / n + 0.1 * torch.eye(n, dtype=torch.float64)).to(dtype=dtype, device=device)
    b = torch.randn(n, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)

    def crit(x):
        v = 0.5 * x @ a @ x - b @ x
        return v, {"q": v}
    return crit


def test_lbfgs_iterates_match_the_cpu():
    dtype, tol = torch.float32, 1e-4
    runs = {}
    for device in ("cpu", "cuda"):
        seen = []
        x = optimize(torch.zeros(64, dtype=dtype, device=device), quadratic(64, dtype, device), steps=25, history=7,
                     tol=0, clamp=None, callback=lambda p: seen.append(p.image.detach().cpu().clone()))
        assert x.device.type == device
        runs[device] = seen
    assert len(runs["cuda"]) == len(runs["cpu"]) == 25
    for a, b in zip(runs["cuda"], runs["cpu"]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimize_with_the_network_on_cuda(optimizer):
    net = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_2"], winograd=False)
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 48, 64, generator=g), torch.rand(1, 3, 48, 48, generator=g)
    first = {}
    for device in ("cpu", "cuda"):
        loss = StyleTransferLoss(copy.deepcopy(net).to(device), content_layers={"relu4_2": 1.0},
                                 style_layers={"relu1_1": 0.3, "relu2_1": 0.3, "relu3_1": 0.4}, style_weight=5.0)
        loss.set_content(content.to(device))
        loss.set_style(style.to(device))
        losses = []
        x = optimize(content.to(device), loss, optimizer=optimizer, steps=6, callback=lambda p: losses.append(p.loss))
        assert x.device.type == device and bool(torch.isfinite(x).all())
        assert losses[-1] < losses[0]
        first[device] = losses[0]
    assert first["cuda"] == pytest.approx(first["cpu"], rel=1e-4)
