"""The five spectral models on CUDA against the CPU: forward, loss and parameter gradients (marker `cuda`).

Tolerances (IEEE fp32): outputs and losses 1e-4 relative, parameter gradients 1e-3 relative L2 (cuDNN's LSTM
sums in its own order); PCA fitted on CUDA gives the same subspace (projector within 1e-4). The VAE's loss
draws its noise from the generator it is given (a CPU generator here), so both devices see the same noise.
"""
import copy

import pytest
import torch

from stylekit.spectral.models import MODELS, PCA, build_model

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("cuda_ieee")]

from _spectral_data import segments  # noqa: E402

F = 33


def rel(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _segments(n=6, t=8, seed=0) -> torch.Tensor:
    return segments(n, t, seed, bins=F)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_on_cuda_matches_the_cpu(name):
    torch.manual_seed(0)
    cpu = build_model(name, n_bins=F, latent=4)
    x = _segments()
    if isinstance(cpu, PCA):
        cpu.fit(x)
    gpu = copy.deepcopy(cpu).to("cuda")
    cpu.eval(), gpu.eval()
    assert rel(gpu.encode(x.cuda()), cpu.encode(x)) < 1e-4
    assert rel(gpu(x.cuda()), cpu(x)) < 1e-4
    cpu.train(), gpu.train()
    l_cpu, terms_cpu = cpu.loss(x, generator=torch.Generator().manual_seed(1))
    l_gpu, terms_gpu = gpu.loss(x.cuda(), generator=torch.Generator().manual_seed(1))
    assert float(l_gpu) == pytest.approx(float(l_cpu), rel=1e-4)
    assert {k: float(v) for k, v in terms_gpu.items()} == pytest.approx(
        {k: float(v) for k, v in terms_cpu.items()}, rel=1e-4)
    params = [(n, p) for n, p in cpu.named_parameters() if p.requires_grad]
    if params:
        g_cpu = torch.autograd.grad(l_cpu, [p for _, p in params])
        g_gpu = torch.autograd.grad(l_gpu, [p for n, p in gpu.named_parameters() if p.requires_grad])
        for (n, _), a, b in zip(params, g_gpu, g_cpu):
            assert rel(a, b) < 1e-3, n


def test_pca_fit_on_cuda_gives_the_same_subspace():
    x = _segments(20, 8, seed=2)
    cpu = PCA(F, 5).fit(x)
    gpu = PCA(F, 5).to("cuda").fit(x.cuda())
    assert gpu.components.device.type == "cuda"
    proj = lambda m: (m.components.T @ m.components).cpu()   # noqa: E731 (sign-free)
    torch.testing.assert_close(proj(gpu), proj(cpu), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.mean.cpu(), cpu.mean, rtol=1e-5, atol=1e-6)
