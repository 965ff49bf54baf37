"""ctrlgen eval / export --eval --q-head / plot through typer's CliRunner."""

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import assert_one_line_error as one_line_error
from conftest import needs_fashion, tiny_config
from conftest import run_cli as run
from ctrlgen.runtime import Runtime
from ctrlgen.spec import CARD_KEY

IMAGE_METRICS = {"classes_covered", "kl_classes", "fd", "precision", "recall", "density", "coverage"}


def report(*args):
    return json.loads(run("eval", *args, "--json").output)


@needs_fashion
def test_eval_of_a_conditional_model_reports_every_image_metric_with_real_references(tiny_models):
    r = report(tiny_models["cgan"], "--n", 500)
    m = r["metrics"]
    assert set(m) == IMAGE_METRICS | {"conditional_accuracy", "intra_fd", "intra_diversity"}
    assert r["n"] == 500 and r["kind"] == "image" and r["evaluator"]["test_accuracy"] >= 0.92
    # References: real test images scored like samples, against the training subset.
    assert m["classes_covered"]["real"] == 10 and m["conditional_accuracy"]["real"] > 0.9
    assert m["fd"]["real"] < m["fd"]["value"]  # an 8-step generator is far from real data
    assert m["intra_diversity"]["real"] == pytest.approx(1.0, abs=0.15)
    assert all(v["higher_is_better"] in (True, False) for v in m.values())
    table = run("eval", tiny_models["cgan"], "--n", 500).output
    assert "real data" in table and "conditional_accuracy" in table and "evaluator:" in table


@needs_fashion
def test_second_eval_reads_the_cached_real_features(tiny_models, monkeypatch):
    from ctrlgen.classifier import Evaluator
    from ctrlgen.reference import cache_dir

    report(tiny_models["cgan"], "--n", 100)
    assert len(list(cache_dir().glob("real-*.npz"))) == 2

    def no_real_images(*a, **k):
        raise AssertionError("real images were read again")

    monkeypatch.setattr(Evaluator, "uint8", no_real_images)
    assert report(tiny_models["cgan"], "--n", 100)["metrics"]["fd"]["real"] is not None


@needs_fashion
def test_infogan_purity_and_q_head_consistency_from_the_onnx_and_from_the_run(tiny_runs, tiny_models, tmp_path):
    plain = report(tiny_models["infogan"], "--n", 300)
    assert "purity" in plain["metrics"] and "consistency" not in plain["metrics"]
    assert any("--q-head" in n for n in plain["notes"])
    out = tmp_path / "info.onnx"
    text = run("export", tiny_runs["infogan"], "-o", out, "--q-head", "--eval").output
    assert "consistency" in text and "Recorded" in text
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["sample", "q_code_cont"]
    card = json.loads({p.key: p.value for p in model.metadata_props}[CARD_KEY])
    assert card["q_head_parity_max_abs_diff"] < 1e-4
    assert {"purity", "consistency", "classes_covered"} <= set(card["metrics"])
    assert card["evaluation"]["n"] == 10_000 and card["evaluation"]["evaluator"]["sha256"]
    md = out.with_suffix(".md").read_text()
    assert "Metrics measured at export" in md and "| consistency |" in md
    # The Q head in the file and the Q head in the checkpoint give the same number.
    from_file = report(out, "--n", 300)["metrics"]["consistency"]["value"]
    from_run = report(tiny_runs["infogan"], "--n", 300)["metrics"]["consistency"]["value"]
    assert from_file == pytest.approx(from_run, abs=1e-3)
    # Generating from the file is unaffected by the extra output.
    samples, _ = Runtime.from_file(out).generate(3, seed=0)
    assert samples.shape == (3, 1, 28, 28)


def test_eval_of_a_mixture_model_uses_the_2d_protocol(tiny_models):
    r = report(tiny_models["ring8"])
    assert r["n"] == 2500 and set(r["metrics"]) == {"modes", "high_quality", "reverse_kl"}
    assert r["metrics"]["modes"]["real"] == 8 and r["metrics"]["high_quality"]["real"] > 99


@needs_fashion
def test_write_card_changes_only_the_card(tiny_models, tmp_path):
    path = tmp_path / "cgan.onnx"
    path.write_bytes(tiny_models["cgan"].read_bytes())
    before = Runtime.from_file(path).generate(5, seed=3)[0]
    run("eval", path, "--n", 200, "--write-card")
    rt = Runtime.from_file(path)
    assert np.array_equal(rt.generate(5, seed=3)[0], before)
    assert rt.card["metrics"]["fd"]["value"] > 0 and rt.card["evaluation"]["n"] == 200
    assert path.with_suffix(".md").is_file()
    assert "metric fd" in run("info", path).output


def test_write_card_keeps_the_files_permissions_and_a_link_stays_a_link(tiny_models, tmp_path):
    """The card is recorded in place: a private model stays private (it became world-readable), and through
    a symbolic link the file it names is updated while the link stays (it was replaced by a copy)."""
    private = tmp_path / "private.onnx"
    private.write_bytes(tiny_models["cgan"].read_bytes())
    private.chmod(0o600)
    run("eval", private, "--n", 200, "--write-card")
    assert private.stat().st_mode & 0o777 == 0o600 and "metrics" in Runtime.from_file(private).card
    target, link = tmp_path / "target.onnx", tmp_path / "link.onnx"
    target.write_bytes(tiny_models["cgan"].read_bytes())
    link.symlink_to(target.name)
    run("eval", link, "--n", 200, "--write-card")
    assert link.is_symlink() and "metrics" in Runtime.from_file(target).card


def test_write_card_refuses_a_shipped_model(tmp_path):
    """The shipped files' cards hold the release's measurement: --write-card (with a small --n, say) must not
    replace it; a copy records."""
    from ctrlgen.models import models_dir

    shipped = models_dir() / "ring8.onnx"
    before = (shipped.read_bytes(), shipped.with_suffix(".md").read_bytes())
    one_line_error(run("eval", "ring8", "--n", 50, "--write-card", ok=False), "is a model shipped with ctrlgen")
    one_line_error(run("eval", shipped, "--n", 50, "--write-card", ok=False), "record the metrics in the copy")
    assert (shipped.read_bytes(), shipped.with_suffix(".md").read_bytes()) == before
    copy = tmp_path / "my-ring8.onnx"
    copy.write_bytes(shipped.read_bytes())
    run("eval", copy, "--n", 50, "--write-card")
    assert Runtime.from_file(copy).card["evaluation"]["n"] == 50


def test_bad_eval_input_is_one_line(tiny_runs, tmp_path):
    one_line_error(run("eval", tmp_path / "none.onnx", ok=False), "not found")
    one_line_error(run("eval", tiny_runs["ring8"], "--write-card", ok=False), "--write-card needs an .onnx file")
    one_line_error(run("eval", tiny_runs["ring8"], "--n", 3, ok=False), "--n must be at least 10")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    one_line_error(run("eval", bogus, ok=False), "not a loadable ONNX model")


@needs_fashion
def test_a_bad_evaluator_is_one_line(tiny_models, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    one_line_error(run("eval", tiny_models["cgan"], "--evaluator", bogus, ok=False), "not a loadable ONNX model")
    one_line_error(run("eval", tiny_models["cgan"], "--evaluator", tmp_path / "nope.onnx", ok=False), "cannot read the evaluator")


def test_plot_writes_curves_and_a_gif_of_the_sample_grids(tmp_path):
    from ctrlgen.train.trainer import Trainer

    Trainer(tiny_config("ring8", "steps=12", "monitor_every=3", "monitor_samples=100"), tmp_path).run()
    out = run("plot", tmp_path).output
    assert "plot.png" in out and "3 frames" in out and "left out" not in out
    png = Image.open(tmp_path / "plot.png")
    assert png.size[0] > 600 and png.size[1] > 300
    gif = Image.open(tmp_path / "samples.gif")
    assert gif.n_frames == 3
    keep = tmp_path / "mine.png"
    keep.write_bytes(b"keep")
    one_line_error(run("plot", tmp_path, "-o", keep, ok=False), "--force")
    assert keep.read_bytes() == b"keep"
    one_line_error(run("plot", tmp_path / "nothing", ok=False), "no metrics.jsonl")
    run("plot", tmp_path)  # its own defaults in RUN/ are regenerated without --force
    for name, theirs in (("plot.png", keep.read_bytes()), ("samples.gif", b"GIF89a someone's animation")):
        (tmp_path / name).write_bytes(theirs)  # but not a file of that name that ctrlgen plot did not write
        one_line_error(run("plot", tmp_path, ok=False), f"{name} exists and ctrlgen plot did not write it")
        assert (tmp_path / name).read_bytes() == theirs
        (tmp_path / name).unlink()
        run("plot", tmp_path)



def test_export_eval_keeps_a_users_md_and_writes_nothing_when_it_cannot_measure(tiny_runs, tmp_path, monkeypatch):
    """export --eval wrote NAME.md over any file of that name, and a measurement that failed (a model of data
    ctrlgen eval has no evaluator for) left the unmeasured model behind after its error line."""
    out, notes = tmp_path / "m.onnx", tmp_path / "m.md"
    notes.write_bytes(b"my notes on m")
    one_line_error(run("export", tiny_runs["ring8"], "-o", out, "--eval", ok=False), "m.md exists and is not a model card ctrlgen wrote")
    assert notes.read_bytes() == b"my notes on m" and not out.exists()
    run("export", tiny_runs["ring8"], "-o", out)  # without --eval no card is written beside it
    one_line_error(run("eval", out, "--write-card", ok=False), "m.md exists and is not a model card ctrlgen wrote")
    assert notes.read_bytes() == b"my notes on m"
    run("export", tiny_runs["ring8"], "-o", out, "--eval", "--force")  # --force replaces it, as it replaces the model
    assert notes.read_text().startswith("# ") and "Metrics measured at export" in notes.read_text()
    run("export", tiny_runs["ring8"], "-o", out, "--eval", "--force")  # a card ctrlgen wrote is its own to replace
    run("eval", out, "--write-card")

    from ctrlgen.errors import CtrlgenError
    from ctrlgen.metrics import report as report_module

    def no_dataset(*a, **k):
        raise CtrlgenError("Fashion-MNIST not found at /nowhere; install it")

    monkeypatch.setattr(report_module, "evaluate", no_dataset)
    fresh = tmp_path / "fresh" / "f.onnx"
    one_line_error(run("export", tiny_runs["ring8"], "-o", fresh, "--eval", ok=False), "nothing was written")
    assert not fresh.exists() and not fresh.with_suffix(".md").exists() and list(fresh.parent.iterdir()) == []
