import json
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image

from conftest import assert_one_line_error, needs_fashion
from conftest import run_cli as run


@needs_fashion
def test_generate_grid_for_one_label_and_all_labels(tiny_models, tmp_path):
    m = tiny_models["cgan"]
    run("generate", m, "--n", 64, "--label", 3, "--seed", 0, "-o", tmp_path / "grid.png")
    im = Image.open(tmp_path / "grid.png")
    assert im.size == ((8 * 30 + 2) * 2, (8 * 30 + 2) * 2)
    run("generate", m, "--label", "all", "--n", 30, "-o", tmp_path / "all.png")
    assert Image.open(tmp_path / "all.png").size == ((3 * 30 + 2) * 2, (10 * 30 + 2) * 2)
    run("generate", m, "--label", "trouser", "--n", 4, "-o", tmp_path / "named.npz")
    assert (np.load(tmp_path / "named.npz")["label"] == 1).all()


@needs_fashion
def test_same_seed_gives_byte_identical_output(tiny_models, tmp_path):
    for fmt, name in (("grid", "a.png"), ("npz", "a.npz")):
        run("generate", tiny_models["cgan"], "--n", 20, "--seed", 5, "-f", fmt, "-o", tmp_path / ("1" + name))
        run("generate", tiny_models["cgan"], "--n", 20, "--seed", 5, "-f", fmt, "-o", tmp_path / ("2" + name), "--batch", 7)
        assert (tmp_path / ("1" + name)).read_bytes() == (tmp_path / ("2" + name)).read_bytes()
    run("generate", tiny_models["cgan"], "--n", 20, "--seed", 6, "-o", tmp_path / "3a.png")
    assert (tmp_path / "3a.png").read_bytes() != (tmp_path / "1a.png").read_bytes()


@needs_fashion
def test_npz_and_png_dir_formats(tiny_models, tmp_path):
    run("generate", tiny_models["infogan"], "--n", 13, "--cat", "c=4", "--cont", "u1=0.5", "-o", tmp_path / "s.npz")
    with zipfile.ZipFile(tmp_path / "s.npz") as zf:
        assert sorted(zf.namelist()) == ["code_cat.npy", "code_cont.npy", "sample.npy", "z.npy"]
    d = np.load(tmp_path / "s.npz")
    assert d["sample"].shape == (13, 1, 28, 28) and (d["code_cat"][:, 0] == 4).all()
    assert np.allclose(d["code_cont"][:, 1], 0.5) and not np.allclose(d["code_cont"][:, 0], 0.5)
    run("generate", tiny_models["cgan"], "--n", 5, "--label", "random", "-f", "png-dir", "-o", tmp_path / "pngs")
    files = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert files == ["000000.png", "000001.png", "000002.png", "000003.png", "000004.png", "inputs.csv"]
    assert (tmp_path / "pngs" / "inputs.csv").read_text().startswith("file,label,label_name\n")


@needs_fashion
def test_bad_input_is_one_line_and_keeps_existing_files(tiny_models, tmp_path):
    m = tiny_models["cgan"]
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"precious")
    assert_one_line_error(run("generate", m, "--label", 10, "-o", tmp_path / "x.png", ok=False), "out of range")
    assert_one_line_error(run("generate", m, "--label", "Hat", "-o", tmp_path / "x.png", ok=False), "unknown")
    assert_one_line_error(run("generate", m, "--cat", "c=1", "-o", tmp_path / "x.png", ok=False), "categorical code 'c' is unknown")
    assert_one_line_error(run("generate", m, "-o", keep, ok=False), "--force")
    assert_one_line_error(run("generate", m, "--n", 0, ok=False), "--n must be at least 1")
    assert_one_line_error(run("generate", tmp_path / "none.onnx", ok=False), "not found")
    assert_one_line_error(run("generate", tiny_models["infogan"], "--cont", "u0=7", "-o", tmp_path / "x.png", ok=False), "outside its range")
    assert_one_line_error(run("generate", tiny_models["infogan"], "--cont", "u9=0", "-o", tmp_path / "x.png", ok=False), "unknown")
    assert keep.read_bytes() == b"precious"
    assert not (tmp_path / "x.png").exists()
    run("generate", m, "-o", keep, "--force", "--n", 10)
    assert keep.read_bytes() != b"precious"


def test_generate_points_and_info(tiny_models, tmp_path):
    run("generate", tiny_models["ring8"], "--n", 500, "-o", tmp_path / "ring.png")
    assert Image.open(tmp_path / "ring.png").size == (512, 512)
    out = run("info", tiny_models["ring8"]).output
    assert "noise" in out and "points 2" in out and "ring8" in out and "export_parity" in out
    data = json.loads(run("info", tiny_models["ring8"], "--json").output)
    assert data["spec"]["output"] == {"kind": "points", "shape": [2]} and data["card"]["recipe"] == "ring8"


def test_train_and_export_through_the_cli(tmp_path):
    run("train", "ring8", "--steps", 4, "-o", tmp_path / "run", "--no-progress", "--set", "net.g_width=8", "--set", "net.d_width=8")
    out = run("export", tmp_path / "run", "-o", tmp_path / "m.onnx").output
    assert "onnx.checker passed" in out and "max |onnxruntime - torch|" in out
    assert_one_line_error(run("export", tmp_path / "run", "-o", tmp_path / "m.onnx", ok=False), "already exists")
    assert_one_line_error(run("train", "ring8", "-o", tmp_path / "run", ok=False), "already holds a run")
    assert_one_line_error(run("train", "nosuch", ok=False), "unknown")
    assert_one_line_error(run("train", "ring8", "--set", "lr_g=fast", ok=False), "must be a number")


def test_train_refuses_a_folder_holding_files_a_run_would_write_into(tmp_path):
    """A new run appends to metrics.jsonl, writes samples/step-N.png and, failing before its first checkpoint,
    removes both: a folder where they already are (not a run: no config.json) is refused and left as it was."""
    out = tmp_path / "mine"
    (out / "samples").mkdir(parents=True)
    (out / "metrics.jsonl").write_text("my notes\n")
    (out / "samples" / "step-00000004.png").write_bytes(b"precious")
    res = run("train", "ring8", "--steps", 4, "-o", out, "--no-progress", "--set", "net.g_width=8", ok=False)
    assert_one_line_error(res, "already has metrics.jsonl, samples")
    assert (out / "metrics.jsonl").read_text() == "my notes\n"
    assert (out / "samples" / "step-00000004.png").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "samples"]


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys, ctrlgen.serve.cli; print(sorted(m for m in ('torch', 'gradio', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_outputs_get_ordinary_permissions(tiny_models, tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        run("generate", tiny_models["ring8"], "--n", 10, "-o", tmp_path / "p.png")
        run("generate", tiny_models["ring8"], "--n", 10, "-o", tmp_path / "p.npz")
    finally:
        os.umask(mask)
    for name in ("p.png", "p.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
