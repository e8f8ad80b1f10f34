"""The documentation builds offline with no warnings, and its pictures are present, small, and reproducible.

The build is the one CI runs (``python -m sphinx -W --keep-going -b html docs OUT``): a broken link or
cross-reference, a missing picture, a page outside the table of contents or a docstring that does not parse
fails it. Skipped only when Sphinx or MyST-Parser is not installed (``pip install -e ".[docs]"``).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def sphinx_build(src: Path, out: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("myst_parser", reason="the docs extra is not installed")
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(src), str(out / "html")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_docs_build_without_warnings(tmp_path):
    r = sphinx_build(DOCS, tmp_path)
    assert r.returncode == 0, f"docs build failed or warned:\n{r.stderr[-4000:]}"
    html = tmp_path / "html"
    for page in ("index", "getting-started", "image-guide", "examples", "audio", "spectral", "batch",
                 "benchmarks", "reliability", "api/losses", "api/pipelines", "api/optim", "api/features"):
        assert (html / f"{page}.html").is_file(), f"{page} missing from the built docs"
    # The API reference is generated from the docstrings: the loss functions and classes are documented.
    api = (html / "api" / "losses.html").read_text()
    for name in ("gram_matrix", "style_loss", "StyleTransferLoss", "GramStyleLoss", "ContentLoss", "TVLoss"):
        assert f'id="stylekit.losses.' in api and name in api, name
    assert "stylize_image" in (html / "api" / "pipelines.html").read_text()


def test_broken_reference_fails_the_build(tmp_path):
    """The strict build really is strict: a link to a missing page or a missing picture fails it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text((DOCS / "conf.py").read_text())
    (src / "index.md").write_text("# Test\n\nSee [a page that is not there](missing.md).\n\n![](nowhere.png)\n")
    r = sphinx_build(src, tmp_path / "out")
    assert r.returncode != 0
    assert "missing.md" in r.stderr and "nowhere.png" in r.stderr


def test_guide_pictures_exist_and_are_small():
    """Every picture the image guide shows is in docs/guide/, a JPEG under 150 kB, with its settings."""
    guide = (DOCS / "image-guide.md").read_text()
    shown = re.findall(r"\]\((guide/[^)\s]+\.jpg)\)", guide)
    assert len(shown) >= 9
    for rel in shown:
        p = DOCS / rel
        assert p.is_file(), rel
        assert p.stat().st_size < 150_000, f"{rel}: {p.stat().st_size} bytes"
    settings = json.loads((DOCS / "guide" / "settings.json").read_text())
    assert settings["script"] == "docs/make_figures.py"
    from_script = {f"guide/{name}.jpg" for name in settings["figures"]} | {"guide/inputs.jpg"}
    assert set(shown) <= from_script, "the guide shows a picture make_figures.py does not make"


def test_make_figures_smoke(tmp_path):
    """docs/make_figures.py runs end to end at a tiny size and writes every figure and its settings."""
    r = subprocess.run([sys.executable, str(DOCS / "make_figures.py"), "--size", "64", "--iterations", "2",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    names = {p.name for p in tmp_path.iterdir()}
    expected = {f"{n}.jpg" for n in ("inputs", "tradeoff", "style_scale", "preserve_color", "pooling", "layers",
                                     "blend", "coarse_to_fine", "weights")} | {"settings.json"}
    assert expected <= names, expected - names
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["base"]["size"] == 64 and settings["torch_threads"] == 1
