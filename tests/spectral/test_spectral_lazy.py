"""`stylekit spectral ... --help` and `import stylekit.spectral` load neither numpy nor torch; the plain-Python
:mod:`stylekit.spectral.config` stays in step with the modules that re-export it."""
from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys
{body}
print("torch" in sys.modules, "numpy" in sys.modules)
"""


def _heavy_modules_loaded(body: str) -> str:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[-2]


@pytest.mark.parametrize("sub", ["", "synth", "train", "eval", "compare", "encode", "decode", "morph", "sample",
                                 "sweep"])
def test_help_imports_neither_numpy_nor_torch(sub):
    body = ("from stylekit.spectral.cli import spectral\n"
            f"try:\n    spectral.main({[*sub.split(), '--help']!r}, prog_name='spectral')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code")
    assert _heavy_modules_loaded(body) == "False False"


def test_import_does_no_work():
    body = ("import stylekit.spectral, stylekit.spectral.config\n"
            "assert not [m for m in sys.modules if m.startswith('stylekit.spectral.')"
            " and m != 'stylekit.spectral.config']")
    assert _heavy_modules_loaded(body) == "False False"


def test_lazy_names_and_re_exports_are_the_config_objects():
    import stylekit.spectral as sp
    from stylekit.spectral import config, features, models, nsynth, synth, train
    assert features.SpectralSTFTConfig is config.SpectralSTFTConfig is sp.SpectralSTFTConfig
    assert synth.SynthConfig is config.SynthConfig and synth.parse_int_list is config.parse_int_list
    assert train.TrainConfig is config.TrainConfig
    assert nsynth.SOURCES is config.SOURCES and synth.DEFAULT_SOUNDFONTS is config.DEFAULT_SOUNDFONTS
    assert tuple(models.MODELS) == config.MODEL_NAMES == sp.MODEL_NAMES
    assert sp.MODELS is models.MODELS and sp.to_features is features.to_features
    assert sorted(dir(sp)) == sorted(sp.__all__)
    with pytest.raises(AttributeError):
        sp.no_such_name  # noqa: B018
