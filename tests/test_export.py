import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import needs_fashion
from ctrlgen.checkpoint import load_generator
from ctrlgen.errors import CtrlgenError
from ctrlgen.export import export, parity
from ctrlgen.runtime import Runtime
from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@needs_fashion
@pytest.mark.parametrize("name, inputs", [("cgan", ["z", "label"]), ("infogan", ["z", "code_cat", "code_cont"]), ("ring8", ["z"])])
def test_interface_metadata_and_dynamic_batch(tiny_models, name, inputs):
    path = tiny_models[name]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    spec = LatentSpec.from_json(meta[SPEC_KEY])
    card = json.loads(meta[CARD_KEY])
    assert card["steps"] == 8 and card["seed"] == 0 and "device" in card and "wall_time_s" in card
    assert card["export_parity_max_abs_diff"] < 1e-4
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == inputs
    assert [o.name for o in sess.get_outputs()] == ["sample"]
    types = {i.name: i.type for i in sess.get_inputs()}
    assert types["z"] == "tensor(float)"
    if "label" in types:
        assert types["label"] == "tensor(int64)"
    for batch in (1, 37, 300):
        (out,) = sess.run(None, spec.sample(batch, seed=batch))
        assert out.shape == (batch, *spec.output_shape) and out.dtype == np.float32
    if spec.output_kind == "image":
        assert out.min() >= -1 and out.max() <= 1


@needs_fashion
@pytest.mark.parametrize("name", ["cgan", "infogan"])
def test_parity_against_torch_at_batch_1_and_37(tiny_runs, tiny_models, name):
    g, spec, _ = load_generator(tiny_runs[name])
    diff = parity(tiny_models[name].read_bytes(), g, spec, batches=(1, 37))
    assert diff < 1e-4


@needs_fashion
def test_export_uses_ema_weights_when_the_run_has_them(tiny_runs, tmp_path):
    g_ema, spec, ck = load_generator(tiny_runs["cgan"], prefer_ema=True)
    g_raw, _, _ = load_generator(tiny_runs["cgan"], prefer_ema=False)
    assert ck.meta["weights"] == "ema"
    a, b = export(tiny_runs["cgan"], tmp_path / "ema.onnx"), export(tiny_runs["cgan"], tmp_path / "raw.onnx", prefer_ema=False)
    assert a.weights == "ema" and b.weights == "G"
    x = spec.sample(5, 0)
    ema_out = Runtime.from_file(tmp_path / "ema.onnx")(**x)
    raw_out = Runtime.from_file(tmp_path / "raw.onnx")(**x)
    with torch.no_grad():
        want = g_ema(**{k: torch.from_numpy(v) for k, v in x.items()}).numpy()
    np.testing.assert_allclose(ema_out, want, atol=1e-4)
    assert np.abs(ema_out - raw_out).max() > 1e-3


def test_export_of_a_missing_run_is_one_line(tmp_path):
    with pytest.raises(CtrlgenError, match="holds no checkpoint"):
        export(tmp_path, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_runs_checkpoints_folder_loads_as_the_run(tiny_runs, tmp_path):
    from ctrlgen.checkpoint import load

    run = tiny_runs["ring8"]
    assert load(run / "checkpoints").path == load(run).path  # the newest checkpoint, not "holds no checkpoint"
    assert export(run / "checkpoints", tmp_path / "x.onnx").path.is_file()
    (tmp_path / "checkpoints").mkdir()  # a folder of that name that is not a run's: still refused
    with pytest.raises(CtrlgenError, match="holds no checkpoint"):
        load(tmp_path / "checkpoints")


def test_runtime_refuses_onnx_without_ctrlgen_metadata(tiny_models, tmp_path):
    model = onnx.load(str(tiny_models["ring8"]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(CtrlgenError, match="no 'ctrlgen.spec' metadata"):
        Runtime.from_file(bare)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CtrlgenError, match="not a loadable ONNX model"):
        Runtime.from_file(junk)


def test_onnx_and_checkpoint_runtimes_agree(tiny_runs, tiny_models):
    onnx_rt = Runtime.from_file(tiny_models["ring8"])
    torch_rt = Runtime.from_file(tiny_runs["ring8"])
    a, _ = onnx_rt.generate(50, seed=3)
    b, _ = torch_rt.generate(50, seed=3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx_rt.spec == torch_rt.spec


@needs_fashion
def test_card_lists_the_techniques_the_checkpoint_header_names(tiny_runs, tiny_models):
    from ctrlgen.checkpoint import load

    meta = load(tiny_runs["infogan"]).meta
    assert "mutual_information" in meta["techniques"]  # switched on by InfoGAN itself, not by the recipe
    assert Runtime.from_file(tiny_models["infogan"]).card["techniques"] == meta["techniques"]


def test_card_of_a_checkpoint_from_before_the_header_listed_techniques():
    from ctrlgen.card import build_card

    meta = {"config": {"recipe": "r", "seed": 1, "techniques": {"ema": {"decay": 0.99}}}, "step": 3}
    card = build_card(meta, "G")
    assert card["techniques"] == {"ema": {"decay": 0.99}} and card["steps"] == 3 and card["recipe"] == "r"
    now = {**meta, "techniques": {"ema": {"decay": 0.99}, "mutual_information": {}}}
    assert build_card(now, "G_ema", {"precision": "fp32"})["techniques"] == now["techniques"]


def test_card_markdown_shows_hostile_text_as_text():
    """NAME.md is rendered by Markdown viewers; every value in it comes from the model file (label names
    come from a data folder's subfolder names), so none of it may become HTML, a link, emphasis or a cell."""
    from markdown_it import MarkdownIt

    from ctrlgen.card import markdown
    from ctrlgen.spec import LatentSpec

    hostile = ["<img src=x onerror=alert(1)>", "[click](http://evil.example)", "*loud*", "_loud_", "a | b", "www.evil.example",
               "&lt;b&gt;", "`code`"]
    spec = LatentSpec(noise_dim=4, noise="normal", output_kind="image", output_shape=(1, 28, 28), labels=tuple(hostile))
    card = {"name": hostile[0], "recipe": hostile[1], "seed": 0, "loss": hostile[2], "device": hostile[4], "exported": hostile[5],
            "techniques": {hostile[0]: {}}, "weights_storage": "max |output - fp32 file| = 1e-3",
            "metrics": {hostile[1]: {"value": hostile[0], "real": 0.5, "higher_is_better": True}},
            "evaluation": {"command": "ctrlgen eval `x` | y", "n": hostile[3], "measured": hostile[7], "notes": [hostile[0]]}}
    md = markdown(card, spec)
    html = MarkdownIt("commonmark").enable("table").render(md)
    for tag in ("<img", "<a ", "<em>", "<strong>", "<b>"):
        assert tag not in html, (tag, html)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[click](http://evil.example)" in html and "*loud*" in html
    assert "a | b" in html and "max |output - fp32 file| = 1e-3" in html  # a pipe in a value does not split its cell:
    assert all(r.count("<td>") in (0, 2, 4) for r in html.split("<tr>")[1:]), html  # 2 columns (card, spec), 4 (metrics)


def test_shipped_cards_markdown_is_what_their_files_hold():
    """models/NAME.md beside each shipped generator is its card as ``card.markdown`` renders it today (a stale or
    hand-edited copy would show a reader other numbers or other escaping than the file has)."""
    from pathlib import Path

    from ctrlgen.card import markdown, read_metadata
    from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec

    models = Path(__file__).resolve().parents[1] / "models"
    checked = 0
    for onnx_path in sorted(models.glob("*.onnx")):
        meta = read_metadata(onnx_path)
        if SPEC_KEY not in meta:  # the evaluator classifier: its card has another writer
            continue
        rendered = markdown(json.loads(meta[CARD_KEY]), LatentSpec.from_json(meta[SPEC_KEY]))
        assert onnx_path.with_suffix(".md").read_text(encoding="utf-8") == rendered, onnx_path.name
        checked += 1
    assert checked >= 6
