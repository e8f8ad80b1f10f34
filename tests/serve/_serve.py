"""A real ``stylekit serve`` server on a free port, in a thread, for the serve tests."""
from __future__ import annotations

import contextlib
import io
import threading
import time

import httpx
import numpy as np
from PIL import Image

from stylekit.serve.config import ServeConfig
from stylekit.serve.server import Server, bind

HEADERS = {"X-Stylekit": "1"}
#: Tiny, fast settings: a run of a few steps at 32 px takes well under a second a step on the CPU.
FAST_IMAGE = {"size": "32", "iterations": "40", "coarse_iterations": "2", "scales": "1"}
FAST_AUDIO = {"steps": "40"}


@contextlib.contextmanager
def running_server(**options):
    """Yield ``(server, client)``: a started server on 127.0.0.1 and an httpx client for it. On exit the server
    is stopped and its private folder must be gone."""
    config = ServeConfig(**{"port": 0, **options})
    server = Server(config, bind(config.host, 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=60) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/api/info").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield server, client
        finally:
            server.exit()
            thread.join(60)
    assert not thread.is_alive()
    assert server.folder is not None and not server.folder.exists()


def png_bytes(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    chans = [np.sin(2 * np.pi * (rng.uniform(1, 4) * xx + rng.uniform(1, 4) * yy)) * 0.5 + 0.5 for _ in range(3)]
    buf = io.BytesIO()
    Image.fromarray((np.stack(chans, -1) * 255).astype(np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(y: np.ndarray, sr: int = 22050) -> bytes:
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def upload(client, kind: str, data: bytes):
    return client.post(f"/api/uploads/{kind}", content=data, headers=HEADERS)


def wait_for(client, run_id: str, states, timeout: float = 240.0) -> dict:
    """Poll a run until its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/runs/{run_id}").json()
        if r["state"] in states:
            return r
        assert time.monotonic() < deadline, r
        time.sleep(0.05)
