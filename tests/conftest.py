"""Shared fixtures: small images generated on the fly (no downloaded or pickled test data)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def smooth_image(w: int, h: int, seed: int) -> Image.Image:
    """A deterministic smooth colourful picture (sum of random sinusoids)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    chans = []
    for _ in range(3):
        v = sum(np.sin(2 * np.pi * (rng.uniform(0.5, 4) * xx + rng.uniform(0.5, 4) * yy) + rng.uniform(0, 6))
                for _ in range(3))
        chans.append((v - v.min()) / (v.max() - v.min() + 1e-9))
    return Image.fromarray((np.stack(chans, -1) * 255).astype(np.uint8), "RGB")


def stripes_image(w: int, h: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((xx // 3) % 2) * 255
    g = ((yy // 5) % 2) * 200
    b = (((xx + yy) // 4) % 2) * 150
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


@pytest.fixture
def content_png(tmp_path):
    p = tmp_path / "content.png"
    smooth_image(48, 32, 1).save(p)
    return p


@pytest.fixture
def style_jpg(tmp_path):
    p = tmp_path / "style.jpg"
    stripes_image(40, 40).save(p, quality=95)
    return p


@pytest.fixture
def style2_png(tmp_path):
    p = tmp_path / "style2.png"
    smooth_image(36, 36, 7).save(p)
    return p


def pytest_configure(config):
    # The CPU convolution backend is off by default (as for library users); STYLEKIT_TEST_CPU_BACKEND=on runs
    # the same tests with it on (.ci/run does so for the feature and loss tests).
    import os
    if os.environ.get("STYLEKIT_TEST_CPU_BACKEND") == "on":
        from stylekit.features import cpu_backend
        cpu_backend.enable(True)


def pytest_collection_modifyitems(config, items):
    # Tests marked `cuda` compare CUDA against the CPU (tests/*/test_*_cuda.py); without a CUDA device they are
    # skipped here, once, rather than in each file. benchmarks/gpu_check.sh runs them on a lent GPU.
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run by benchmarks/gpu_check.sh on a GPU)")
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture
def cuda_ieee():
    """For the `cuda` tests: IEEE fp32 matmuls and convolutions on CUDA inside the test (cuDNN's default for
    convolutions is TF32, about 1e-3 relative), restored after, so that CUDA and CPU can be compared tightly."""
    import torch
    mm, conv = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"
    try:
        yield torch.device("cuda")
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = mm, conv
