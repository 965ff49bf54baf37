"""The page of ``ctrlgen export --web`` in Debian chromium, with onnxruntime-web from the local npm copy.

Both sides draw the latents from the same seeded generator (ctrlgen.webpage.web_inputs
and its copy in ctrlgen.js); the test checks the page's inputs against the Python ones,
then runs ONNX Runtime in Python on them and compares the output and the canvas pixels.
"""

import base64
import io
import json

import numpy as np
import onnx
import pytest
from ui_browser import CHROMIUM, launch
from web_browser import ORT_DIST, ORT_URL, last_run, open_page, serving

from ctrlgen.images import grid, to_uint8
from ctrlgen.models import models_dir
from ctrlgen.runtime import Runtime
from ctrlgen.webpage import web_inputs, write_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium (scripts/install.sh --test does)"),
    pytest.mark.skipif(not (ORT_DIST / "ort.min.js").exists(), reason=f"onnxruntime-web is absent from {ORT_DIST}: scripts/install.sh --test installs it"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def check_against_python(run: dict, rt: Runtime, want_inputs: dict) -> None:
    """The page fed ``want_inputs``; its output and its canvas are ONNX Runtime's within rounding."""
    assert list(run["inputs"]) == list(want_inputs)
    for k, v in want_inputs.items():
        assert np.array_equal(run["inputs"][k], v), k
    ref = rt(**want_inputs)
    assert np.abs(run["output"] - ref).max() < 1e-4
    scale = run["canvas"].shape[0] // grid(to_uint8(ref), run["ncol"]).shape[0]
    assert scale == 3
    shown = run["canvas"][::scale, ::scale, :3].astype(int)
    want = grid(to_uint8(ref), run["ncol"]).astype(int)
    assert shown.shape == (want.shape[0], want.shape[1], 3)
    diff = np.abs(shown - want)  # gray images: R = G = B
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    assert (run["canvas"][..., 3] == 255).all()
    from PIL import Image

    png = Image.open(io.BytesIO(base64.b64decode(run["href"].split(",", 1)[1])))
    assert np.array_equal(np.asarray(png.convert("RGBA")), run["canvas"])  # the download is the canvas


def test_cgan_page_from_url_parameters_then_from_the_controls(browser, tmp_path):
    rt = Runtime.from_file(models_dir() / "fashion-cgan.onnx")
    write_page(rt.source, tmp_path, ort_url=ORT_URL)
    with serving(tmp_path) as url:
        page = open_page(browser, url + "?seed=7&n=20&label=Trouser")
        run = last_run(page)
        assert run["n"] == 20 and run["ncol"] == 5
        check_against_python(run, rt, web_inputs(rt.spec, 20, 7, label="Trouser"))
        labels = page.locator("#controls select").first.locator("option").all_text_contents()
        assert labels[2:] == list(rt.spec.labels)
        # a person: every class, 30 samples, seed 123
        page.locator("#controls select").first.select_option("all")
        page.locator("#controls input[type=number]").nth(0).fill("123")
        page.locator("#controls input[type=number]").nth(1).fill("30")
        page.locator("#generate").click()
        page.wait_for_function("() => window.ctrlgen.last.count === 2")
        run = last_run(page)
        assert run["n"] == 30 and run["ncol"] == 3
        check_against_python(run, rt, web_inputs(rt.spec, 30, 123, label=np.repeat(np.arange(10), 3)))
        assert "seed=123" in page.url and "label=all" in page.url
        page.locator("#controls input[type=number]").nth(1).fill("5000")
        page.locator("#generate").click()
        page.wait_for_function("() => document.getElementById('status').className === 'error'")
        assert "count must be an integer in 1..1024" in page.locator("#status").text_content()


def test_infogan_page_with_fixed_codes(browser, tmp_path):
    rt = Runtime.from_file(models_dir() / "fashion-infogan.onnx")
    (cat,), conts = rt.spec.categorical, rt.spec.continuous
    write_page(rt.source, tmp_path, ort_url="ort/ort.min.js")  # relative, as when ORT's dist/ is copied beside the page
    with serving(tmp_path) as url:
        page = open_page(browser, url + f"?seed=11&n=16&cat.{cat.name}=3&cont.{conts[0].name}=0.5")
        run = last_run(page)
        check_against_python(run, rt, web_inputs(rt.spec, 16, 11, cat={cat.name: 3}, cont={conts[0].name: 0.5}))
        fields = page.locator("#controls label").all_text_contents()
        assert fields[0].startswith(f"{cat.name} (categorical)") and fields[1].startswith(f"{conts[0].name} [{conts[0].low:g}, ")


def test_names_from_the_file_are_shown_as_text(browser, tmp_path):
    model = onnx.load(str(models_dir() / "fashion-cgan.onnx"))
    evil = '<img src=x onerror="window.pwned=1">T-shirt'
    for p in model.metadata_props:
        if p.key == "ctrlgen.spec":
            spec = json.loads(p.value)
            spec["labels"][0] = evil
            p.value = json.dumps(spec)
        if p.key == "ctrlgen.card":
            card = json.loads(p.value)
            card["name"] = "<b>bold</b>"
            p.value = json.dumps(card)
    onnx.save(model, str(tmp_path / "odd.onnx"))
    write_page(tmp_path / "odd.onnx", tmp_path / "page", ort_url=ORT_URL)
    with serving(tmp_path / "page") as url:
        page = open_page(browser, url)
        assert page.locator("#controls select option").nth(2).text_content() == evil
        assert page.locator("#title").text_content() == "<b>bold</b>"
        assert page.locator("img").count() == 0 and page.locator("b").count() == 0
        assert page.evaluate("() => window.pwned") is None
