"""Serve a page written by ``ctrlgen export --web`` on 127.0.0.1 and drive it in Debian chromium.

Used by ``test_webpage_browser.py`` and ``scripts/compat_table.py``.  The page's
onnxruntime-web comes from the local npm copy that ``scripts/install.sh --test``
puts in ``.web-deps/`` (served under ``/ort/``), never from the network.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORT_DIST = ROOT / ".web-deps" / "node_modules" / "onnxruntime-web" / "dist"
ORT_URL = "/ort/ort.min.js"  # the --ort-url a page gets when served by `serving`


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

    def translate_path(self, path: str) -> str:
        if path.startswith("/ort/"):
            return str(ORT_DIST / Path(path.split("?", 1)[0][len("/ort/"):]).name)
        return super().translate_path(path)

    def log_message(self, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT/`` serving ``folder`` (and onnxruntime-web under /ort/) on a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def open_page(browser, url: str, timeout: float = 60):
    """A new tab on ``url`` once the model is loaded and its first grid drawn; raises with the page's message otherwise."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="domcontentloaded")
    try:
        page.wait_for_function("() => window.ctrlgen && (window.ctrlgen.last || document.querySelector('#status.error'))",
                               timeout=timeout * 1000)
    except Exception as e:
        raise RuntimeError(f"page did not load: {page.locator('#status').text_content()} {errors}") from e
    if not page.evaluate("() => !!window.ctrlgen.last"):
        raise RuntimeError(f"page error: {page.locator('#status').text_content()} {errors}")
    return page


def last_run(page) -> dict:
    """The inputs (numpy, by name) and output of the page's last generation, and its canvas as (H, W, 4) uint8."""
    got = page.evaluate("""() => {
        const l = window.ctrlgen.last, c = document.getElementById('grid');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return {count: l.count, n: l.request.n, ncol: l.request.ncol, dims: Array.from(l.dims), output: Array.from(l.output),
                inputs: Object.fromEntries(Object.entries(l.inputs).map(([k, v]) => [k, Array.from(v)])),
                width: c.width, height: c.height, pixels: Array.from(px), href: document.getElementById('download').href};
    }""")
    n = got["n"]
    inputs = {k: np.asarray(v, np.int64 if k in ("label", "code_cat") else np.float32) for k, v in got["inputs"].items()}
    inputs = {k: v.reshape(n, -1) if k != "label" else v for k, v in inputs.items()}
    got["inputs"] = inputs
    got["output"] = np.asarray(got["output"], np.float32).reshape(got["dims"])
    got["canvas"] = np.asarray(got.pop("pixels"), np.uint8).reshape(got["height"], got["width"], 4)
    return got


def generate(page, n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Call the page's ``ctrlgen.generate`` (random labels and codes from ``seed``): (inputs, output)."""
    got = page.evaluate("req => window.ctrlgen.generate(req)", {"n": n, "seed": seed})
    inputs = {k: np.asarray(v, np.int64 if k in ("label", "code_cat") else np.float32) for k, v in got["inputs"].items()}
    inputs = {k: v.reshape(n, -1) if k != "label" else v for k, v in inputs.items()}
    return inputs, np.asarray(got["output"], np.float32).reshape(got["dims"])
