"""``stylekit serve`` as a command: its options, one-line errors, the warning for other hosts, and the end."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from stylekit.cli import cli
from stylekit.serve.config import ServeConfig, is_local


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_help_imports_neither_torch_nor_the_web_stack():
    code = ("import sys\nfrom stylekit.cli import main\ntry:\n    main(['serve', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules, 'starlette' in sys.modules, 'uvicorn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-3:] == ["False", "False", "False"], out.stderr
    assert "--max-pixels" in out.stdout and "--host" in out.stdout


@pytest.mark.parametrize("args,needle", [(["--port", "99999"], "port"), (["--max-pixels", "0"], "max-pixels"),
                                         (["--max-upload-mb", "nan"], "max-upload-mb"),
                                         (["--host", "no such host.invalid"], "--host")])
def test_bad_options_are_one_line(args, needle):
    if needle == "--host":
        pytest.importorskip("uvicorn", reason="the address is tried once the serve extra is there")
    assert needle in _one_line_error(CliRunner().invoke(cli, ["serve", *args]))


def test_a_port_in_use_is_one_line():
    pytest.importorskip("uvicorn", reason="the port is tried once the serve extra is there")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        line = _one_line_error(CliRunner().invoke(cli, ["serve", "--port", str(port)]))
    assert f"127.0.0.1:{port} is in use" in line and "--port" in line


def test_local_hosts_and_the_warning_for_others(monkeypatch):
    from stylekit.serve import server as srv
    assert all(is_local(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_local(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.org"))
    monkeypatch.setattr(srv.Server, "run", lambda self: None)
    lines: list[str] = []
    srv.serve(ServeConfig(port=0), echo=lines.append)
    assert len(lines) == 1 and lines[0].startswith("stylekit serve: http://127.0.0.1:")
    lines.clear()
    srv.serve(ServeConfig(host="0.0.0.0", port=0), echo=lines.append)
    assert lines[0].startswith("warning: listening on 0.0.0.0") and "anyone" in lines[0]


def test_missing_extra_names_it(monkeypatch):
    import importlib.util

    from stylekit.serve import server as srv
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert srv.missing_extra() == "stylekit serve needs uvicorn: pip install 'stylekit[serve]'"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_server_ends_on_a_signal_and_removes_its_folder(tmp_path, sig):
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stylekit", "serve", "--port", "0"], stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://\S+", line).group(0)
        r = httpx.post(url + "api/uploads/image", content=b"not an image", headers={"X-Stylekit": "1"}, timeout=60)
        assert r.status_code == 400
        folders = list(tmp_path.glob("stylekit-serve-*"))
        assert len(folders) == 1 and (folders[0] / "uploads").is_dir()
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in rest, rest
    assert not list(tmp_path.glob("stylekit-serve-*"))
