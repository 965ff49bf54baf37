"""ctrlgen sweep and ctrlgen interpolate on tiny models."""

import numpy as np
from PIL import Image
from test_cli import assert_one_line_error, run

from conftest import needs_fashion

CELL = 2 * (28 + 2)  # one 28x28 sample with its padding, at --scale 2


@needs_fashion
def test_sweep_a_continuous_code_labels_and_a_categorical_code(tiny_models, tmp_path):
    m = tiny_models["infogan"]
    out = run("sweep", m, "--code", "u0", "--steps", 5, "--rows", 3, "--no-captions", "-o", tmp_path / "u0.png").output
    assert "3 z x 5 values of u0" in out
    im = np.asarray(Image.open(tmp_path / "u0.png"))
    assert im.shape[:2] == (3 * CELL + 4, 5 * CELL + 4)
    columns = [im[4:CELL, 4 + CELL * c : CELL * (c + 1)] for c in range(5)]
    assert not np.array_equal(columns[0], columns[4])  # the code changes the picture along the row
    run("sweep", m, "--cat", "c", "--rows", 2, "--fix", "u1=0.5", "-o", tmp_path / "c.png")
    captioned = Image.open(tmp_path / "c.png")
    assert captioned.width == 10 * CELL + 4 and captioned.height > 2 * CELL + 4 and captioned.mode == "RGB"
    run("sweep", tiny_models["cgan"], "--labels", "--rows", 2, "--transpose", "-o", tmp_path / "labels.png")
    tall = Image.open(tmp_path / "labels.png")
    assert tall.height > 10 * CELL + 4 and tall.width > 2 * CELL + 4 and tall.height > tall.width  # a row per class


@needs_fashion
def test_sweep_errors_are_one_line_and_keep_files(tiny_models, tmp_path):
    m = tiny_models["infogan"]
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"precious")
    assert_one_line_error(run("sweep", m, "-o", tmp_path / "x.png", ok=False), "exactly one of --code NAME, --labels or --cat NAME")
    assert_one_line_error(run("sweep", m, "--code", "u9", "-o", tmp_path / "x.png", ok=False), "it can sweep: c, u0, u1")
    assert_one_line_error(run("sweep", m, "--cat", "u0", "-o", tmp_path / "x.png", ok=False), "not a categorical code")
    assert_one_line_error(run("sweep", m, "--labels", "-o", tmp_path / "x.png", ok=False), "not class-conditional")
    assert_one_line_error(run("sweep", m, "--code", "u0", "--fix", "c=12", "-o", tmp_path / "x.png", ok=False), "out of range")
    assert_one_line_error(run("sweep", m, "--code", "u0", "-o", keep, ok=False), "--force")
    assert_one_line_error(run("sweep", tiny_models["ring8"], "--labels", "-o", tmp_path / "x.png", ok=False), "image model")
    assert keep.read_bytes() == b"precious" and not (tmp_path / "x.png").exists()


@needs_fashion
def test_interpolate_writes_a_looping_gif(tiny_models, tmp_path):
    run("interpolate", tiny_models["cgan"], "--frames", 12, "--keys", 3, "--label", "0,Trouser", "--walks", 2, "-o", tmp_path / "w.gif")
    gif = Image.open(tmp_path / "w.gif")
    assert gif.n_frames == 12 and gif.info.get("loop") == 0
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("L")))
    assert frames[0].shape == (3 * (30 + 2), 3 * (2 * 30 + 2))  # two walks side by side, --scale 3
    assert len({f.tobytes() for f in frames}) > 6  # it moves
    run("interpolate", tiny_models["infogan"], "--frames", 6, "--code", "u0=-1,1", "--keys", 1, "-o", tmp_path / "u.gif")
    assert Image.open(tmp_path / "u.gif").n_frames == 6


def test_interpolate_points_and_errors(tiny_models, tmp_path):
    run("interpolate", tiny_models["ring8"], "--frames", 4, "-o", tmp_path / "ring.gif")
    gif = Image.open(tmp_path / "ring.gif")
    assert gif.n_frames == 4 and gif.size == (512, 512)
    assert_one_line_error(run("interpolate", tiny_models["ring8"], "--frames", 1, "-o", tmp_path / "x.gif", ok=False), "--frames must be in 2..")
    assert_one_line_error(run("interpolate", tiny_models["ring8"], "-o", tmp_path / "x.png", ok=False), "must end in .gif")
    assert_one_line_error(run("interpolate", tiny_models["ring8"], "--label", "1", "-o", tmp_path / "x.gif", ok=False), "not class-conditional")
    assert not (tmp_path / "x.gif").exists()


def test_ui_command_refuses_bad_arguments_before_serving(tmp_path):
    assert_one_line_error(run("ui", tmp_path / "missing.onnx", ok=False), "not found")
    assert_one_line_error(run("ui", "--port", 70000, ok=False), "--port must be in 1..65535")
    assert_one_line_error(run("ui", "--max-samples", 0, ok=False), "max-samples must be a positive integer")
