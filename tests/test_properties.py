"""Property-based tests (hypothesis): spec parsing and the CLI's value parsing never fail but with CtrlgenError.

* ``LatentSpec.from_dict`` / ``from_json`` on any JSON (and any text): a spec
  or a CtrlgenError, nothing else; every valid spec round-trips exactly.
* ``--label``, ``--cat``, ``--cont``, ``--fix``/UI codes and ``--set``: any
  string gives a value or a CtrlgenError; every valid value comes back as given.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import needs_fashion
from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import SPEC_FORMAT, CategoricalCode, ContinuousCode, LatentSpec

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,7}", fullmatch=True)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def valid_specs(draw) -> LatentSpec:
    kind = draw(st.sampled_from(["image", "points"]))
    shape = (draw(st.sampled_from([1, 3])), draw(st.integers(1, 64)), draw(st.integers(1, 64))) if kind == "image" else (draw(st.integers(1, 8)),)
    code_names = draw(st.lists(names, unique=True, max_size=5))
    split = draw(st.integers(0, len(code_names)))
    cats = tuple(CategoricalCode(n, draw(st.integers(2, 50))) for n in code_names[:split])
    conts = []
    for n in code_names[split:]:
        lo, hi = sorted(draw(st.lists(finite, min_size=2, max_size=2, unique=True)))
        conts.append(ContinuousCode(n, lo, hi))
    labels = draw(st.one_of(st.just([]), st.lists(st.text(min_size=1, max_size=10), min_size=2, max_size=12, unique=True)))
    extra = draw(st.dictionaries(names, st.integers() | st.text(max_size=5), max_size=3))
    return LatentSpec(noise_dim=draw(st.integers(1, 512)), output_kind=kind, output_shape=shape, noise=draw(st.sampled_from(["normal", "uniform"])),
                      labels=tuple(labels), categorical=cats, continuous=tuple(conts), extra=extra)


def spec_like(base: dict) -> st.SearchStrategy:
    """A valid spec's dict with some fields replaced by arbitrary JSON (to reach past the first checks)."""
    keys = sorted(base) + ["surprise"]
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=3).map(lambda ch: {**base, **ch})


BASE = LatentSpec(noise_dim=8, output_kind="image", output_shape=(1, 28, 28), labels=("a", "b"),
                  categorical=(CategoricalCode("c", 10),), continuous=(ContinuousCode("u0"),)).to_dict()


def only_ctrlgen_errors(fn, *args):
    try:
        return fn(*args)
    except CtrlgenError as e:
        assert "\n" not in str(e)
        return None


# --------------------------------------------------------------------------- spec parsing
@FAST
@given(json_values)
def test_from_dict_on_any_json_gives_a_spec_or_a_ctrlgen_error(value):
    only_ctrlgen_errors(LatentSpec.from_dict, value)


@FAST
@given(spec_like(BASE) | spec_like({**BASE, "output": {"kind": "points", "shape": [2]}}))
def test_from_dict_on_spec_like_json_gives_a_spec_or_a_ctrlgen_error(d):
    spec = only_ctrlgen_errors(LatentSpec.from_dict, d)
    if spec is not None:  # what was accepted is a valid spec that round-trips
        assert LatentSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), {"a": [1.0, float("inf")]}])
def test_spec_extra_that_json_cannot_write_is_refused_in_one_line(bad):
    """Found by the property above: an ``extra`` holding Infinity was accepted, then its spec could not be read back."""
    with pytest.raises(CtrlgenError, match="extra must hold only JSON values, no NaN or Infinity") as e:
        LatentSpec.from_dict({**BASE, "extra": {"": bad}})
    assert "\n" not in str(e.value)


@FAST
@given(st.text() | st.binary() | json_values.map(json.dumps))
def test_from_json_on_any_text_gives_a_spec_or_a_ctrlgen_error(text):
    only_ctrlgen_errors(LatentSpec.from_json, text)


def test_deeply_nested_json_is_a_ctrlgen_error():
    with pytest.raises(CtrlgenError, match="not valid JSON"):
        LatentSpec.from_json("[" * 100_000)


@FAST
@given(valid_specs())
def test_valid_specs_round_trip_exactly(spec):
    text = spec.to_json()
    again = LatentSpec.from_json(text)
    assert again == spec and again.to_json() == text
    assert json.loads(text)["format"] == SPEC_FORMAT
    assert LatentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# --------------------------------------------------------------------------- CLI value parsing
SPEC = LatentSpec(noise_dim=8, output_kind="image", output_shape=(1, 28, 28), labels=("T-shirt/top", "Trouser", "Bag"),
                  categorical=(CategoricalCode("c", 10),), continuous=(ContinuousCode("u0"), ContinuousCode("u1", -2.5, 3.0)))


@FAST
@given(st.text())
def test_label_parsing_gives_an_index_or_a_ctrlgen_error(text):
    idx = only_ctrlgen_errors(SPEC.label_index, text)
    assert idx is None or 0 <= idx < SPEC.n_classes


@FAST
@given(st.integers(0, 2), st.sampled_from([str.lower, str.upper, str]))
def test_labels_round_trip_as_index_or_name(i, case):
    assert SPEC.label_index(str(i)) == i and SPEC.label_index(i) == i
    assert SPEC.label_index(case(SPEC.labels[i])) == i


@FAST
@given(st.lists(st.text(max_size=12), max_size=3), st.lists(st.text(max_size=12), max_size=3))
def test_cat_and_cont_options_give_values_or_a_ctrlgen_error(cat, cont):
    from ctrlgen.controls import parse_controls

    out = only_ctrlgen_errors(lambda: parse_controls(SPEC, cat=cat, cont=cont))
    if out is not None:
        fixed = out.fixed()
        assert all(0 <= v < 10 for v in fixed["cat"].values())
        assert all(c.low <= fixed["cont"][c.name] <= c.high for c in SPEC.continuous if c.name in fixed["cont"])


@FAST
@given(st.integers(0, 9), st.floats(-1, 1), st.floats(-2.5, 3.0))
def test_cat_and_cont_options_round_trip(c, u0, u1):
    from ctrlgen.controls import parse_controls

    got = parse_controls(SPEC, cat=[f"c={c}"], cont=[f"u0={u0!r}", f" u1 = {u1!r} "]).fixed()
    assert (got["cat"], got["cont"]) == ({"c": c}, {"u0": u0, "u1": u1})


@FAST
@given(st.text(max_size=30), st.booleans(), st.one_of(st.none(), st.text(max_size=12)))
def test_code_text_and_labels_give_values_or_a_ctrlgen_error(text, keyframes, label):
    from ctrlgen.controls import parse_controls

    only_ctrlgen_errors(lambda: parse_controls(SPEC, label=label, codes=text, keyframes=keyframes))


@FAST
@given(st.integers(0, 9), st.lists(st.floats(-1, 1), min_size=1, max_size=4), st.sampled_from([" ", ", ", "; ", "  "]))
def test_code_text_round_trips(c, u0, sep):
    from ctrlgen.controls import parse_controls

    got = parse_controls(SPEC, codes=f"c={c}{sep}u0={u0[0]!r}").fixed()
    assert (got["cat"], got["cont"]) == ({"c": c}, {"u0": u0[0]})
    walk = parse_controls(SPEC, codes=f"u0={','.join(map(repr, u0))}{sep}c={c}", keyframes=True)
    assert walk.keyframes()[1:] == ({"c": [c]}, {"u0": u0})


# --------------------------------------------------------------------------- --set overrides
RING8 = None


def ring8_recipe() -> dict:
    global RING8
    if RING8 is None:
        from ctrlgen.train.config import read_recipe

        RING8 = read_recipe("ring8")
    return RING8


def build(overrides: list[str]):
    from ctrlgen.train.config import TrainConfig, apply_overrides

    return TrainConfig.from_dict(apply_overrides(ring8_recipe(), overrides), where="recipe ring8")


override_keys = st.sampled_from(["lr_g", "steps", "seed", "net.g_width", "net.family", "techniques.ema.decay", "techniques.ema",
                                 "techniques", "data", "categorical", "progress", "x", "net", "net.x.y", ""])


@FAST
@given(st.lists(st.tuples(override_keys | st.text(max_size=10), st.text(max_size=12)), max_size=3))
def test_set_overrides_give_a_config_or_a_ctrlgen_error(pairs):
    only_ctrlgen_errors(build, [f"{k}={v}" for k, v in pairs])


@FAST
@given(st.text(max_size=20))
def test_any_override_string_parses_or_is_a_ctrlgen_error(item):
    from ctrlgen.train.config import parse_override

    only_ctrlgen_errors(parse_override, item)


def toml_string(s: str) -> str:
    """A TOML basic string: escapes for the quote, the backslash and control characters, the rest as is."""
    return '"' + "".join(f"\\u{ord(ch):04x}" if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in s) + '"'


@FAST
@given(st.floats(1e-8, 1.0), st.integers(1, 4096), st.integers(0, 2**31), st.text(max_size=12))
def test_set_overrides_round_trip(lr, width, seed, folder):
    cfg = build([f"lr_g={lr!r}", f"net.g_width={width}", f"seed={seed}", f"data_dir={toml_string(folder)}", "progress=false"])
    assert (cfg.lr_g, cfg.net.g_width, cfg.seed, cfg.data_dir, cfg.progress) == (lr, width, seed, folder, False)


# --------------------------------------------------------------------------- the same through the real command
@needs_fashion
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(label=st.none() | st.text(max_size=6) | st.integers(-3, 12).map(str),
       cat=st.lists(st.text(max_size=6) | st.integers(-2, 12).map(lambda v: f"c={v}"), max_size=2),
       cont=st.lists(st.text(max_size=6) | st.floats().map(lambda v: f"u0={v!r}"), max_size=2))
def test_generate_with_any_values_succeeds_or_says_one_line(tiny_models, tmp_path, label, cat, cont):
    from typer.testing import CliRunner

    from ctrlgen.serve.cli import app

    model = tiny_models["cgan" if label is not None else "infogan"]
    out = tmp_path / f"o{len(list(tmp_path.iterdir()))}.npz"
    args = ["generate", str(model), "-n", "2", "-o", str(out)]
    args += ["--label", label] if label is not None else [a for c in cat for a in ("--cat", c)] + [a for c in cont for a in ("--cont", c)]
    result = CliRunner().invoke(app, args)
    lines = [x for x in result.output.splitlines() if x.strip()]
    if result.exit_code == 0:
        assert out.is_file() and lines[-1].startswith("Wrote 2 samples")
    else:
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert not out.exists() and (result.exception is None or isinstance(result.exception, SystemExit)), result.exception
