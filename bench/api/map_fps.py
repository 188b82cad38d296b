"""Frames per second of the dashboard's live map with its largest load (5,000 source x kind points).

Drives Debian's chromium (headless, no GPU) with Playwright against ``iotscope serve`` on the
bench/api store (run bench/api/run.py first). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]
COUNT_FRAMES = """() => new Promise(done => { let n = 0; const t0 = performance.now();
    function f(t) { n++; if (t - t0 < 3000) requestAnimationFrame(f);
                    else done({frames: n, ms: t - t0, points: window.iotscope.map.points.length,
                               particles: window.iotscope.liveMap.particles.length}); }
    requestAnimationFrame(f); })"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=Path("bench/out/api/store"))
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    server = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-m", "iotscope", "serve",
                               "--store", str(args.store), "--port", str(args.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        for _ in range(600):
            try:
                httpx.get(url + "openapi.json", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.select_option("#map-window", "3600")
            page.wait_for_function("window.iotscope && window.iotscope.updates >= 1", timeout=300_000)
            time.sleep(3)
            result = page.evaluate(COUNT_FRAMES)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    result["fps"] = round(result["frames"] / result["ms"] * 1000, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
