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
