"""The UI's request handling without the web: limits, value checks, the file store, models by name only."""

import numpy as np
import pytest

from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.ui_backend import Explorer, Limits, OutputStore, Registry, as_int, as_truncation, fit_scale


def test_value_checks_and_limits():
    assert as_int(3.0, "n", 1, 5) == 3 and as_int("4", "n", 1, 5) == 4
    for bad, msg in [(6, "over the limit of 5"), (0, "below 1"), (2.5, "must be an integer"), ("x", "must be an integer"), (float("nan"), "integer")]:
        with pytest.raises(CtrlgenError, match=msg):
            as_int(bad, "n", 1, 5)
    assert as_truncation(0) is None and as_truncation("") is None and as_truncation(0.5) == 0.5
    with pytest.raises(CtrlgenError, match="truncation must be in"):
        as_truncation(float("inf"))
    with pytest.raises(CtrlgenError, match="max-samples must be a positive integer"):
        Limits(max_samples=0)
    assert fit_scale((100, 50), max_side=2048) == 5 and fit_scale((100, 50), max_side=300) == 3
    with pytest.raises(CtrlgenError, match="over the limit of 64"):
        fit_scale((100, 50), max_side=64)


def test_store_keeps_only_the_newest_files():
    store = OutputStore(max_files=3)
    try:
        paths = [store.write("a.png", bytes([i])) for i in range(5)]
        assert [p.exists() for p in paths] == [False, False, True, True, True]
        assert paths[-1].read_bytes() == b"\x04" and paths[-1].is_relative_to(store.root)
    finally:
        store.cleanup()
    assert not store.root.exists()


def test_models_are_named_not_pathed_and_loaded_on_first_use(tiny_models, tmp_path):
    reg = Registry([tiny_models["ring8"], tiny_models["ring8"]])
    assert reg.names == ["ring8"] and not reg._loaded
    with pytest.raises(CtrlgenError, match="is not served here; choose one of: ring8"):
        reg.get(str(tiny_models["ring8"]))
    with pytest.raises(CtrlgenError, match="does not exist"):
        Registry([tmp_path / "missing.onnx"])
    ex = Explorer(reg, Limits(max_points=100))
    try:
        img, png, npz, note = ex.generate("ring8", 100, seed=1)
        assert img.shape == (480, 960, 3) and png.exists() and np.load(npz)["sample"].shape == (100, 2)  # points | density
        with pytest.raises(CtrlgenError, match="over the limit of 100"):
            ex.generate("ring8", 101)
    finally:
        ex.store.cleanup()


def test_card_text_is_escaped_and_has_no_local_paths():
    from ctrlgen.serve.ui_card import card_markdown, md_text

    assert md_text("<img src=x>") == "\\<img src\\=x\\>" and md_text("[a](http://b)") == "\\[a\\]\\(http\\://b\\)"
    assert md_text("a\nb | c") == "a b \\| c"  # one line, no cell break
    sections = {"training": [("data", "fashion-mnist (n 60000)")], "metrics": [("fd", "0.74", "0.09", "lower")], "int8": []}
    md = card_markdown(sections)
    assert "| metric | value | real data | better |" in md and "int8" not in md  # empty sections are left out


def test_ui_card_rows_from_a_card():
    from ctrlgen.serve.ui_card import card_rows
    from ctrlgen.spec import LatentSpec

    spec = LatentSpec(noise_dim=4, noise="normal", output_kind="image", output_shape=(1, 28, 28), labels=("a", "b"))
    card = {"recipe": "r", "data": {"name": "fashion-mnist", "n": 60000, "source": "/usr/share/datasets/x"}, "precision": "int8",
            "metrics": {"fd": {"value": 0.74, "real": 0.09, "higher_is_better": False}}, "techniques": {"ema": {"decay": 0.999}},
            "quality_check": {"fp32": {"fd": 0.98}, "reduced": {"fd": 0.74}}}
    rows = card_rows("m", "m.onnx", "onnxruntime", spec, card)
    flat = " ".join(" ".join(r) for sec in rows.values() for r in sec)
    assert "/usr/share" not in flat and "fashion-mnist (n 60000)" in flat and "ema (decay 0.999)" in flat
    assert ("fd", "0.74", "0.09", "lower") in rows["metrics"] and ("fd: fp32 → int8", "0.98 → 0.74") in rows["int8"]
    assert any("int8" in v for _, v in rows["model"])


def test_sweep_captions_fit_their_cells(tiny_models):
    from PIL import ImageFont

    ex = Explorer(Registry([tiny_models["ring8"]]))
    try:
        font = ImageFont.load_default(size=14)
        labels = ("T-shirt/top", "Trouser", "Ankle boot")
        scale, size, transpose = ex._caption_layout(labels, 4, 10, 28, 28, may_transpose=True)
        assert size == 14 and (transpose or 30 * scale >= font.getlength("T-shirt/top") + 8)
        titles = tuple(f"{v:+.2f}" for v in np.linspace(-1, 1, 16))
        scale, size, transpose = ex._caption_layout(titles, 4, 16, 28, 28, may_transpose=False)
        assert not transpose and 30 * scale >= font.getlength("+0.47") + 8 and 16 * 30 * scale <= 2048
    finally:
        ex.store.cleanup()


def test_density_view_and_url_settings():
    from ctrlgen.serve.app import codes_text, default_codes, url_settings
    from ctrlgen.serve.ui_density import density_view
    from ctrlgen.spec import CategoricalCode, ContinuousCode, LatentSpec

    img = density_view(np.random.default_rng(0).normal(size=(3000, 2)), np.zeros((1, 2)))
    assert img.shape == (480, 960, 3) and img.dtype == np.uint8
    assert url_settings({"seed": "7", "n": "1e2", "codes": "c=3", "truncation": "nan", "evil": "x", "model": "m"}) == \
        {"seed": 7, "n": 100, "codes": "c=3", "model": "m"}
    spec = LatentSpec(noise_dim=4, noise="normal", output_kind="image", output_shape=(1, 8, 8),
                      categorical=(CategoricalCode("c", 3),), continuous=(ContinuousCode("w", 0.0, 2.0),))
    assert default_codes(spec) == "w=1" and codes_text(spec, ["random", 0.5]) == "w=0.5" and codes_text(spec, ["2", 1]) == "c=2 w=1"


def test_a_links_choice_values_must_be_among_the_choices(tiny_models):
    """A shared link's label, sweep factor and comparison model go into dropdowns: a value that is not one of
    their choices is dropped for the default (gradio refused it with a toast that rendered it as HTML)."""
    from ctrlgen.serve.app import model_updates

    ex = Explorer(Registry([tiny_models["ring8"]]))
    name = ex.registry.names[0]
    hostile = '<a id="lnk" href="https://example.org/x">click-me</a>'
    ups = model_updates(ex, name, {"label": hostile, "factor": hostile, "model_b": hostile})
    values = [u.get("value") for u in ups if isinstance(u, dict)]
    assert not any(isinstance(v, str) and "example.org" in v for v in values)
    fresh = model_updates(ex, name, {})
    assert [u.get("value") for u in ups if isinstance(u, dict)] == [u.get("value") for u in fresh if isinstance(u, dict)]


def test_pick_finds_the_sample_under_the_pointer(tiny_models):
    ex = Explorer(Registry([tiny_models["cgan"]])) if "cgan" in tiny_models else None
    if ex is None:
        pytest.skip("Fashion-MNIST missing")
    try:
        img = ex.generate("cgan", 12, 5, "all")[0]  # a column per class: 10 columns, 1 row
        scale = img.shape[1] // (10 * 30 + 2)
        info = ex.pick("cgan", 12, 5, "all", 0, "", (2 + 3 * 30 + 10) * scale, 10 * scale, img.shape)
        assert info["index"] == 3 and info["label"] == 3 and info["seed"] == 5
        assert ex.pick("cgan", 12, 5, "all", 0, "", img.shape[1] + 50, 10, img.shape) is None
        again = ex._pinned("cgan", ex.registry.get("cgan"), info)
        assert np.allclose(again["z"][0], info["z"], atol=1e-3) and again["label"][0] == 3
    finally:
        ex.store.cleanup()


# Any JSON an API client may send, and the values a form can hold.
GARBAGE = [None, "", " ", "nan", "inf", -1, 0, 1, 3.5, 1e30, float("nan"), float("inf"), True, [], {}, [1, 2], {"a": 1}, "all", "random",
           "c", "u0", "label", "c=3", "u0=nan", "c=99,u0=1", "x" * 5000, "\x00", "<b>x</b>", "99999999999", "1e400", "3,4", ["u0=1", 3],
           {"u0": [1, 2]}, {"c": None}, {"u0": "x"}, {"model": "cgan", "seed": "x", "index": 1}]


def test_any_request_gets_a_result_or_one_short_line(tiny_models):
    """Random requests of garbage values, as the UI's API may receive them: every one either answers or raises
    CtrlgenError with one line that stays short whatever was sent (found: lists and numbers where text was
    expected, an infinite label, a 10,000-character seed quoted back whole, a list as the model's name)."""
    import inspect
    import random

    ex = Explorer(Registry([tiny_models[k] for k in ("cgan", "infogan", "ring8")]), Limits(max_samples=64, max_points=2000, max_frames=8))
    names = ex.registry.names
    rng = random.Random(0)
    answered = refused = 0
    try:
        for method in ("generate", "pick", "sweep", "interpolate", "compare", "card", "describe_pick"):
            f = getattr(ex, method)
            params = list(inspect.signature(f).parameters.values())
            for _ in range(40):
                args = {}
                for p in params:
                    if p.name in ("model", "model_a", "model_b"):
                        args[p.name] = rng.choice(names + ["nosuch", None, [], {}, 3, "<b>x</b>"]) if rng.random() < 0.3 else rng.choice(names)
                    elif p.default is inspect.Parameter.empty or rng.random() < 0.5:
                        args[p.name] = rng.choice(GARBAGE)
                try:
                    f(**args)
                    answered += 1
                except CtrlgenError as e:
                    assert "\n" not in str(e) and len(str(e)) < 600, (method, args, str(e)[:200])
                    refused += 1
    finally:
        ex.store.cleanup()
    assert refused > 100 and answered > 5  # both paths were exercised
