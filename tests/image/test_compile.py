"""`compile=True` / `--compile`: the objective through torch.compile gives the same run as the eager one."""
import warnings

import pytest
import torch

from stylekit import ImageStyleConfig, stylize_image
from stylekit.errors import ConfigError

# Two shallow layers keep inductor's compile time on the CPU to well under a minute.
SMALL = dict(content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 0.5, "relu2_1": 0.5}, scales=1,
             iterations=4, size=40, device="cpu", tile="off")


def _images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 30, 40, generator=g), torch.rand(1, 3, 36, 36, generator=g)


def _run(**kw):
    content, style = _images()
    losses = []
    out = stylize_image(content, [style], callback=lambda p: losses.append(p.loss), **{**SMALL, **kw}).data
    return out, losses


def test_compiled_run_matches_the_eager_run():
    from torch._dynamo.utils import counters
    eager, eager_losses = _run()
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled, compiled_losses = _run(compile=True)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]   # it really ran compiled
    assert len(compiled_losses) == len(eager_losses) == 4
    # The eager run uses the Winograd convolutions, the compiled one inductor's: float rounding apart, the same.
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-3)
    assert torch.allclose(compiled, eager, atol=2e-3)
    assert compiled_losses[-1] < compiled_losses[0]


def test_compiled_network_leaves_out_the_winograd_convolutions(monkeypatch):
    # At 64x48 block 1 is above the Winograd threshold: the eager network takes NNPACK there (with the CPU
    # backend on, as in the command line), which torch.compile cannot trace, so the compiled one must take
    # torch's convolutions (one graph, no breaks).
    from torch._dynamo.utils import counters

    from stylekit.features import cpu_backend
    monkeypatch.setattr(cpu_backend, "_enabled", True)
    _, eager_losses = _run(size=64)
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, compiled_losses = _run(size=64, compile=True)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]
    # the same objective at the same starting point (L-BFGS then amplifies the 1e-5 rounding differences)
    assert compiled_losses[0] == pytest.approx(eager_losses[0], rel=1e-4)
    assert compiled_losses[-1] < compiled_losses[0]


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("backend exploded\nsecond line")


def _broken_forward(fn, **kw):
    def call(*a, **k):
        raise RuntimeError("backend exploded\nsecond line")
    return call


def _broken_backward(fn, **kw):
    # the backward graph may be compiled at the first backward pass, after the compiled call has returned
    def call(x):
        total, terms = fn(x)
        return _FailingBackward.apply(total), terms
    return call


@pytest.mark.parametrize("broken", [_broken_forward, _broken_backward])
def test_a_failing_compile_warns_and_runs_eagerly(monkeypatch, broken):
    monkeypatch.setattr(torch, "compile", broken)
    eager, eager_losses = _run()
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(RuntimeError: backend exploded\)"):
        out, losses = _run(compile=True)
    assert losses == pytest.approx(eager_losses, rel=1e-3)
    assert torch.allclose(out, eager, atol=2e-3)
    assert losses == eager_losses and torch.equal(out, eager)   # the fallback is the eager network itself


def test_compile_option_is_checked():
    with pytest.raises(ConfigError, match="compile must be true or false"):
        ImageStyleConfig(compile="yes")


def test_cli_compile_flag_reaches_the_run(tmp_path, content_png, style_jpg):
    from click.testing import CliRunner

    from stylekit.cli import cli
    from stylekit.image import read_metadata
    out = tmp_path / "out.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(cli, ["image", str(content_png), str(style_jpg), "-o", str(out), "--compile",
                                     "--size", "40", "--scales", "1", "--iterations", "2", "--device", "cpu",
                                     "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "-q"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert read_metadata(out)["config"]["compile"] is True
