"""Latent traversals: slerp, walks, sweeps, captions."""

import dataclasses

import numpy as np
import pytest

from ctrlgen.captions import caption, fit
from ctrlgen.controls import parse_controls
from ctrlgen.errors import CtrlgenError
from ctrlgen.runtime import Runtime
from ctrlgen.spec import CategoricalCode, ContinuousCode, LatentSpec
from ctrlgen.traversal import (
    slerp,
    sweep,
    sweep_axis,
    sweep_factors,
    sweep_inputs,
    sweep_order,
    walk,
    walk_inputs,
    walk_keyframes,
    walk_positions,
)

SPEC = LatentSpec(
    noise_dim=8, output_kind="image", output_shape=(1, 4, 4), labels=("cat", "dog", "eel"),
    categorical=(CategoricalCode("c", 3),), continuous=(ContinuousCode("u0"), ContinuousCode("w", 0.0, 2.0)),
)


class Fake(Runtime):
    """A 'model' whose image brightness is code u0 and whose top-left pixel is the label: easy to check."""

    backend = "fake"

    def __init__(self, spec=SPEC):
        self.spec, self.card = spec, {"name": "fake"}

    def _run(self, inputs):
        n = len(inputs["z"])
        out = np.broadcast_to(inputs["code_cont"][:, :1, None, None], (n, 1, 4, 4)).copy()
        out[:, 0, 0, 0] = inputs["label"] / 2 - 1
        return out.astype(np.float32)


def test_slerp_endpoints_midpoint_and_parallel_fallback():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16), rng.standard_normal(16)
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)
    e0, e1 = np.eye(2)
    assert np.allclose(slerp(e0, e1, 0.5), [2**-0.5, 2**-0.5])  # stays on the unit circle, unlike lerp
    ts = np.linspace(0, 1, 7)
    path = slerp(np.tile(e0, (7, 1)), np.tile(e1, (7, 1)), ts)
    assert np.allclose(np.linalg.norm(path, axis=1), 1.0)
    assert np.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: linear
    assert slerp(a.astype(np.float32), b.astype(np.float32), 0.3).dtype == np.float32


def test_walk_positions_loop_and_open():
    seg, t = walk_positions(8, 4, loop=True)
    assert seg.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and np.allclose(t, [0, 0.5] * 4)
    seg, t = walk_positions(5, 3, loop=False)
    assert seg.tolist() == [0, 0, 1, 1, 1] and np.allclose(t, [0, 0.5, 0, 0.5, 1])
    with pytest.raises(CtrlgenError, match="frames must be"):
        walk_positions(1, 3)
    for loop in (True, False):  # one keyframe is a still picture, looping or not
        with pytest.raises(CtrlgenError, match="1 keyframe stands still; ask for 2 or more"):
            walk_positions(4, 1, loop=loop)


def test_walk_moves_z_through_the_keyframes_and_switches_labels_halfway():
    base = SPEC.sample(3 * 2, seed=1)  # 3 keyframes x 2 walks
    keys = walk_keyframes(SPEC, base, 3, labels=[0, 2], conts={"u0": [-1.0, 1.0]})
    assert keys["label"][:, 0].tolist() == [0, 2, 0] and keys["code_cont"][:, 0, 0].tolist() == [-1, 1, -1]
    assert (keys["code_cat"] == keys["code_cat"][0]).all()  # not asked to move: the walk keeps its first value
    x = walk_inputs(keys, frames=12, loop=True)  # 4 frames per segment
    assert x["z"].shape == (24, 8) and x["label"].shape == (24,)
    z = x["z"].reshape(12, 2, 8)
    assert np.allclose(z[0], keys["z"][0]) and np.allclose(z[4], keys["z"][1]) and np.allclose(z[8], keys["z"][2])
    labels = x["label"].reshape(12, 2)[:, 0]
    assert labels.tolist() == [0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0]
    u0 = x["code_cont"].reshape(12, 2, 2)[:, 0, 0]
    assert np.allclose(u0[:5], [-1, -0.5, 0, 0.5, 1])


def test_walk_renders_one_picture_per_frame():
    pics = walk(Fake(), frames=6, keys=2, walks=4, controls=parse_controls(SPEC, codes="u0=-1,1", keyframes=True), scale=2)
    assert len(pics) == 6 and pics[0].shape == (2 * (2 * 6 + 2),) * 2 + (1,)
    brightness = [p.mean() for p in pics]
    assert brightness[3] > brightness[0]  # u0 goes from -1 to 1 and back


def test_sweep_axis_and_inputs():
    assert sweep_factors(SPEC) == ["label", "c", "u0", "w"]
    assert sweep_axis(SPEC, "label").titles == ("cat", "dog", "eel")
    assert sweep_axis(SPEC, "c").values == (0, 1, 2) and sweep_axis(SPEC, "c").titles == ("c=0", "c=1", "c=2")
    named = dataclasses.replace(SPEC, categorical=(CategoricalCode("c", 3, values=("Coat", "Shirt", "Bag")),))
    assert sweep_axis(named, "c").titles == ("Coat", "Shirt", "Bag")  # a semi-supervised code: captioned by class
    assert sweep_axis(SPEC, "w", steps=5).values == (0.0, 0.5, 1.0, 1.5, 2.0)
    with pytest.raises(CtrlgenError, match="it can sweep: label, c, u0, w"):
        sweep_axis(SPEC, "nope")
    with pytest.raises(CtrlgenError, match="steps must be"):
        sweep_axis(SPEC, "u0", steps=1)
    base = SPEC.sample(2, seed=0)
    x = sweep_inputs(SPEC, base, sweep_axis(SPEC, "w", steps=3))
    assert np.allclose(x["z"][:3], base["z"][0]) and np.allclose(x["z"][3:], base["z"][1])
    assert np.allclose(x["code_cont"][:, 1], [0, 1, 2, 0, 1, 2])
    assert np.allclose(x["code_cont"][:, 0], np.repeat(base["code_cont"][:, 0], 3))
    assert sweep_order(2, 3, transpose=True).tolist() == [0, 3, 1, 4, 2, 5]


def test_sweep_grid_columns_follow_the_code():
    res = sweep(Fake(), "u0", steps=4, rows=3, controls=parse_controls(SPEC, label="dog"), captions=False, scale=1)
    assert res.image.shape == (3 * 6 + 2, 4 * 6 + 2, 1)
    cols = [res.image[2:6, 2 + 6 * c + 1 : 2 + 6 * c + 4].mean() for c in range(4)]
    assert cols == sorted(cols) and cols[0] < 10 and cols[-1] > 245
    assert (res.inputs["label"] == 1).all()
    labels = sweep(Fake(), "label", rows=2, captions=True, scale=2)
    assert labels.image.shape[2] == 3 and labels.image.shape[0] > 2 * (2 * 6 + 2)
    with pytest.raises(CtrlgenError, match="over the limit of 5"):
        sweep(Fake(), "u0", steps=3, rows=2, max_cells=5)


def test_caption_adds_margins_with_ink_and_shortens_long_titles():
    img = np.zeros((40, 90, 1), np.uint8)
    out = caption(img, col_titles=["a", "b", "c"], title="a title")
    assert out.shape[1] == 90 and out.shape[0] > 40 and out.shape[2] == 3
    margin = out[: out.shape[0] - 40]
    assert (margin < 128).any() and (margin == 255).any()
    assert np.array_equal(out[-40:, :, 0], img[:, :, 0])
    rows = caption(img, row_titles=["first", "second"])
    assert rows.shape[0] == 40 and rows.shape[1] > 90
    from ctrlgen.captions import _font

    font = _font(12)
    short = fit("a very long class name indeed", font, 40)
    assert short.endswith("…") and font.getlength(short) <= 40
