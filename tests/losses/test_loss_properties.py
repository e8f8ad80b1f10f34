"""Property tests (hypothesis) of the loss module: finite, non-negative, zero on identical inputs."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stylekit.losses import content_loss, gram_loss, gram_matrix, mean_std, mean_std_loss, style_loss, tv_loss

shapes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 7), st.integers(1, 7))
scales = st.floats(1e-3, 1e3)


def tensor(shape, seed, scale):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * scale


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000), scale=scales, normalize=st.booleans())
def test_losses_finite_nonnegative_and_zero_on_identical(shape, seed, scale, normalize):
    a, b = tensor(shape, seed, scale), tensor(shape, seed + 1, scale)
    for value in (content_loss(a, b, normalize=normalize), style_loss(a, gram_matrix(b), normalize=normalize),
                  tv_loss(a), tv_loss(a, exponent=1.0), mean_std_loss(a, *mean_std(b), normalize=normalize)):
        assert torch.isfinite(value) and value >= 0
    assert content_loss(a, a, normalize=normalize) == 0
    assert gram_loss(gram_matrix(a), gram_matrix(a), normalize=normalize) == 0
    assert mean_std_loss(a, *mean_std(a), normalize=normalize) == 0


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000), scale=scales)
def test_gram_symmetric_psd_and_scale_covariant(shape, seed, scale):
    a = tensor(shape, seed, 1.0)
    g = gram_matrix(a)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert torch.linalg.eigvalsh(g.double()).min() > -1e-5
    torch.testing.assert_close(gram_matrix(a * scale), g * scale ** 2, rtol=1e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000), scale=scales)
def test_normalised_distances_are_scale_free(shape, seed, scale):
    a, b = tensor(shape, seed, 1.0), tensor(shape, seed + 1, 1.0)
    torch.testing.assert_close(content_loss(a * scale, b * scale, normalize=True), content_loss(a, b, normalize=True),
                               rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(style_loss(a * scale, gram_matrix(b * scale), normalize=True),
                               style_loss(a, gram_matrix(b), normalize=True), rtol=1e-3, atol=1e-6)
