"""Drive the web UI in a real browser: Debian chromium through playwright (never a downloaded browser).

Used by ``test_ui_browser.py``, and run directly it makes the README's screenshots:

    .venv/bin/python tests/ui_browser.py fashion-cgan fashion-infogan grid25 --out docs/img

which serves the given models on 127.0.0.1, opens the page, changes the
truncation slider and the label, clicks Generate, picks and pins a sample,
runs a sweep, shows a 2D model's density view and a 16-step sweep on a
phone-sized screen, and saves small PNG screenshots.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: no background fetches, no component updates, no first-run work.
ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1200, "height": 860}
TIMEOUT = float(os.environ.get("CTRLGEN_UI_TIMEOUT", "60"))  # seconds a page gets for each step
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def launch(p):
    args = ARGS + (["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
    return p.chromium.launch(executable_path=str(CHROMIUM), args=args)


def idle(page, elem: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``elem``'s progress tracker is hidden (its request finished)."""
    page.wait_for_function(
        "sel => { const t = document.querySelector(sel + ' [data-testid=status-tracker]'); return t && t.classList.contains('hide'); }",
        arg=elem, timeout=timeout * 1000,
    )


def image(page, elem: str, previous: str | None = None, timeout: float = TIMEOUT) -> tuple[str, np.ndarray]:
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


def open_page(browser, url: str, query: str = "", phone: bool = False):
    """A new page at ``url?query`` once its first picture is there; returns (page, src of that picture)."""
    page = browser.new_page(**(PHONE if phone else {"viewport": VIEWPORT}))
    page.set_default_timeout(TIMEOUT * 1000)
    page.goto(url + (f"?{query}" if query else ""), wait_until="domcontentloaded")
    src, _ = image(page, "#gen-image", timeout=max(TIMEOUT, 90))
    return page, src


def fetch(page, src: str) -> bytes:
    return page.request.get(src).body()


def gif_frames(data: bytes) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]


def text(page, elem: str) -> str:
    loc = page.locator(elem)
    return loc.inner_text() if loc.count() and loc.is_visible() else ""


def wait_text(page, elem: str, fragment: str, timeout: float = TIMEOUT) -> str:
    """The text of ``elem`` once it holds ``fragment``."""
    page.wait_for_function(
        "([sel, frag]) => { const e = document.querySelector(sel); return e && e.innerText.includes(frag); }",
        arg=[elem, fragment], timeout=timeout * 1000,
    )
    return page.locator(elem).inner_text()


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


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


def drive(url: str, out: Path, label: str = "Trouser", truncation: str = "0.6", browser=None, points: str | None = None,
          phone_query: str = "") -> dict:
    """Open the page, change the truncation slider and the label, click a sample and pin it; then sweep the labels
    (the pinned sample is the first row); with ``points``, that 2D model's density view; a phone-sized sweep of
    the view ``phone_query`` (URL settings).

    Returns the pictures before and after (numpy) and the screenshot paths (ui-generate, ui-sweep, ui-density, ui-phone)."""
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = launch(stack.enter_context(sync_playwright()))
            stack.callback(browser.close)
        page, src = open_page(browser, url)
        before = image(page, "#gen-image")[1]
        page.locator("#truncation input[type=range]").fill(truncation)
        choose(page, "#label", label)
        page.locator("#generate").click()
        _, after = image(page, "#gen-image", previous=src)
        box = page.locator("#gen-image img").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
        wait_text(page, "#picked", "of seed")
        page.locator("#pin").click()
        wait_text(page, "#pinned", "Pinned")
        shots = {"generate": out / "ui-generate.png"}
        small_png(page.screenshot(full_page=True), shots["generate"])
        tab(page, "Sweep")
        page.locator("#sweep").click()
        image(page, "#sweep-image")
        shots["sweep"] = out / "ui-sweep.png"
        small_png(page.screenshot(full_page=True), shots["sweep"])
        page.close()
        if points:
            page, _ = open_page(browser, url, f"model={points}")
            shots["density"] = out / "ui-density.png"
            small_png(page.screenshot(full_page=True), shots["density"])
            page.close()
        page, _ = open_page(browser, url, phone_query, phone=True)
        tab(page, "Sweep")
        page.locator("#sweep").click()
        image(page, "#sweep-image")
        page.locator("#sweep-image").scroll_into_view_if_needed()
        shots["phone"] = out / "ui-phone.png"
        small_png(page.screenshot(), shots["phone"])
        page.close()
        return {"before": before, "after": after, "screenshots": shots}


def main() -> None:
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ui_server import serving

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    with serving(args.models) as (ex, url):
        names = ex.registry.names
        res = drive(url, args.out, points=next((m for m in ("grid25", "ring8") if m in names), None),
                    phone_query="model=fashion-infogan&factor=u0&steps=16" if "fashion-infogan" in names else "")
    for path in res["screenshots"].values():
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
