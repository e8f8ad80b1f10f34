"""Every loss of stylekit.losses on CUDA against the CPU, values and gradients (marker `cuda`).

Tolerances (IEEE fp32 on both sides, the `cuda_ieee` fixture): relative 1e-5 for values and 1e-4 (relative L2)
for gradients of the pure functions and modules on random features; 1e-4 / 1e-3 where a whole VGG19 pass or
FFTs are in the chain (cuFFT and pocketfft round differently). The Gram backward is also checked with
``gradcheck`` in float64 on CUDA.
"""
import copy

import pytest
import torch

from stylekit.features import VGG19Features
from stylekit.losses import (BandStatsLoss, ContentLoss, EnvelopeLoss, GramStyleLoss, MeanStdStyleLoss, RhythmLoss,
                             StyleTransferLoss, TVLoss, autocorrelation, band_statistics, content_loss, gram_loss,
                             gram_matrix, log_energy, mean_std, mean_std_loss, style_loss, tv_loss)

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("cuda_ieee")]


def rel(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _value_and_grad(fn, x, device):
    x = x.to(device).clone().requires_grad_(True)
    v = fn(x)
    (g,) = torch.autograd.grad(v, x)
    return v.detach().cpu(), g.cpu()


def _same_on_cuda(fn_of_device, x, *, value_rtol=1e-5, grad_rtol=1e-4):
    v0, g0 = _value_and_grad(fn_of_device("cpu"), x, "cpu")
    v1, g1 = _value_and_grad(fn_of_device("cuda"), x, "cuda")
    assert float(v1) == pytest.approx(float(v0), rel=value_rtol)
    assert rel(g1, g0) < grad_rtol


def test_gram_forward_and_backward_match_the_cpu():
    f = _rand(2, 64, 24, 31) - 0.3
    torch.testing.assert_close(gram_matrix(f.cuda()).cpu(), gram_matrix(f), rtol=1e-5, atol=1e-6)
    w = _rand(2, 64, 64, seed=1)
    _same_on_cuda(lambda d: (lambda x: (gram_matrix(x) * w.to(d)).sum()), f)
    # channels_last features (what the CUDA network gives) take the same path
    fl = f.cuda().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gram_matrix(fl).cpu(), gram_matrix(f), rtol=1e-5, atol=1e-6)


def test_gram_backward_gradcheck_on_cuda():
    f = torch.rand(1, 5, 4, 3, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))


@pytest.mark.parametrize("normalize", [False, True])
def test_functional_losses_match_the_cpu(normalize):
    f, t = _rand(1, 32, 20, 18, seed=2), _rand(1, 32, 20, 18, seed=3)
    g_t = gram_matrix(t)
    m_t, s_t = mean_std(t)
    _same_on_cuda(lambda d: (lambda x: content_loss(x, t.to(d), normalize=normalize)), f)
    _same_on_cuda(lambda d: (lambda x: style_loss(x, g_t.to(d), normalize=normalize)), f)
    _same_on_cuda(lambda d: (lambda x: gram_loss(gram_matrix(x), g_t.to(d), normalize=normalize)), f)
    _same_on_cuda(lambda d: (lambda x: mean_std_loss(x, m_t.to(d), s_t.to(d), normalize=normalize)), f)


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_tv_loss_matches_the_cpu(exponent):
    img = _rand(1, 3, 33, 47, seed=4)
    _same_on_cuda(lambda d: (lambda x: tv_loss(x, exponent=exponent)), img)
    _same_on_cuda(lambda d: TVLoss(exponent=exponent).to(d), img)


def test_modules_match_the_cpu():
    f, t, s = _rand(1, 16, 12, 10, seed=5), _rand(1, 16, 12, 10, seed=6), _rand(1, 16, 9, 14, seed=7)
    s2 = _rand(1, 16, 11, 8, seed=8)
    styles = [{"a": s, "b": s * 0.5}, {"a": s2, "b": s2 + 0.1}]
    for make in (lambda: ContentLoss(t, normalize=True),
                 lambda: GramStyleLoss(styles, layer_weights={"a": 0.3, "b": 0.7}, blend=[0.6, 0.4], normalize=True),
                 lambda: MeanStdStyleLoss(styles, blend=[0.5, 0.5])):
        module = make()
        if isinstance(module, ContentLoss):
            _same_on_cuda(lambda d, m=module: m.to(d), f)
        else:
            _same_on_cuda(lambda d, m=module: (lambda x: m.to(d)({"a": x, "b": x * 0.5})), f)


def test_style_transfer_loss_on_the_network_matches_the_cpu():
    net = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"], winograd=False)
    content, style, x = _rand(1, 3, 64, 48, seed=9), _rand(1, 3, 56, 56, seed=10), _rand(1, 3, 64, 48, seed=11)

    def make(device):
        loss = StyleTransferLoss(copy.deepcopy(net).to(device), style_weight=5.0, tv_weight=0.1)
        loss.set_content(content.to(device))
        loss.set_style(style.to(device))
        return lambda img: loss(img)[0]

    _same_on_cuda(make, x, value_rtol=1e-4, grad_rtol=1e-3)
    # the terms agree one by one
    cpu_loss, gpu_loss = StyleTransferLoss(copy.deepcopy(net).to("cpu")), StyleTransferLoss(copy.deepcopy(net).to("cuda"))
    for loss, d in ((cpu_loss, "cpu"), (gpu_loss, "cuda")):
        loss.set_content(content.to(d))
        loss.set_style(style.to(d))
    _, t_cpu = cpu_loss(x)
    _, t_gpu = gpu_loss(x.cuda())
    assert {k: float(v) for k, v in t_gpu.items()} == pytest.approx({k: float(v) for k, v in t_cpu.items()}, rel=1e-4)


def test_audio_terms_match_the_cpu():
    z = _rand(1, 1, 24, 60, seed=12)
    style = _rand(1, 1, 24, 45, seed=13) * 0.5 + 0.2
    feats = _rand(1, 8, 50, seed=14)
    for a, b in zip(band_statistics(z.cuda()), band_statistics(z)):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(autocorrelation(feats.cuda(), max_lag=20).cpu(), autocorrelation(feats, max_lag=20),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(log_energy(z.cuda(), span=11.5, offset=-11.5).cpu(),
                               log_energy(z, span=11.5, offset=-11.5), rtol=1e-5, atol=1e-5)

    def band(d):
        loss = BandStatsLoss([style.to(d)]).to(d)
        loss.set_content(z.to(d))
        return loss

    _same_on_cuda(band, z * 0.9 + 0.05, grad_rtol=1e-3)
    _same_on_cuda(lambda d: EnvelopeLoss(z.to(d), span=11.5, offset=-11.5).to(d), z.flip(-1), grad_rtol=1e-3)
    targets = {"c": _rand(1, 8, 40, seed=15)}
    _same_on_cuda(lambda d: (lambda x: RhythmLoss({k: v.to(d) for k, v in targets.items()}, max_lag=12).to(d)(
        {"c": x})), feats, value_rtol=1e-4, grad_rtol=1e-3)
