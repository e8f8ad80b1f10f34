"""The figures of ``--plot``: the image loss curves on integer iteration ticks, with every term drawn from its
real first value, and the audio spectrograms labelled in Hz."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stylekit.image.job import loss_figure  # noqa: E402

# (scale, step, terms) as ImageJob records them: a run from the content, whose content term starts at 0
HISTORY = [(1, 1, {"content": 0.0, "style": 1.3}), (1, 2, {"content": 0.0013, "style": 1.2}),
           (1, 3, {"content": 0.037, "style": 0.96}), (2, 1, {"content": 0.19, "style": 3.0}),
           (2, 2, {"content": 0.18, "style": 2.9}), (2, 3, {"content": 0.1, "style": 1.8})]


@pytest.fixture
def loss_axes():
    fig = loss_figure(HISTORY)
    fig.canvas.draw()
    yield fig.axes[0]
    plt.close(fig)


def test_iteration_ticks_are_integers(loss_axes):
    ticks = [t for t in loss_axes.get_xticks() if loss_axes.get_xlim()[0] <= t <= loss_axes.get_xlim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_the_content_curve_starts_at_its_real_value(loss_axes):
    content = next(ln for ln in loss_axes.get_lines() if ln.get_label() == "content")
    x, y = content.get_data()
    assert (x[0], y[0]) == (1, 0.0)
    # drawn, not dropped: the axis reaches down to 0 (a log axis would leave out the first point)
    assert loss_axes.get_yscale() == "symlog" and loss_axes.get_ylim()[0] <= 0.0
    total = next(ln for ln in loss_axes.get_lines() if ln.get_label() == "total")
    assert np.allclose(total.get_ydata(), [sum(t.values()) for _, _, t in HISTORY])


@pytest.mark.parametrize("kind", ["mel", "linear"])
def test_audio_spectrograms_are_labelled_in_hz(kind):
    from stylekit.audio.config import SpectrogramConfig
    from stylekit.audio.pipeline import _hz_ticks
    from stylekit.audio.transform import row_frequencies

    cfg = SpectrogramConfig(kind=kind, n_fft=1024, n_mels=64)
    fig, ax = plt.subplots()
    try:
        _hz_ticks(ax, cfg)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert ax.get_ylabel() == "frequency (Hz)" and "1k" in labels and "4k" in labels
        # each tick sits on the row whose centre frequency it names
        freqs = row_frequencies(cfg)
        for pos, label in zip(ax.get_yticks(), labels):
            hz = float(label[:-1]) * 1000 if label.endswith("k") else float(label)
            assert np.interp(pos - 0.5, np.arange(len(freqs)), freqs) == pytest.approx(hz, rel=1e-6)
    finally:
        plt.close(fig)
