"""ctrlgen export --web without a browser: the page's files, its seeded generator, and bad input."""

import json

import numpy as np
import onnx
import pytest

from conftest import assert_one_line_error, run_cli
from ctrlgen.errors import CtrlgenError
from ctrlgen.models import models_dir
from ctrlgen.spec import CategoricalCode, ContinuousCode, LatentSpec
from ctrlgen.webpage import DEFAULT_ORT_URL, check_ort_url, mulberry32, web_inputs, write_page

CGAN = models_dir() / "fashion-cgan.onnx"
INFOGAN = models_dir() / "fashion-infogan.onnx"


def test_mulberry32_matches_the_reference_values_from_javascript():
    # printed by node with the function in ctrlgen/web/ctrlgen.js
    assert mulberry32(12345, 5) == [4207900869, 1317490944, 2079646450, 3513001552, 2187978186]
    assert mulberry32(-1, 3) == mulberry32(0xFFFFFFFF, 3) == [3850105811, 813802916, 3073704848]


def test_web_inputs_are_deterministic_well_distributed_and_fixed_values_leave_the_rest():
    spec = LatentSpec(noise_dim=8, output_kind="image", output_shape=(1, 4, 4), labels=("a", "b", "c"),
                      categorical=(CategoricalCode("c", 5),), continuous=(ContinuousCode("u", -2, 3),))
    x = web_inputs(spec, 2000, 3)
    assert list(x) == ["z", "label", "code_cat", "code_cont"]
    assert all(np.array_equal(x[k], v) for k, v in web_inputs(spec, 2000, 3).items())
    assert not np.array_equal(x["z"], web_inputs(spec, 2000, 4)["z"])
    assert abs(x["z"].mean()) < 0.03 and abs(x["z"].std() - 1) < 0.03
    assert set(np.unique(x["label"])) == {0, 1, 2} and set(np.unique(x["code_cat"])) == set(range(5))
    assert x["code_cont"].min() >= -2 and x["code_cont"].max() <= 3 and abs(x["code_cont"].mean() - 0.5) < 0.1
    fixed = web_inputs(spec, 2000, 3, label="b", cat={"c": 4}, cont={"u": 2.5})
    assert np.array_equal(fixed["z"], x["z"])  # everything is still drawn
    assert (fixed["label"] == 1).all() and (fixed["code_cat"] == 4).all() and (fixed["code_cont"] == 2.5).all()
    assert (web_inputs(spec, 3, 0, label=np.int64(2))["label"] == 2).all()
    assert web_inputs(spec, 3, 0, label=np.array([2, 0, 1]))["label"].tolist() == [2, 0, 1]
    with pytest.raises(CtrlgenError, match="label 'd' is unknown"):
        web_inputs(spec, 3, 0, label="d")
    uni = web_inputs(LatentSpec(noise_dim=4, output_kind="points", output_shape=(2,), noise="uniform"), 500, 0)
    assert list(uni) == ["z"] and uni["z"].min() >= -1 and uni["z"].max() <= 1 and uni["z"].std() > 0.5


def test_the_page_holds_the_model_unchanged_and_loads_the_given_ort(tmp_path):
    out = tmp_path / "page"
    run_cli("export", CGAN, "--web", out)
    assert sorted(p.name for p in out.iterdir()) == ["ctrlgen.js", "index.html", "model.onnx"]
    assert (out / "model.onnx").read_bytes() == CGAN.read_bytes()
    page = (out / "index.html").read_text()
    assert f'<script src="{DEFAULT_ORT_URL}"></script>' in page and '<script src="ctrlgen.js"></script>' in page
    assert "{{" not in page
    js = (out / "ctrlgen.js").read_text()
    assert "ctrlgen.spec" in js and "innerHTML" not in js  # text from the file goes in as textContent only
    # --force replaces the page's files and leaves the rest of the folder alone
    (out / "notes.txt").write_text("mine")
    run_cli("export", INFOGAN, "--web", out, "--force", "--ort-url", "/ort/ort.min.js")
    assert (out / "model.onnx").read_bytes() == INFOGAN.read_bytes()
    assert '<script src="/ort/ort.min.js"></script>' in (out / "index.html").read_text()
    assert (out / "notes.txt").read_text() == "mine"
    # but not a site's own page files: an index.html ctrlgen did not write is refused and kept, with the rest
    for name, theirs in (("index.html", b"<html>my homepage</html>"), ("ctrlgen.js", b"my js"), ("model.onnx", b"my model")):
        kept = (out / name).read_bytes()
        (out / name).write_bytes(theirs)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert_one_line_error(run_cli("export", CGAN, "--web", out, "--force", ok=False), f"holds {name} that ctrlgen did not write")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        (out / name).write_bytes(kept)


def test_the_title_from_the_card_is_escaped(tmp_path):
    model = onnx.load(str(CGAN))
    for p in model.metadata_props:
        if p.key == "ctrlgen.card":
            card = json.loads(p.value)
            card["name"] = "<script>alert(1)</script>"
            p.value = json.dumps(card)
    src = tmp_path / "odd.onnx"
    onnx.save(model, str(src))
    rep = write_page(src, tmp_path / "page")
    page = (tmp_path / "page" / "index.html").read_text()
    assert rep.title == "<script>alert(1)</script>" and "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


@pytest.mark.parametrize("url", ['x" onload="alert(1)', "javascript:alert(1)", "", "a b"])
def test_bad_ort_urls_are_refused(url):
    with pytest.raises(CtrlgenError, match="--ort-url"):
        check_ort_url(url)


def test_bad_input_is_one_line(tmp_path):
    out = tmp_path / "page"
    out.mkdir()
    (out / "x").write_text("")
    assert_one_line_error(run_cli("export", CGAN, "--web", out, ok=False), "--force")
    assert_one_line_error(run_cli("export", CGAN, "--web", tmp_path / "p2", "--ort-url", "javascript:x", ok=False), "--ort-url")
    assert_one_line_error(run_cli("export", CGAN, "--web", tmp_path / "p2", "--eval", ok=False), "--eval measures an .onnx file")
    assert_one_line_error(run_cli("export", CGAN, "--web", tmp_path / "p2", "--triton", tmp_path / "r", ok=False), "--web and --triton")
    assert not (tmp_path / "p2").exists()
    plain = tmp_path / "plain.onnx"
    model = onnx.load(str(models_dir() / "ring8.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    assert_one_line_error(run_cli("export", plain, "--web", tmp_path / "p3", ok=False), "ctrlgen.spec")
    assert not (tmp_path / "p3").exists()


def test_a_page_file_that_appears_while_exporting_is_kept(tmp_path, monkeypatch):
    """Without --force the page's files are published without replacing: a file someone creates at one of
    those paths after the folder check (here: while the model is read) survives, and the export says so."""
    from ctrlgen import triton

    site = tmp_path / "site"
    real = triton._model_bytes

    def racing(source, options):
        data = real(source, options)
        site.mkdir(exist_ok=True)
        (site / "index.html").write_text("the user's own page")
        return data

    monkeypatch.setattr(triton, "_model_bytes", racing)
    with pytest.raises(CtrlgenError, match="index.html"):
        write_page(models_dir() / "ring8.onnx", site)
    assert (site / "index.html").read_text() == "the user's own page"
