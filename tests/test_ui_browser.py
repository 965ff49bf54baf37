"""The web UI in a real browser: Debian chromium driven by playwright, at desktop and phone sizes.

One server and one browser for the module (the shipped models, a model with
many codes and one whose file holds markup in its names); each test opens
its own page.  Each test is one of issue 20's defects or features, and
fails on the UI before it.
"""

import io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from ui_browser import (
    CHROMIUM,
    choose,
    drive,
    fetch,
    gif_frames,
    idle,
    image,
    launch,
    open_page,
    tab,
    text,
    wait_text,
)

from ctrlgen.data import FASHION_MNIST_DIR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),  # gradio's queue vs pandas 3, not ours
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium (scripts/install.sh --test does)"),
]
SHIPPED = ["fashion-cgan", "fashion-cgan-int8", "fashion-infogan", "ring8", "grid25"]
EVIL_LABEL = "<img src=x onerror=window.pwned=1>"


def untrusted_model(path):
    """fashion-cgan with markup in its label names and card: must show as text."""
    import onnx

    from ctrlgen.models import resolve_model
    from ctrlgen.spec import CARD_KEY, SPEC_KEY

    m = onnx.load(str(resolve_model("fashion-cgan")))
    props = {p.key: p for p in m.metadata_props}
    spec = json.loads(props[SPEC_KEY].value)
    spec["labels"] = [EVIL_LABEL, "**bold**", "[link](http://example.com/x)", *spec["labels"][3:]]
    props[SPEC_KEY].value = json.dumps(spec)
    card = json.loads(props[CARD_KEY].value)
    card["recipe"] = "<b>recipe</b><script>window.pwned=2</script>"
    props[CARD_KEY].value = json.dumps(card)
    onnx.save(m, str(path))
    return path


def many_codes_model(root):
    """A tiny InfoGAN with 5 categorical and 9 continuous codes (more than the old fixed controls)."""
    from conftest import train_tiny
    from ctrlgen.export import export

    train_tiny("fashion-infogan", root / "run", 2, "categorical=[3,3,3,3,3]", "continuous=9")
    export(root / "run", root / "many.onnx")
    return root / "many.onnx"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    from ui_server import serving

    from ctrlgen.models import resolve_model

    root = tmp_path_factory.mktemp("ui-models")
    models = [resolve_model(m) for m in SHIPPED] + [untrusted_model(root / "untrusted.onnx")]
    if FASHION_MNIST_DIR.is_dir():
        models.append(many_codes_model(root))
    with serving(models) as (ex, url), sync_playwright() as p:
        browser = launch(p)
        try:
            yield ex, url, browser
        finally:
            browser.close()


def pixels(page, src):
    return np.asarray(Image.open(io.BytesIO(fetch(page, src))))


def same_picture(shown, want):
    return np.array_equal(shown.reshape(want.shape), want)


# --------------------------------------------------------------------------- defects 1-11
def test_default_sweep_and_compare_work_with_label_all(site):
    """1: the default label "all" with the default factor "label" sweeps; Compare with "all" is a column per class."""
    ex, url, browser = site
    page, _ = open_page(browser, url)
    assert "model=fashion-cgan" in page.url and "label=all" in page.url  # the default model, its default label
    tab(page, "Sweep")
    page.locator("#sweep").click()
    _, shown = image(page, "#sweep-image")
    assert same_picture(shown, ex.sweep("fashion-cgan", "label", 8, 4, 0, "all")[0])
    assert "across: label" in text(page, "#sweep-note") and not text(page, "#msg")
    tab(page, "Compare")
    page.locator("#compare").click()
    src, a = image(page, "#cmp-a")
    assert same_picture(a, ex.generate("fashion-cgan", 40, 0, "all")[0])  # a column per class, as Generate shows
    page.close()


def test_interpolate_follows_the_label_control(site):
    """2: label Bag in the sidebar and an empty walk-label list: the walk is of bags."""
    ex, url, browser = site
    page, _ = open_page(browser, url, "label=Bag&frames=6&keyframes=2&fps=5")
    tab(page, "Interpolate")
    page.locator("#interpolate").click()
    src, _ = image(page, "#walk-gif")
    shown = gif_frames(fetch(page, src))
    path, note = ex.interpolate("fashion-cgan", 6, 2, 0, "", label="Bag", fps=5)
    want = gif_frames(path.read_bytes())
    assert len(shown) == 6 and all(np.array_equal(a, b) for a, b in zip(shown, want, strict=True))
    assert "label Bag" in text(page, "#walk-note")
    assert Image.open(io.BytesIO(fetch(page, src))).info["duration"] == 200  # 5 frames a second
    page.close()


def test_2d_models_show_thousands_of_points_with_axes(site):
    """3: a 2D model: 5,000 points by default (the slider goes to the API's 20,000), a points + density view."""
    ex, url, browser = site
    page, src = open_page(browser, url, "model=ring8")
    _, shown = image(page, "#gen-image")
    assert shown.shape[:2] == (480, 960)  # two panels with axes, not a 512 x 512 scatter
    assert page.locator("#n input[type=range]").get_attribute("max") == str(ex.limits.max_points)
    assert page.locator("#n input[type=range]").input_value() == "5000"
    assert "5000 points from ring8" in text(page, "#gen-note")
    blue = (shown[..., 2] > 150) & (shown[..., 0] < 120)
    assert blue.sum() > 300, "the points are too few or too small to see"
    page.close()


def test_an_error_keeps_the_last_result_and_names_the_field(site):
    """4: a bad seed or code: one line naming it; the picture, its note and its downloads stay."""
    ex, url, browser = site
    page, src = open_page(browser, url, "model=fashion-infogan")
    note = text(page, "#gen-note")
    page.locator("#codes input").fill("u0=7")
    page.locator("#codes input").press("Enter")
    assert "u0" in wait_text(page, "#msg", "outside its range")
    page.locator("#seed input").fill("-3")
    assert "seed = -3 is below 0" in wait_text(page, "#msg", "seed =")
    assert page.locator("#gen-image img").get_attribute("src") == src and page.locator("#gen-image img").is_visible()
    assert text(page, "#gen-note") == note and "seed 0" in note
    assert page.locator("#gen-image .error, #gen-image [data-testid=status-tracker] .error").count() == 0
    page.locator("#codes input").fill("u0=0.5")
    page.locator("#seed input").fill("2")
    _, shown = image(page, "#gen-image", previous=src)
    assert same_picture(shown, ex.generate("fashion-infogan", 40, 2, "random", 0, codes="u0=0.5")[0])
    assert not text(page, "#msg")
    page.close()


def test_no_share_button_and_local_only(site):
    """5: no component offers gradio's Share (an upload to an outside host); analytics off, 127.0.0.1 only."""
    ex, url, browser = site
    assert url.startswith("http://127.0.0.1:") and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    page, _ = open_page(browser, url)
    shares = page.locator("button[aria-label*=hare i], button[title*=hare i], [data-testid*=share i]")
    assert shares.count() == 0  # the Generate picture, before anything else
    for name, button, elem in [("Sweep", "#sweep", "#sweep-image"), ("Compare", "#compare", "#cmp-a")]:
        tab(page, name)
        page.locator(button).click()
        image(page, elem)
    shares = page.locator("button[aria-label*=hare i], button[title*=hare i], [data-testid*=share i]")
    assert shares.count() == 0
    toolbar = ", ".join(f"{e} button:not(:has(img))" for e in ("#gen-image", "#sweep-image", "#cmp-a"))
    assert page.locator(toolbar).count() == 0  # no toolbar over the pictures
    page.close()


def test_model_switch_clears_stale_results_and_useless_controls(site):
    """6: switching models clears the other tabs' pictures; no sweep for 2D models, no "animate" without codes."""
    ex, url, browser = site
    page, src = open_page(browser, url, "model=fashion-infogan")
    tab(page, "Sweep")
    page.locator("#sweep").click()
    image(page, "#sweep-image")
    choose(page, "#model", "grid25")
    image(page, "#gen-image", previous=src)
    assert page.locator("#sweep-image img").count() == 0
    assert page.locator("#sweep").is_disabled() and "need an image model" in text(page, "#sweep-off")
    tab(page, "Interpolate")
    assert not page.locator("#animate").is_visible()
    tab(page, "Compare")
    assert page.locator("#model-b input").input_value().startswith("ring8")  # points with points
    choose(page, "#model", "fashion-cgan")
    wait_text(page, "#gen-note", "from fashion-cgan")
    assert page.locator("#model-b input").input_value().startswith("fashion-cgan-int8")
    tab(page, "Interpolate")
    assert not page.locator("#animate").is_visible()  # fashion-cgan has no continuous code
    page.close()


def test_sweep_captions_fit_on_a_phone(site, tmp_path):
    """7: a 16-step sweep on a phone: whole captions at a readable size, no toolbar over them."""
    ex, url, browser = site
    page, _ = open_page(browser, url, "model=fashion-infogan&factor=u0&steps=16", phone=True)
    tab(page, "Sweep")
    page.locator("#sweep").click()
    _, shown = image(page, "#sweep-image")
    img, _, note = ex.sweep("fashion-infogan", "u0", 16, 4, 0, "random", codes="u0=0 u1=0")
    assert same_picture(shown, img) and shown.shape[1] >= 16 * 60  # cells of 60 px for "+0.47" at 14 px
    assert page.locator("#sweep-image button:not(:has(img))").count() == 0
    box = page.locator("#sweep-image img").bounding_box()
    assert box["width"] >= 0.95 * shown.shape[1]  # at its pixel size (14 px captions), not shrunk to 390 px
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 392  # the picture scrolls sideways, not the page
    page.locator("#sweep-image").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "phone.png"))
    page.close()


def test_model_card_is_readable_tables(site):
    """8: the card: tables, metrics with their real-data values, int8 named, no local paths, no JSON."""
    ex, url, browser = site
    page, _ = open_page(browser, url, "model=fashion-cgan-int8")
    tab(page, "Model card")
    card = wait_text(page, "#card", "precision")
    assert "int8" in card and "fp32 → int8" in card and "conditional_accuracy" in card
    assert page.locator("#card table").count() >= 4
    assert "{" not in card and "/usr/share" not in card and "/work/" not in card
    page.close()


def test_new_seed_random_codes_and_the_same_settings_hint(site):
    """9: a new-seed button, random codes, and a hint when Generate redraws the same samples."""
    ex, url, browser = site
    page, src = open_page(browser, url, "model=fashion-infogan")
    page.locator("#generate").click()
    assert "Same settings, same samples" in wait_text(page, "#gen-note", "Same settings")
    page.locator("#new-seed").click()
    src2, shown = image(page, "#gen-image", previous=src)
    seed = int(page.locator("#seed input").input_value())
    assert seed != 0 and same_picture(shown, ex.generate("fashion-infogan", 40, seed, "random", 0, codes="u0=0 u1=0")[0])
    page.locator("#random-codes").click()
    src3, shown = image(page, "#gen-image", previous=src2)
    codes = page.locator("#codes input").input_value()
    assert re.fullmatch(r"c=\d u0=-?\d\.\d\d u1=-?\d\.\d\d", codes), codes
    u0 = float(codes.split("u0=")[1].split()[0])
    page.wait_for_function("v => Math.abs(parseFloat(document.querySelector('#code-u0 input[type=range]').value) - v) < 0.011", arg=u0)
    assert same_picture(shown, ex.generate("fashion-infogan", 40, seed, "random", 0, codes=codes)[0])
    page.close()


def test_any_number_of_codes_gets_controls(site):
    """11: five categorical and nine continuous codes: a control each, and the last one works."""
    ex, url, browser = site
    if "many" not in ex.registry.names:
        pytest.skip("Fashion-MNIST missing: the many-codes model is trained on it")
    page, src = open_page(browser, url, "model=many")
    assert all(page.locator(f"#code-{c}").count() == 1 for c in [*(f"c{i}" for i in range(5)), *(f"u{i}" for i in range(9))])
    page.locator("#code-u8 input[type=range]").fill("0.5")
    page.wait_for_function("() => location.search.includes('u8%3D0.5')")  # the picture may not change: an untrained model
    idle(page, "#gen-image")
    shown = pixels(page, page.locator("#gen-image img").get_attribute("src"))
    codes = page.locator("#codes input").input_value()
    assert "u8=0.5" in codes and same_picture(shown, ex.generate("many", 40, 0, "random", 0, codes=codes)[0])
    page.close()


# --------------------------------------------------------------------------- features
def test_click_a_sample_pin_it_and_sweep_from_it(site):
    """Click a sample: its seed, index, label and z; pin it: the sweep's first row is that sample."""
    ex, url, browser = site
    page, src = open_page(browser, url, "label=Trouser&seed=4")
    box = page.locator("#gen-image img").bounding_box()
    natural = page.evaluate("() => { const i = document.querySelector('#gen-image img'); return [i.naturalWidth, i.naturalHeight]; }")
    x, y = box["width"] * 0.45, box["height"] * 0.3  # a sample in the middle of the second row
    page.mouse.click(box["x"] + x, box["y"] + y)
    picked = wait_text(page, "#picked", "of seed 4")
    shape = (natural[1], natural[0])
    want = ex.pick("fashion-cgan", 40, 4, "Trouser", 0, "", x * natural[0] / box["width"], y * natural[1] / box["height"], shape)
    assert f"sample {want['index']} of seed 4" in picked and "label Trouser" in picked and "z = [" in picked
    page.locator("#pin").click()
    wait_text(page, "#pinned", f"sample {want['index']} of seed 4")
    tab(page, "Sweep")
    page.locator("#sweep").click()
    _, shown = image(page, "#sweep-image")
    assert same_picture(shown, ex.sweep("fashion-cgan", "label", 8, 4, 4, "Trouser", pin=want)[0])
    assert "pinned sample" in text(page, "#sweep-note")
    page.close()


def test_settings_live_in_the_url_and_the_picker_describes_models(site):
    """A link carries the view: model, seed, codes; the model picker says what each model is."""
    ex, url, browser = site
    page, src = open_page(browser, url, "model=fashion-infogan&seed=7&codes=c%3D3%20u0%3D0.5&n=12")
    assert page.locator("#codes input").input_value() == "c=3 u0=0.5"
    assert page.locator("#code-c input").input_value() == "3"
    _, shown = image(page, "#gen-image")
    assert same_picture(shown, ex.generate("fashion-infogan", 12, 7, "random", 0, codes="c=3 u0=0.5")[0])
    page.locator("#seed input").fill("9")
    image(page, "#gen-image", previous=src)
    page.wait_for_function("() => location.search.includes('seed=9')")
    assert "codes=c%3D3+u0%3D0.5" in page.url and "model=fashion-infogan" in page.url
    page.locator("#model input").click()
    options = page.locator("ul[role=listbox] li").all_inner_texts()
    assert any("fashion-cgan" in o and "10 classes" in o for o in options)
    assert any("grid25" in o and "2D points" in o for o in options)
    page.close()


def test_untrusted_names_show_as_text(site):
    """Label names and card fields from a model file are text: no element, no script, no link from them."""
    ex, url, browser = site
    page, _ = open_page(browser, url, "model=untrusted")
    page.locator("#label input").click()
    options = page.locator("ul[role=listbox] li").all_inner_texts()
    assert any(EVIL_LABEL in o for o in options) and any("[link](http://example.com/x)" in o for o in options)
    page.keyboard.press("Escape")
    tab(page, "Model card")
    card = wait_text(page, "#card", "recipe")
    assert EVIL_LABEL in card and "<b>recipe</b>" in card and "**bold**" in card
    assert page.locator("#card img, #card b, #card script, #card a, #card strong").count() == 0
    assert page.evaluate("() => window.pwned") is None
    page.close()


def test_walks_count_and_screenshots(site, tmp_path):
    """Walks and frame rate for Interpolate; then the README's screenshots (CTRLGEN_UI_SHOTS=docs/img keeps them)."""
    ex, url, browser = site
    page, _ = open_page(browser, url, "label=all&walks=4&frames=4&keyframes=2&fps=20")
    tab(page, "Interpolate")
    page.locator("#interpolate").click()
    src, _ = image(page, "#walk-gif")
    data = fetch(page, src)
    path, note = ex.interpolate("fashion-cgan", 4, 2, 0, "", fps=20, walks=4, label="all")
    assert all(np.array_equal(a, b) for a, b in zip(gif_frames(data), gif_frames(path.read_bytes()), strict=True))
    assert Image.open(io.BytesIO(data)).info["duration"] == 50 and "4 walks" in text(page, "#walk-note")
    page.close()
    out = tmp_path if not os.environ.get("CTRLGEN_UI_SHOTS") else __import__("pathlib").Path(os.environ["CTRLGEN_UI_SHOTS"])
    res = drive(url, out, browser=browser, points="grid25", phone_query="model=fashion-infogan&factor=u0&steps=16")
    changed = np.mean(res["before"][:100, :100] != res["after"][:100, :100])
    assert changed > 0.05 and same_picture(res["after"], ex.generate("fashion-cgan", 40, 0, "Trouser", 0.6)[0])
    for shot in res["screenshots"].values():
        assert shot.stat().st_size > 5_000
