"""The command line's runtime: no work and no environment change at import, and --help without torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import os, sys
before = dict(os.environ)
{body}
print("torch" in sys.modules, dict(os.environ) == before)
"""


def _probe(body: str) -> tuple[bool, bool]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    torch_loaded, env_same = out.stdout.split()[-2:]
    return torch_loaded == "True", env_same == "True"


def test_import_stylekit_does_no_work_and_leaves_the_environment_alone():
    assert _probe("import stylekit") == (False, True)
    # the public names load what they need, and still change nothing in the environment
    assert _probe("import stylekit; stylekit.stylize_image; stylekit.stylize_audio; stylekit.VGG19Features") \
        == (True, True)


@pytest.mark.parametrize("args", [["--help"], ["image", "--help"], ["audio", "--help"], ["video", "--help"],
                                  ["batch", "--help"], ["spectral", "--help"], ["settings", "--help"],
                                  ["--version"]])
def test_help_does_not_import_torch(args):
    body = ("from stylekit.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n")
    torch_loaded, _ = _probe(body)
    assert not torch_loaded


def test_devices_are_named_as_torch_names_them_and_missing_ones_are_one_line(monkeypatch):
    import torch

    from stylekit._device import check_device, resolve_device
    from stylekit.errors import ConfigError
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert check_device(name) == name
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "", None, 3):
        with pytest.raises(ConfigError, match="device must be"):
            check_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1") and resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match="2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import stylekit._device as dev
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")          # CUDA first, then MPS, then the CPU
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="MPS is not available"):
        resolve_device("mps")
