"""VGG19Features on CUDA against the CPU (marker `cuda`: skipped without a CUDA device).

Tolerances, relative L2 error per layer, ``||cuda - cpu|| / ||cpu||``:
- fp32 (IEEE, the `cuda_ieee` fixture): 1e-4 for features and input gradients (cuDNN and the CPU sum in different
  orders; float32 rounding through 16 layers is about 1e-6);
- TF32 convolutions (cuDNN's default, and ``--precision tf32``): 1e-2;
- bf16 autocast (``--precision bf16``): 5e-2.
"""
import pytest
import torch

from stylekit.features import VGG19Features

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("cuda_ieee")]

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _input(n=2, h=64, w=80, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_features_match_the_cpu(pooling):
    net = VGG19Features(LAYERS, pooling=pooling, winograd=False)
    x = _input()
    cpu = net(x)
    gpu_net = net.to("cuda")
    for fmt in (torch.contiguous_format, torch.channels_last):
        gpu = gpu_net.to(memory_format=fmt)(x.cuda().contiguous(memory_format=fmt))
        assert set(gpu) == set(cpu)
        for k in LAYERS:
            assert gpu[k].device.type == "cuda" and gpu[k].shape == cpu[k].shape
            assert rel(gpu[k], cpu[k]) < 1e-4, (k, fmt)


def test_input_gradient_matches_the_cpu():
    net = VGG19Features(LAYERS, winograd=False)
    x = _input(1, 72, 56, seed=1)

    def grad(model, inp):
        inp = inp.clone().requires_grad_(True)
        feats = model(inp)
        sum(f.pow(2).mean() for f in feats.values()).backward()
        return inp.grad

    g_cpu = grad(net, x)
    g_gpu = grad(net.to("cuda").to(memory_format=torch.channels_last),
                 x.cuda().contiguous(memory_format=torch.channels_last))
    assert rel(g_gpu, g_cpu) < 1e-4


def test_reduced_precisions_stay_close():
    net = VGG19Features(LAYERS, winograd=False)
    x = _input()
    cpu = net(x)
    gpu_net, xg = net.to("cuda"), x.cuda()
    torch.backends.cudnn.conv.fp32_precision = "tf32"      # the fixture restores IEEE after the test
    tf32 = gpu_net(xg)
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        bf16 = gpu_net(xg)
    for k in LAYERS:
        assert rel(tf32[k], cpu[k]) < 1e-2, k
        assert rel(bf16[k].float(), cpu[k]) < 5e-2, k
