"""Drive the web UI in a real browser: Debian chromium through playwright (never a downloaded browser).

Used by ``test_ui_browser.py``, and run directly it makes the README's screenshots:

    .venv/bin/python tests/ui_browser.py models/fashion-cgan.onnx --out docs/img

which serves the given models on 127.0.0.1, opens the page, changes the
truncation slider and the label, clicks Generate, runs a sweep, and saves
small PNG screenshots.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: no background fetches, no component updates, no first-run work.
ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1200, "height": 860}


def launch(p):
    args = ARGS + (["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
    return p.chromium.launch(executable_path=str(CHROMIUM), args=args)


def idle(page, elem: str, timeout: float = 60) -> None:
    """Wait until ``elem``'s progress tracker is hidden (its request finished)."""
    page.wait_for_function(
        "sel => { const t = document.querySelector(sel + ' [data-testid=status-tracker]'); return t && t.classList.contains('hide'); }",
        arg=elem, timeout=timeout * 1000,
    )


def image(page, elem: str, previous: str | None = None, timeout: float = 60) -> tuple[str, np.ndarray]:
    """(src, pixels) of the picture in ``elem`` once it differs from ``previous`` and has settled."""
    from PIL import Image

    deadline = time.monotonic() + timeout
    src, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = page.locator(f"{elem} img").first.get_attribute("src") if page.locator(f"{elem} img").count() else None
        if now != src:
            src, stable_since = now, time.monotonic()
        elif src and src != previous and time.monotonic() - stable_since > 1.5:
            idle(page, elem, timeout)
            body = page.request.get(src).body()
            return src, np.asarray(Image.open(io.BytesIO(body)))
        time.sleep(0.25)
    raise TimeoutError(f"no new picture in {elem} within {timeout} s (last src {src})")


def choose(page, elem: str, option: str) -> None:
    """Pick ``option`` in the dropdown ``elem`` the way a person does: open it, click the entry."""
    page.locator(f"{elem} input").click()
    page.locator("ul[role=listbox] li", has_text=option).first.click()


def small_png(png: bytes, path: Path) -> None:
    """A screenshot as an adaptive-palette PNG (a fraction of the size, same look)."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, optimize=True)


def drive(url: str, out: Path, label: str = "Trouser", truncation: str = "0.6") -> dict:
    """Open the page, change the truncation slider and the label, click Generate; then sweep the labels.

    Returns the pictures before and after (numpy) and the screenshot paths."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url, wait_until="domcontentloaded")
            src, before = image(page, "#gen-image", timeout=90)
            page.locator("#truncation input[type=range]").fill(truncation)
            choose(page, "#label", label)
            page.locator("#generate").click()
            _, after = image(page, "#gen-image", previous=src)
            shots = {"generate": out / "ui-generate.png"}
            small_png(page.screenshot(full_page=True), shots["generate"])
            page.get_by_role("tab", name="Sweep").click()
            page.locator("#sweep").click()
            image(page, "#sweep-image")
            shots["sweep"] = out / "ui-sweep.png"
            small_png(page.screenshot(full_page=True), shots["sweep"])
            return {"before": before, "after": after, "screenshots": shots}
        finally:
            browser.close()


def main() -> None:
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ui_server import serving

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    with serving(args.models) as (_, url):
        res = drive(url, args.out)
    for path in res["screenshots"].values():
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
