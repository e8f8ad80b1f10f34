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


@pytest.mark.parametrize("args", [["--help"], ["image", "--help"], ["audio", "--help"], ["batch", "--help"],
                                  ["spectral", "--help"], ["--version"]])
def test_help_does_not_import_torch(args):
    body = ("from stylekit.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n")
    torch_loaded, _ = _probe(body)
    assert not torch_loaded
