"""``stylekit serve`` in a real browser: Playwright driving the system's Chromium (Debian's ``chromium``).

The page is loaded, a content and a style are uploaded, the run is started, the preview must change at least
twice, the run is stopped, and the downloaded PNG must carry the settings the Job embeds; it is continued to the
end and downloaded again; then the same for a
voice and a texture (both playable, spectrograms of all three, the result playable and downloadable).
"""
from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("starlette", reason="stylekit serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("httpx", reason="the serve tests talk to the server with httpx")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser test needs playwright (pip install playwright)")
CHROMIUM = os.environ.get("STYLEKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("the browser test needs Chromium (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)

from _serve import png_bytes, running_server, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start; the page is our own.
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    yield page
    context.close()
    assert not [e for e in errors if "/api/events" not in e], errors


def _canvas(page, selector: str) -> str:
    return page.evaluate(f"() => document.querySelector('{selector}').toDataURL()")


def _watch_preview_change(page, times: int) -> None:
    """Wait until the preview canvas has shown ``times`` different pictures after the first."""
    page.wait_for_function("() => Number(document.getElementById('preview').dataset.frames) >= 1", timeout=120_000)
    seen = [_canvas(page, "#preview")]
    while len(seen) <= times:
        n = int(page.get_attribute("#preview", "data-frames"))
        page.wait_for_function(f"() => Number(document.getElementById('preview').dataset.frames) > {n}",
                               timeout=120_000)
        picture = _canvas(page, "#preview")
        if picture != seen[-1]:
            seen.append(picture)


def _stop_and_download(page, tmp_path, name: str):
    page.click("#stop")
    page.wait_for_selector("#status[data-state='stopped']", timeout=120_000)
    page.wait_for_selector("#download:not(.disabled)")
    with page.expect_download() as info:
        page.click("#download")
    path = tmp_path / name
    info.value.save_as(path)
    return path


def test_image_preview_stop_and_download(page, tmp_path):
    from stylekit import __version__
    from stylekit.image.io import load_image, read_metadata
    (tmp_path / "content.png").write_bytes(png_bytes(64, 48, 1))
    (tmp_path / "style.png").write_bytes(png_bytes(48, 48, 2))
    with running_server(preview_interval=0) as (server, _):
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        page.set_input_files("#image-content", str(tmp_path / "content.png"))
        page.set_input_files("#image-styles", str(tmp_path / "style.png"))
        page.wait_for_selector("#start:not([disabled])")
        page.fill("#set-size", "48")
        page.fill("#set-iterations", "150")
        page.fill("#set-scales", "1")
        page.fill("#set-tv_weight", "0.5")
        page.click("#start")
        _watch_preview_change(page, 2)
        page.wait_for_function("() => document.querySelectorAll('#queue li[data-state=running]').length === 1")
        out = _stop_and_download(page, tmp_path, "result.png")
        meta = read_metadata(out)
        x = load_image(out)
        run_id = page.get_attribute("body", "data-run")
        assert out.read_bytes() == (server.folder / "runs" / run_id / "result.png").read_bytes()
        assert page.evaluate("() => document.getElementById('plot').toDataURL()") != ""
        assert page.text_content("#message") == ""
        # continue: the run goes on from where it stopped to the end, and the download is the finished picture
        page.click("#continue")
        page.wait_for_selector("#status[data-state='done']", timeout=240_000)
        with page.expect_download() as info:
            page.click("#download")
        info.value.save_as(tmp_path / "final.png")
        final = read_metadata(tmp_path / "final.png")
    assert x.shape[-2:] == (36, 48)
    assert meta["stylekit"] == __version__ and meta["interrupted_at"] >= 3 and len(meta["settings_sha256"]) == 64
    assert meta["config"]["size"] == 48 and meta["config"]["iterations"] == 150 and meta["config"]["tv_weight"] == 0.5
    assert "interrupted_at" not in final and final["settings_sha256"] == meta["settings_sha256"]


def test_refused_uploads_are_shown_in_the_page(page, tmp_path):
    (tmp_path / "big.png").write_bytes(png_bytes(120, 100))
    (tmp_path / "huge.bin").write_bytes(b"\0" * 300_000)
    from _audio_data import voiceish
    (tmp_path / "long.wav").write_bytes(wav_bytes(voiceish(2.0)))
    with running_server(max_pixels=100 * 100, max_upload_mb=0.2, max_audio_seconds=1.5) as (server, _):
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        page.set_input_files("#image-content", str(tmp_path / "big.png"))
        page.wait_for_function("() => document.getElementById('message').textContent.includes('megapixels')")
        assert "120x100" in page.text_content("#message")
        page.set_input_files("#image-styles", str(tmp_path / "huge.bin"))
        page.wait_for_function("() => document.getElementById('message').textContent.includes('MB')")
        assert page.is_disabled("#start")
        page.click("#tab-audio")
        page.set_input_files("#audio-content", str(tmp_path / "long.wav"))
        page.wait_for_function("() => document.getElementById('message').textContent.includes('s long')")
        assert "2.0 s long" in page.text_content("#message") and "1.5 s" in page.text_content("#message")


def test_sound_play_both_spectrograms_stop_play_and_download(page, tmp_path):
    from _audio_data import textureish, voiceish

    from stylekit.audio.io import read_metadata
    (tmp_path / "voice.wav").write_bytes(wav_bytes(voiceish(1.5)))
    (tmp_path / "texture.wav").write_bytes(wav_bytes(textureish(1.5)))
    with running_server(preview_interval=0) as (server, _):
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        page.click("#tab-audio")
        page.set_input_files("#audio-content", str(tmp_path / "voice.wav"))
        page.set_input_files("#audio-styles", str(tmp_path / "texture.wav"))
        page.wait_for_selector("#start:not([disabled])")
        for which in ("content", "styles"):      # both inputs play and show their spectrogram
            page.wait_for_function(f"() => document.getElementById('audio-{which}-spec').height === 224")
            _plays(page, f"#audio-{which}-player", 1.5)
        page.fill("#set-steps", "400")
        page.click("#start")
        _watch_preview_change(page, 2)
        out = _stop_and_download(page, tmp_path, "result.wav")
        page.wait_for_function("() => document.getElementById('result-spec').height === 224")
        _plays(page, "#result-player", 1.5)
        import soundfile as sf
        y, sr = sf.read(out)
    assert sr == 22050 and len(y) == int(1.5 * 22050)
    meta = read_metadata(out)
    assert meta["config"]["steps"] == 400 and meta["interrupted_at"] >= 3


def _plays(page, selector: str, seconds: float) -> None:
    """The audio element has the sound (its duration) and plays (its clock moves)."""
    page.wait_for_function(f"() => document.querySelector('{selector}').readyState >= 1", timeout=30_000)
    assert abs(page.evaluate(f"() => document.querySelector('{selector}').duration") - seconds) < 0.05
    page.evaluate(f"() => document.querySelector('{selector}').play()")
    page.wait_for_function(f"() => document.querySelector('{selector}').currentTime > 0.05", timeout=30_000)
    page.evaluate(f"() => document.querySelector('{selector}').pause()")
