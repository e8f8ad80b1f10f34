"""What a run may write and replace (stylekit._io and the Job): nothing the user did not name as an output."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from stylekit._io import atomic_write, check_output_path
from stylekit.cli import cli
from stylekit.errors import ConfigError

FAST = ["--size", "32", "--iterations", "3", "--coarse-iterations", "2", "--scales", "1", "-q"]


def test_an_existing_file_is_never_replaced_without_overwrite(tmp_path):
    out = tmp_path / "a.png"
    atomic_write(out, lambda t: t.write_bytes(b"first"))
    with pytest.raises(ConfigError, match="already exists"):
        atomic_write(out, lambda t: t.write_bytes(b"second"))
    assert out.read_bytes() == b"first"
    atomic_write(out, lambda t: t.write_bytes(b"third"), overwrite=True)
    assert out.read_bytes() == b"third"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]       # no temporary file left


def test_a_file_that_appears_during_the_write_wins(tmp_path):
    # the no-clobber check is part of the final step (a hard link), not a test before it
    out = tmp_path / "a.png"

    def write(tmp):
        tmp.write_bytes(b"mine")
        out.write_bytes(b"someone else's")

    with pytest.raises(ConfigError, match="already exists"):
        atomic_write(out, write)
    assert out.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


_RACER = """
import sys, time
from pathlib import Path
from stylekit._io import atomic_write
from stylekit.errors import ConfigError
go = float(sys.argv[2])
while time.time() < go:
    pass
try:
    atomic_write(Path(sys.argv[1]), lambda t: (time.sleep(0.2), t.write_bytes(sys.argv[3].encode())))
    print("won")
except ConfigError:
    print("refused")
"""


def test_two_processes_writing_one_output_one_wins_and_the_other_is_refused(tmp_path):
    import time
    out = tmp_path / "o.png"
    go = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(out), go, tag], stdout=subprocess.PIPE, text=True)
             for tag in ("A", "B")]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["refused", "won"]
    assert out.read_bytes() in (b"A", b"B")


def test_non_regular_files_are_never_replaced(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not a regular file"):
            check_output_path(fifo, overwrite=overwrite)
        with pytest.raises(ConfigError, match="not a regular file"):
            atomic_write(fifo, lambda t: t.write_bytes(b"x"), overwrite=overwrite)
    assert fifo.is_fifo()


def test_an_input_under_another_name_is_not_an_output(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.png")
    with pytest.raises(ConfigError, match="same as an input"):
        check_output_path(tmp_path / "b.png", overwrite=True, inputs=[a])


def test_temporaries_of_killed_writers_are_cleaned_up_and_a_failed_write_names_the_output(tmp_path):
    out = tmp_path / "a.png"
    stale = tmp_path / ".a.999999999.abcdefgh.part.png"       # no such process
    stale.write_bytes(b"stale")
    live = tmp_path / f".a.{os.getppid()}.abcdefgh.part.png"   # a process that runs: maybe writing now
    live.write_bytes(b"live")
    atomic_write(out, lambda t: t.write_bytes(b"x"))
    assert not stale.exists() and live.exists()

    def failing(tmp):
        raise OSError(28, "No space left on device", str(tmp))
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "b.png", failing)
    assert info.value.filename == str(tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name])


def test_a_file_with_the_checkpoints_name_is_refused_before_the_run(tmp_path, content_png, style_jpg):
    # a run's checkpoint goes to OUTPUT_STEM.ckpt.pt; a file of the user's there is never replaced, even by Ctrl-C
    precious = tmp_path / "out.ckpt.pt"
    precious.write_bytes(b"the user's own file")
    r = CliRunner().invoke(cli, ["image", str(content_png), str(style_jpg), "-o", str(tmp_path / "out.png"), *FAST])
    assert r.exit_code == 2 and "out.ckpt.pt: exists and is not a stylekit image checkpoint" in r.output
    assert precious.read_bytes() == b"the user's own file" and not (tmp_path / "out.png").exists()


def test_a_content_file_named_like_the_checkpoint_survives_an_interrupt(tmp_path, content_png, style_jpg,
                                                                         monkeypatch):
    import stylekit.optim as optim
    content = tmp_path / "out.ckpt.pt"
    content.write_bytes(content_png.read_bytes())
    monkeypatch.setattr(optim, "_evaluate", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    r = CliRunner().invoke(cli, ["image", str(content), str(style_jpg), "-o", str(tmp_path / "out.png"), *FAST])
    assert r.exit_code == 2 and "out.ckpt.pt" in r.output
    assert content.read_bytes() == content_png.read_bytes()


def test_an_interrupted_run_is_resumed_as_the_hint_says(tmp_path, content_png, style_jpg, monkeypatch):
    import stylekit.optim as optim
    real, calls = optim._evaluate, {"n": 0}

    def interrupting(criterion, x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(criterion, x)
    monkeypatch.setattr(optim, "_evaluate", interrupting)
    args = ["image", str(content_png), str(style_jpg), "-o", str(tmp_path / "out.png"), *FAST]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 130
    hint = r.output.strip().splitlines()[-1]
    assert hint.endswith(f"continue with --resume {tmp_path / 'out.ckpt.pt'}")
    monkeypatch.setattr(optim, "_evaluate", real)
    r = CliRunner().invoke(cli, [*args, "--resume", str(tmp_path / "out.ckpt.pt")])     # exactly as printed
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "out.ckpt.pt").exists()                # a finished run needs no checkpoint
