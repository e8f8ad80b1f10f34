"""``stylekit serve`` over HTTP: limits, malformed requests, path safety, the queue, stop and continue, and that
a run is the command line's Job (same pixels, same embedded settings)."""
from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="stylekit serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="stylekit serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("httpx", reason="the serve tests talk to the server with httpx")

from _serve import FAST_IMAGE, HEADERS, png_bytes, running_server, upload, wait_for, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def srv():
    with running_server(max_upload_mb=0.2, max_pixels=200 * 200, max_audio_seconds=3, preview_interval=0) as s:
        yield s


def _no_traceback(r):
    assert "Traceback" not in r.text and 'File "' not in r.text
    return r.json()["error"]


def test_page_and_static_files_are_served_with_a_strict_policy(srv):
    _, client = srv
    r = client.get("/")
    assert r.status_code == 200 and "<canvas id=\"preview\"" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in r.text.split("<body>")[0].replace("http-equiv", "")    # nothing from elsewhere
    for name in ("app.js", "style.css"):
        body = client.get(f"/static/{name}").text
        assert "http://" not in body and "https://" not in body                 # offline: no CDN
    info = client.get("/api/info").json()
    names = [c["name"] for c in info["controls"]["image"]]
    assert {"size", "iterations", "style_weight", "preserve_color", "style_blend"} <= set(names)
    assert info["limits"] == {"bytes": 200_000, "pixels": 40_000, "audio_seconds": 3.0, "styles": 8}


def test_defaults_of_the_form_are_the_configs(srv):
    from stylekit.audio.config import AudioStyleConfig
    from stylekit.image.config import ImageStyleConfig
    _, client = srv
    info = client.get("/api/info").json()["controls"]
    image = {c["name"]: c for c in info["image"]}
    audio = {c["name"]: c for c in info["audio"]}
    assert image["iterations"]["value"] == ImageStyleConfig().iterations
    assert image["style_weight"]["value"] == ImageStyleConfig().style_weight
    assert image["preserve_color"]["choices"] == ["none", "luminance", "histogram"]
    assert image["init"]["choices"] == ["content", "noise"]                 # no path from the page
    assert audio["steps"]["value"] == AudioStyleConfig().steps


@pytest.mark.parametrize("kind,data,status,needle", [
    ("image", b"x" * 300_000, 413, "at most 0.2 MB"),
    ("image", png_bytes(300, 200), 413, "300x200"),
    ("image", b"not an image at all", 400, "not an image"),
    ("image", b"", 400, "empty"),
    ("audio", wav_bytes(np.zeros(22050 * 4, np.float32) + 0.01), 413, "4.0 s long"),
    ("audio", b"RIFF....WAVEfmt garbage", 400, "uploaded audio"),
    ("video", b"x", 404, "uploads are"),
])
def test_uploads_over_a_limit_or_unusable_are_refused_with_a_message(srv, kind, data, status, needle):
    server, client = srv
    before = sorted(os.listdir(server.folder / "uploads"))
    r = upload(client, kind, data)
    assert r.status_code == status, r.text
    assert needle in _no_traceback(r)
    assert str(server.folder) not in r.text                                 # private paths are not shown
    assert sorted(os.listdir(server.folder / "uploads")) == before          # nothing refused is kept


def test_an_upload_is_stored_under_a_name_the_server_makes(srv):
    server, client = srv
    r = client.post("/api/uploads/image", content=png_bytes(40, 30),
                    headers={**HEADERS, "Content-Disposition": 'attachment; filename="../../evil.png"',
                             "X-Filename": "../../evil.png"})
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["width"] == 40 and item["height"] == 30
    assert item["id"].isalnum() and os.path.isfile(server.folder / "uploads" / f"{item['id']}.png")
    assert not any("evil" in name for _, _, files in os.walk(server.folder) for name in files)


@pytest.mark.parametrize("method,url,kw,status", [
    ("POST", "/api/runs", {"content": b"{not json"}, 400),
    ("POST", "/api/runs", {"json": [1, 2]}, 400),
    ("POST", "/api/runs", {"json": {"medium": "video"}}, 400),
    ("POST", "/api/runs", {"json": {"medium": "image", "content": "nope", "styles": ["nope"]}}, 400),
    ("POST", "/api/runs", {"json": {"medium": "image", "content": "../../etc/passwd", "styles": "x"}}, 400),
    ("POST", "/api/runs", {"content": b"{" + b" " * 70_000 + b"}"}, 413),
    ("GET", "/api/runs/nope", {}, 404),
    ("GET", "/api/runs/..%2F..%2Fetc%2Fpasswd/result", {}, 404),
    ("POST", "/api/runs/nope/stop", {}, 404),
    ("GET", "/static/../app.py", {}, 404),
    ("GET", "/static/..%2Fapp.py", {}, 404),
    ("GET", "/nothing-here", {}, 404),
    ("PUT", "/api/runs", {}, 405),
])
def test_malformed_requests_get_a_4xx_and_one_line(srv, method, url, kw, status):
    _, client = srv
    r = client.request(method, url, headers=HEADERS, **kw)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    if r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["error"]


def test_bad_settings_are_refused_with_the_commands_message(srv):
    _, client = srv
    a = upload(client, "image", png_bytes(40, 30)).json()["id"]
    for settings, needle in [({"size": "abc"}, "not a valid integer"), ({"iterations": "0"}, "iterations"),
                             ({"init": "/etc/passwd"}, "not one of"),
                             ({"weights": "/tmp/x.pt"}, "unknown image setting"),
                             ({"style_blend": "x"}, "style-blend"), ({"size": [1]}, "text or a number")]:
        r = client.post("/api/runs", json={"medium": "image", "content": a, "styles": [a], "settings": settings},
                        headers=HEADERS)
        assert r.status_code == 400 and needle in _no_traceback(r), (settings, r.text)
    # an image upload is not a sound
    r = client.post("/api/runs", json={"medium": "audio", "content": a, "styles": [a]}, headers=HEADERS)
    assert r.status_code == 400 and "no such audio upload" in r.json()["error"]


def test_changes_need_the_header_and_a_local_host_name(srv):
    _, client = srv
    r = client.post("/api/uploads/image", content=png_bytes(20, 20))             # no X-Stylekit header
    assert r.status_code == 403 and "X-Stylekit" in r.json()["error"]
    r = client.get("/api/info", headers={"Host": "evil.example:8765"})           # DNS rebinding
    assert r.status_code == 403


def _start(client, content, style, **settings):
    r = client.post("/api/runs", json={"medium": "image", "content": content, "styles": [style],
                                       "settings": {**FAST_IMAGE, **settings}}, headers=HEADERS)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_one_run_at_a_time_with_a_visible_queue_stop_and_continue(srv):
    from stylekit.image.io import load_image, read_metadata
    server, client = srv
    c = upload(client, "image", png_bytes(48, 32, 1)).json()["id"]
    s = upload(client, "image", png_bytes(40, 40, 2)).json()["id"]
    first = _start(client, c, s, iterations="400", tv_weight="0.5")
    second = _start(client, c, s, iterations="3")
    third = _start(client, c, s, iterations="3")
    queue = client.get("/api/runs").json()
    states = {r["id"]: r for r in queue}
    assert [r["state"] for r in queue].count("running") <= 1
    assert states[third]["state"] == "queued" and states[third]["position"] == states[second]["position"] + 1
    # cancel the third while it waits; stop the first once it has made progress
    assert client.post(f"/api/runs/{third}/stop", headers=HEADERS).json()["state"] == "cancelled"
    deadline = time.monotonic() + 120
    while client.get(f"/api/runs/{first}").json()["step"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.get(f"/api/runs/{second}").json()["state"] == "queued"      # waits for the first
    client.post(f"/api/runs/{first}/stop", headers=HEADERS).raise_for_status()
    stopped = wait_for(client, first, {"stopped", "done"})
    assert stopped["state"] == "stopped" and stopped["has_result"]
    partial = client.get(f"/api/runs/{first}/result")
    meta = read_metadata(io.BytesIO(partial.content))
    assert meta["interrupted_at"] == stopped["step"] and meta["config"]["iterations"] == 400
    assert client.post(f"/api/runs/{third}/continue", headers=HEADERS).status_code == 409
    wait_for(client, second, {"done"})
    # continue the first: it goes on from its checkpoint to the end
    assert client.post(f"/api/runs/{first}/continue", headers=HEADERS).json()["state"] == "queued"
    client.post(f"/api/runs/{first}/stop", headers=HEADERS)    # a continuation can be stopped again ...
    again = wait_for(client, first, {"stopped", "done"})
    assert again["state"] == "stopped" and again["step"] >= stopped["step"]
    client.post(f"/api/runs/{first}/continue", headers=HEADERS).raise_for_status()     # ... and continued
    done = wait_for(client, first, {"done", "failed"})
    assert done["state"] == "done", done
    steps = client.get(f"/api/runs/{first}").json()["steps"]
    assert [s["i"] for s in steps] == list(range(1, len(steps) + 1))                     # no step twice
    final = read_metadata(io.BytesIO(client.get(f"/api/runs/{first}/result").content))
    assert "interrupted_at" not in final and final["iterations_run"] == len(steps) - again["step"]
    assert not (server.folder / "runs" / first / "result.ckpt.pt").exists()              # the Job removed it
    assert load_image(server.folder / "runs" / first / "result.png").shape[-1] == 32


def test_a_run_is_the_commands_job_same_pixels_and_settings(srv, tmp_path):
    """The server's result equals ``stylekit image``'s on the same files: same pixels, same config, same digest."""
    from click.testing import CliRunner

    from stylekit.cli import cli
    from stylekit.image.io import load_image, read_metadata
    server, client = srv
    c = upload(client, "image", png_bytes(48, 32, 3)).json()["id"]
    s = upload(client, "image", png_bytes(40, 40, 4)).json()["id"]
    run = _start(client, c, s, iterations="4", seed="3", preserve_color="luminance")
    assert wait_for(client, run, {"done", "failed"})["state"] == "done"
    got = tmp_path / "served.png"
    got.write_bytes(client.get(f"/api/runs/{run}/result").content)
    assert got.read_bytes() == (server.folder / "runs" / run / "result.png").read_bytes()   # as the Job wrote it
    # the same files, through the command line
    uploads = server.folder / "uploads"
    out = tmp_path / "cli.png"
    from stylekit.features import cpu_backend
    was = cpu_backend.enabled()
    try:
        r = CliRunner().invoke(cli, ["image", str(uploads / f"{c}.png"), str(uploads / f"{s}.png"), "-o", str(out),
                                     "--size", "32", "--iterations", "4", "--coarse-iterations", "2", "--scales", "1",
                                     "--seed", "3", "--preserve-color", "luminance", "-q"], catch_exceptions=False)
    finally:
        cpu_backend.enable(was)          # the command turns the fast kernels on for the whole process
    assert r.exit_code == 0, r.output
    a, b = read_metadata(got), read_metadata(out)
    assert a.keys() == b.keys() and a["config"] == b["config"] and a["settings_sha256"] == b["settings_sha256"]
    assert a["content"] == b["content"] and a["styles"] == b["styles"]
    diff = (load_image(got) - load_image(out)).abs().max().item()
    assert diff <= 2 / 255, diff              # the CLI's fast CPU kernels differ only by float rounding


def test_the_event_stream_sends_queue_steps_and_frames(srv):
    server, client = srv
    c = upload(client, "image", png_bytes(48, 32, 5)).json()["id"]
    s = upload(client, "image", png_bytes(40, 40, 6)).json()["id"]
    events: dict[str, list] = {}
    with client.stream("GET", "/api/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        run = _start(client, c, s, iterations="6")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.setdefault(name, []).append(json.loads(line[6:]))
                if any(q["id"] == run and q["state"] == "done" for q in events.get("queue", [[]])[-1]):
                    break
    frames = [f for f in events["frame"] if f["run"] == run]
    assert len(frames) >= 2 and frames[-1]["w"] == 32 and frames[-1]["c"] == 3
    steps = [x for e in events["steps"] if e["run"] == run for x in e["steps"]]
    assert [x["i"] for x in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert {"content", "style"} <= set(steps[0]["terms"])


def test_an_audio_run_gives_a_wav_and_three_spectrograms(srv):
    import soundfile as sf
    from _audio_data import textureish, voiceish

    from stylekit.audio.io import read_metadata
    server, client = srv
    v = upload(client, "audio", wav_bytes(voiceish(1.0))).json()
    t = upload(client, "audio", wav_bytes(textureish(1.0))).json()
    assert v["seconds"] == 1.0 and v["spectrogram"]["c"] == 1 and v["spectrogram"]["h"] == 224
    r = client.post("/api/runs", json={"medium": "audio", "content": v["id"], "styles": [t["id"]],
                                       "settings": {"steps": "3"}}, headers=HEADERS)
    assert r.status_code == 201, r.text
    done = wait_for(client, r.json()["id"], {"done", "failed"})
    assert done["state"] == "done", done
    wav = client.get(f"/api/runs/{done['id']}/result")
    assert wav.headers["content-type"] == "audio/wav"
    y, sr = sf.read(io.BytesIO(wav.content))
    assert sr == 22050 and len(y) == 22050
    path = server.folder / "runs" / done["id"] / "result.wav"
    assert read_metadata(path)["config"]["steps"] == 3
    spec = client.get(f"/api/runs/{done['id']}/spectrogram").json()
    assert spec["h"] == 224 and spec["w"] == v["spectrogram"]["w"]


def test_the_private_folder_is_removed_and_the_host_warning_printed(tmp_path):
    with running_server() as (server, client):
        item = upload(client, "image", png_bytes(20, 20)).json()
        assert (server.folder / "uploads" / f"{item['id']}.png").is_file()
        folder = server.folder
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert not folder.exists()


def test_masks_are_uploads_checked_when_the_run_is_asked_for(srv):
    from PIL import Image

    from stylekit.image.io import read_metadata
    server, client = srv
    c = upload(client, "image", png_bytes(48, 32, 7)).json()["id"]
    s1 = upload(client, "image", png_bytes(40, 40, 8)).json()["id"]
    s2 = upload(client, "image", png_bytes(40, 40, 9)).json()["id"]

    def mask(w, h, left: bool) -> str:
        a = np.zeros((h, w), np.uint8)
        a[:, : w // 2] = 255
        buf = io.BytesIO()
        Image.fromarray(a if left else 255 - a, "L").save(buf, format="PNG")
        return upload(client, "image", buf.getvalue()).json()["id"]

    left, right, square = mask(48, 32, True), mask(48, 32, False), mask(40, 40, True)
    body = {"medium": "image", "content": c, "styles": [s1, s2], "settings": {**FAST_IMAGE, "iterations": "2"}}
    for masks, needle in [({"styles": [left]}, "one per style"), ({"styles": [left, "nope"]}, "no such image upload"),
                          ({"content": square}, "aspect"), ({"paths": ["/etc/passwd"]}, "masks are for images")]:
        r = client.post("/api/runs", json={**body, "masks": masks}, headers=HEADERS)
        assert r.status_code == 400 and needle in _no_traceback(r), (masks, r.text)
        assert str(server.folder) not in r.text
    r = client.post("/api/runs", json={**body, "masks": {"styles": [left, right], "content": left}}, headers=HEADERS)
    assert r.status_code == 201, r.text
    done = wait_for(client, r.json()["id"], {"done", "failed"})
    assert done["state"] == "done", done
    meta = read_metadata(io.BytesIO(client.get(f"/api/runs/{done['id']}/result").content))
    # the uploads, by the names the server gave them (the Job records names, or paths in the private folder)
    assert [os.path.basename(m) for m in meta["config"]["style_masks"]] == [f"{left}.png", f"{right}.png"]
    assert os.path.basename(meta["config"]["content_mask"]) == f"{left}.png"
