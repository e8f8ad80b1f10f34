"""Every script in examples/ runs to completion at a tiny size (as CI runs them)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args) -> str:
    r = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_train_feedforward(tmp_path):
    out = run("train_feedforward.py", "--steps", "3", "--size", "32", "-o", tmp_path / "net.pt")
    assert "loss" in out and (tmp_path / "net.pt").exists()


def test_gatys_fig2(tmp_path):
    run("gatys_fig2.py", "--size", "40", "--iterations", "2", "--out", tmp_path)
    assert {"fig2.jpg", "settings.json", "chelsea_blend.jpg"} <= {p.name for p in tmp_path.iterdir()}


def test_audio_style_transfer(tmp_path):
    run("audio_style_transfer.py", tmp_path / "audio", "--fast")
    assert list((tmp_path / "audio").glob("*.wav"))


def test_spectral_morph(tmp_path):
    run("spectral_morph.py", "--out", tmp_path / "morph", "--fast")
    assert list((tmp_path / "morph").glob("*.wav"))


def test_stylize_photo(tmp_path):
    out = run("stylize_photo.py", "-o", tmp_path / "sub" / "out.png", "--fast")
    assert (tmp_path / "sub" / "out.png").exists() and "wrote" in out


def test_stylize_photo_user_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "stylize_photo.py"), tmp_path / "missing.jpg",
                        "-o", tmp_path / "out.png", "--fast"], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "missing.jpg" in r.stderr


def test_blend_styles(tmp_path):
    out = run("blend_styles.py", "--out", tmp_path, "--fast")
    assert {"blend_1.00.jpg", "blend_0.50.jpg", "blend_0.00.jpg", "blend_strip.jpg"} <= {p.name for p in tmp_path.iterdir()}
    assert "style_blend=(0.50, 0.50)" in out


def test_preserve_color(tmp_path):
    out = run("preserve_color.py", "--out", tmp_path, "--fast")
    assert {"none.jpg", "luminance.jpg", "histogram.jpg", "colour_strip.jpg"} <= {p.name for p in tmp_path.iterdir()}
    assert "preserve_color=histogram" in out


def test_every_example_is_documented_and_run_here():
    """Each script in examples/ says what it shows in its header, and a test in this file runs it."""
    import ast
    source = Path(__file__).read_text()
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert len(scripts) >= 7
    for script in scripts:
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        assert "shows" in doc.lower(), f"{script.name}: the header docstring should say what it shows"
        assert f'run("{script.name}"' in source, f"{script.name} is not run by tests/test_examples.py"
