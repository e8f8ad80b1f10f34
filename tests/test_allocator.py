"""The command line keeps freed activation memory in the process (glibc mallopt), so steps stop faulting."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocates and frees blocks of activation-like sizes (2-20 MB, touched) as an optimisation step does, and
# prints the page faults one such step costs once warmed up.
_STEP = """
import resource, sys
import numpy as np
if sys.argv[1] == "cli":
    from stylekit.cli import cli
    try:
        cli.main(args=["--version"])
    except SystemExit:
        pass
def step():
    bufs = [np.ones(n << 20, dtype=np.uint8) for n in (3, 11, 6, 20, 2, 11)]
    del bufs[3], bufs[0]
    more = [np.ones(n << 20, dtype=np.uint8) for n in (5, 9)]
    del bufs, more
step(); step()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 20)
"""


def _faults_per_step(mode: str, **env) -> float:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", _STEP, mode], env={**clean, **env}, capture_output=True,
                         text=True, check=True, timeout=120)
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_the_command_line_stops_freed_memory_from_faulting_in_again():
    plain = _faults_per_step("plain")
    cli = _faults_per_step("cli")
    assert plain > 1000            # glibc's defaults: the step's blocks are mapped and faulted in every time
    assert cli < plain / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_the_users_allocator_settings_win(monkeypatch):
    from stylekit._allocator import keep_freed_memory
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
    assert _faults_per_step("cli", MALLOC_TRIM_THRESHOLD_="131072") > 1000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_kept_bytes_is_what_the_settings_let_the_heap_keep_once_applied():
    # in a subprocess, so that this process keeps glibc's defaults
    script = ("from stylekit._allocator import keep_freed_memory, kept_bytes\n"
              "before = kept_bytes(); ok = keep_freed_memory(); print(before, ok, kept_bytes())")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    assert out == ["0", "True", str((1 << 30) + (256 << 20))]      # trim threshold + top pad
    out = subprocess.run([sys.executable, "-c", script], env={**clean, "MALLOC_TOP_PAD_": "0"}, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    assert out == ["0", "False", "0"]
