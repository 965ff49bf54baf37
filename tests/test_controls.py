"""Controls: one grammar for labels and codes (CLI, UI, API), and the grids with a line per class."""

import numpy as np
import pytest

from ctrlgen.controls import Controls, parse_controls
from ctrlgen.errors import CtrlgenError
from ctrlgen.grids import grid_inputs, picture, value_grid
from ctrlgen.spec import CategoricalCode, ContinuousCode, LatentSpec

SPEC = LatentSpec(
    noise_dim=8, output_kind="image", output_shape=(1, 4, 4), labels=("cat", "dog", "eel"),
    categorical=(CategoricalCode("c", 3),), continuous=(ContinuousCode("u0"), ContinuousCode("w", 0.0, 2.0)),
)
PLAIN = LatentSpec(noise_dim=4, output_kind="image", output_shape=(1, 4, 4), categorical=(CategoricalCode("c", 4),))


def test_codes_by_name_the_name_decides_the_kind():
    assert parse_controls(SPEC, codes="c=2, u0=0.5").fixed() == {"label": None, "cat": {"c": 2}, "cont": {"u0": 0.5}}
    assert parse_controls(SPEC, codes=["c=1", "w=1.5"]).fixed()["cont"] == {"w": 1.5}
    walk = parse_controls(SPEC, codes="u0=-1,1 c=0;w=2", keyframes=True)
    assert walk.keyframes() == (None, {"c": [0]}, {"u0": [-1.0, 1.0], "w": [2.0]})
    assert parse_controls(SPEC, codes="  ") == Controls()
    assert parse_controls(SPEC, codes="c=random u0=0").cat == {}  # "random" leaves a code drawn
    for text, msg in [("q=1", "unknown; this model's codes are: c, u0, w"), ("c=3", "out of range; use 0..2"),
                      ("u0=nan", "not finite"), ("c=x", "not an integer"), ("hello", "NAME=VALUE"), ("u0=", "no value"),
                      ("w=3", r"outside its range \[0, 2\]"), ("u0=-1,1", "not a number")]:
        with pytest.raises(CtrlgenError, match=msg):
            parse_controls(SPEC, codes=text)


def test_codes_text_is_read_in_linear_time_and_huge_numbers_are_one_line():
    """100,000 characters of codes from a UI request took minutes (a lazy regex, quadratic in the text) and
    held the whole server; numbers past float's range or int()'s 4,300 digits raised OverflowError/ValueError."""
    import time

    t0 = time.perf_counter()
    for text in ("x" * 100_000, "c=1 " + "u0" * 50_000, "u0=" + "1," * 50_000):
        with pytest.raises(CtrlgenError):
            parse_controls(SPEC, codes=text)
    assert time.perf_counter() - t0 < 5
    for kw, msg in [({"cont": {"u0": 10**400}}, "not finite"), ({"cat": {"c": 10**5000}}, "out of range"),
                    ({"cat": {"c": "9" * 5000}}, "not an integer"), ({"label": "9" * 5000}, "out of range"),
                    ({"codes": "c=1 c=" + "9" * 5000}, "given twice")]:
        with pytest.raises(CtrlgenError, match=msg):
            parse_controls(SPEC, **kw)


def test_cat_and_cont_options_check_the_kind_and_name_the_option():
    c = parse_controls(SPEC, cat=["c=2"], cont=[" u0 = 0.25 "])
    assert c.fixed() == {"label": None, "cat": {"c": 2}, "cont": {"u0": 0.25}}
    for kw, msg in [({"cat": ["c=9"]}, "--cat c=9 is out of range; use 0..2"), ({"cat": ["u0=1"]}, "categorical code 'u0' is unknown"),
                    ({"cont": ["c=1"]}, "continuous code 'c' is unknown"), ({"cat": ["c"]}, "--cat 'c' must look like NAME=VALUE"),
                    ({"cont": ["u0=abc"]}, "--cont u0='abc' is not a number")]:
        with pytest.raises(CtrlgenError, match=msg):
            parse_controls(SPEC, **kw)
    # UI controls: a mapping by name, dropdown strings and slider floats
    assert parse_controls(SPEC, cat={"c": "1"}, cont={"u0": 0.5, "w": 2.0}).fixed()["cont"] == {"u0": 0.5, "w": 2.0}
    assert parse_controls(SPEC, cat={"c": "random"}).cat == {}


def test_a_code_or_label_is_given_once():
    for kw in [{"cat": ["c=1", "c=7"]}, {"codes": "c=1", "cat": ["c=2"]}, {"codes": "u0=0 u0=1"}]:
        with pytest.raises(CtrlgenError, match="given twice"):
            parse_controls(SPEC, **kw)
    with pytest.raises(CtrlgenError, match="give one label, not 2"):
        parse_controls(SPEC, label="0,1")


def test_labels_by_name_or_index_all_and_random():
    assert parse_controls(SPEC, label="Dog").label == 1 and parse_controls(SPEC, label=2).label == 2
    assert parse_controls(SPEC, label=1.0).label == 1  # gradio numbers
    assert parse_controls(SPEC, label="random") == parse_controls(SPEC, label="") == Controls()
    assert parse_controls(SPEC, label="ALL").every_class and parse_controls(SPEC, label="all").label is None
    assert parse_controls(SPEC, label="0, eel", keyframes=True).labels == (0, 2)
    assert parse_controls(SPEC, label=["dog", "cat"], keyframes=True).labels == (1, 0)
    for kw, msg in [({"label": "hat"}, "label 'hat' is unknown"), ({"label": "all", "keyframes": True}, "one label per keyframe")]:
        with pytest.raises(CtrlgenError, match=msg):
            parse_controls(SPEC, **kw)
    for label in ("all", "1"):
        with pytest.raises(CtrlgenError, match="not class-conditional; drop --label"):
            parse_controls(PLAIN, label=label)


def test_with_cont_replaces_one_code():
    c = parse_controls(SPEC, codes="u0=0 c=1").with_cont("u0", [-1, 1])
    assert c.keyframes() == (None, {"c": [1]}, {"u0": [-1.0, 1.0]})


def test_value_grid_rows_columns_and_the_training_choice():
    rows = value_grid(SPEC, 10, "label")
    assert (rows.n, rows.per_value, rows.per_row) == (9, 3, 3) and rows.assignment().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    cols = value_grid(SPEC, 7, "label", columns=True)
    assert cols.per_row == 3 and cols.assignment().tolist() == [0, 1, 2, 0, 1, 2]
    assert value_grid(SPEC, 2, "label").n == 3  # at least one per class
    assert value_grid(SPEC, 100).factor == "label" and value_grid(PLAIN, 100).factor == "c"
    points = LatentSpec(noise_dim=2, output_kind="points", output_shape=(2,), labels=("a", "b"))
    assert value_grid(points, 10) is None and value_grid(points, 10, "label").n == 10
    with pytest.raises(CtrlgenError, match="not class-conditional"):
        value_grid(PLAIN, 10, "label")


def test_grid_inputs_keep_the_seed_and_set_the_factor():
    inputs, per_row = grid_inputs(PLAIN, 10, seed=3)
    drawn = PLAIN.sample(8, seed=3)
    assert per_row == 2 and inputs["code_cat"][:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(inputs["z"], drawn["z"])  # only the factor changes
    inputs, per_row = grid_inputs(SPEC, 6, seed=0, columns=True)
    assert per_row == 3 and inputs["label"].tolist() == [0, 1, 2, 0, 1, 2]
    plain = LatentSpec(noise_dim=4, output_kind="image", output_shape=(1, 4, 4))
    inputs, per_row = grid_inputs(plain, 10, seed=0)
    assert per_row == 4 and len(inputs["z"]) == 10
    pic = picture(SPEC, np.zeros((6, 1, 4, 4), np.float32), nrow=3, scale=2)
    assert pic.shape == (2 * (2 * 6 + 2), 2 * (3 * 6 + 2), 1)
