#!/usr/bin/env python3
"""Take docs/serve/screenshot.png: the page of ``stylekit serve`` during a run, in Chromium driven by Playwright.

    python docs/serve/make_screenshot.py            # needs the serve extra, playwright and Debian's chromium

The bundled cat photo after The Starry Night at 256 px; the picture is taken once the run has sent twenty
snapshots, then the run is stopped and the server ends (its private folder is removed).
"""
from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "screenshot.png"


def main() -> None:
    from playwright.sync_api import sync_playwright

    from stylekit.serve.config import ServeConfig
    from stylekit.serve.server import Server, bind

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs chromium (apt-get install chromium)")
    config = ServeConfig(port=0)
    server = Server(config, bind("127.0.0.1", 0), fast_kernels=True)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']")
            page.set_input_files("#image-content", str(ROOT / "examples/images/chelsea.png"))
            page.set_input_files("#image-styles", str(ROOT / "examples/images/starry_night.jpg"))
            page.wait_for_selector("#start:not([disabled])")
            page.fill("#set-size", "256")
            page.fill("#set-iterations", "200")
            page.fill("#set-scales", "1")
            page.click("#start")
            page.wait_for_function("() => Number(document.getElementById('preview').dataset.frames) >= 20",
                                   timeout=600_000)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(OUT), full_page=True)
            page.click("#stop")
            page.wait_for_selector("#status[data-state='stopped']", timeout=120_000)
            browser.close()
    finally:
        server.exit()
        thread.join(60)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
