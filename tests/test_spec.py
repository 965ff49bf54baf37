import json

import numpy as np
import pytest

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import SPEC_FORMAT, CategoricalCode, ContinuousCode, LatentSpec


def infogan_spec():
    return LatentSpec(
        noise_dim=62, output_kind="image", output_shape=(1, 28, 28),
        categorical=(CategoricalCode("c", 10),), continuous=(ContinuousCode("u0"), ContinuousCode("u1", -2, 3)),
    )


def cgan_spec():
    return LatentSpec(noise_dim=8, output_kind="image", output_shape=(1, 28, 28), labels=("a", "b", "c"))


def test_json_round_trip_is_exact():
    for spec in (infogan_spec(), cgan_spec()):
        again = LatentSpec.from_json(spec.to_json())
        assert again == spec
        assert again.to_json() == spec.to_json()
        assert json.loads(spec.to_json())["format"] == SPEC_FORMAT


def test_input_names_follow_the_interface():
    assert infogan_spec().input_names == ("z", "code_cat", "code_cont")
    assert cgan_spec().input_names == ("z", "label")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(noise_dim=0), "noise_dim"),
        (dict(noise="cauchy"), "noise"),
        (dict(output_kind="audio"), "output kind"),
        (dict(output_shape=(1, 28)), "shape"),
        (dict(labels=("only",)), "at least 2"),
        (dict(labels=("a", "a")), "unique"),
    ],
)
def test_invalid_specs_are_rejected(kwargs, message):
    base = dict(noise_dim=4, output_kind="image", output_shape=(1, 28, 28))
    base.update(kwargs)
    with pytest.raises(CtrlgenError, match=message):
        LatentSpec(**base)


def test_future_format_is_refused_with_upgrade_hint():
    d = cgan_spec().to_dict()
    d["format"] = SPEC_FORMAT + 1
    with pytest.raises(CtrlgenError, match="upgrade ctrlgen"):
        LatentSpec.from_dict(d)


def test_unknown_fields_and_bad_json_are_refused():
    d = cgan_spec().to_dict()
    d["surprise"] = 1
    with pytest.raises(CtrlgenError, match="unknown field"):
        LatentSpec.from_dict(d)
    with pytest.raises(CtrlgenError, match="not valid JSON"):
        LatentSpec.from_json("{nope")


def test_sampling_depends_only_on_seed_and_index():
    spec = infogan_spec()
    whole = spec.sample(3000, seed=7)
    part = spec.sample(1000, seed=7, start=1500)
    for k in whole:
        np.testing.assert_array_equal(whole[k][1500:2500], part[k])
    other = spec.sample(10, seed=8)
    assert not np.array_equal(other["z"], whole["z"][:10])
    assert whole["code_cat"].min() >= 0 and whole["code_cat"].max() == 9
    assert whole["code_cont"][:, 1].min() >= -2 and whole["code_cont"][:, 1].max() <= 3


def test_truncation_bounds_z():
    z = cgan_spec().sample(500, seed=0, truncation=0.5)["z"]
    assert np.abs(z).max() <= 0.5


def test_validate_inputs_names_the_problem():
    spec = cgan_spec()
    good = spec.sample(4, 0)
    spec.validate_inputs(good)
    cases = [
        ({**good, "label": np.array([0, 1, 2, 3])}, "label 3 is out of range"),
        ({**good, "z": good["z"][:, :3]}, "shape"),
        ({"z": good["z"]}, "missing"),
        ({**good, "code_cat": np.zeros((4, 1))}, "unexpected"),
        ({**good, "z": np.full((4, 8), np.nan, np.float32)}, "NaN"),
        ({**good, "label": np.array([0, 1])}, "batch"),
    ]
    for inputs, message in cases:
        with pytest.raises(CtrlgenError, match=message):
            spec.validate_inputs(inputs)


def test_continuous_codes_outside_range_need_extrapolate():
    spec = infogan_spec()
    x = spec.sample(2, 0)
    x["code_cont"][:, 0] = 1.5
    with pytest.raises(CtrlgenError, match="outside its range"):
        spec.validate_inputs(x)
    spec.validate_inputs(x, extrapolate=True)


def test_label_names_resolve_case_insensitively():
    spec = cgan_spec()
    assert spec.label_index("B") == 1
    assert spec.label_index("2") == 2
    with pytest.raises(CtrlgenError, match="unknown"):
        spec.label_index("z")
