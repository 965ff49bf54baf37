"""Property-based fuzzing of everything ctrlgen reads from a file (issue 17).

For any input: the ONNX spec metadata, a checkpoint header, a run's config.json,
a recipe (TOML) and an IDX header either load or fail with a ``CtrlgenError``
(one line, which the CLI prints); never another exception, and a failed export
leaves no file behind.  Kept fast: modest ``max_examples`` and a deadline.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctrlgen.errors import CtrlgenError

FAST = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)


def only_ctrlgen_errors(fn, *args, **kw):
    """Call ``fn``; a CtrlgenError is fine (and must be one line), anything else fails the test."""
    try:
        return fn(*args, **kw)
    except CtrlgenError as e:
        assert "\n" not in str(e)
        return None


# --------------------------------------------------------------------------- ONNX spec metadata
SPEC = {"format": 1, "noise_dim": 62, "noise": "normal", "output": {"kind": "image", "shape": [1, 28, 28]},
        "labels": ["a", "b"], "categorical": [{"name": "c", "n": 10}], "continuous": [{"name": "u0", "low": -1.0, "high": 1.0}], "extra": {}}


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_spec_from_any_text(text):
    from ctrlgen.spec import LatentSpec

    only_ctrlgen_errors(LatentSpec.from_json, text)


@FAST
@given(st.sampled_from(sorted(SPEC)), json_values, st.sampled_from(["output", "categorical", "continuous", None]), json_values)
def test_spec_with_any_field_changed(key, value, inner, inner_value):
    from ctrlgen.spec import LatentSpec

    d = json.loads(json.dumps(SPEC))
    d[key] = value
    if inner == "output" and isinstance(d.get("output"), dict):
        d["output"]["shape"] = inner_value
    elif inner in ("categorical", "continuous") and isinstance(d.get(inner), list) and d[inner] and isinstance(d[inner][0], dict):
        d[inner][0]["n" if inner == "categorical" else "low"] = inner_value
    text = json.dumps(d, allow_nan=True)
    spec = only_ctrlgen_errors(LatentSpec.from_json, text)
    if spec is not None:  # whatever loads is usable: drawing inputs works and they validate
        x = spec.sample(3, 0)
        spec.validate_inputs(x)
        assert all(math.isfinite(c.low) and math.isfinite(c.high) for c in spec.continuous)


# --------------------------------------------------------------------------- checkpoint headers
@pytest.fixture(scope="module")
def ring8_checkpoint(tiny_runs):
    from ctrlgen.checkpoint import list_checkpoints

    return list_checkpoints(tiny_runs["ring8"])[-1]


HEADER_KEYS = ["step", "total_steps", "batches_drawn", "wall_time", "spec", "net", "config", "opt_g.param_groups", "data", "params",
               "nonfinite_events", "versions"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from(HEADER_KEYS), value=json_values, raw=st.booleans(), text=st.text(max_size=30))
def test_checkpoint_header_with_any_field(tmp_path_factory, ring8_checkpoint, key, value, raw, text):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from ctrlgen.export import export

    with safe_open(str(ring8_checkpoint), framework="pt") as f:
        meta = dict(f.metadata())
    meta[key] = text if raw else json.dumps(value, allow_nan=True)  # raw: not even JSON
    folder = tmp_path_factory.mktemp("ck")
    path = folder / "step-00000008.safetensors"
    save_file(load_file(str(ring8_checkpoint)), str(path), metadata=meta)
    out = folder / "m.onnx"
    if only_ctrlgen_errors(export, path, out) is None:
        assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no partial model


# --------------------------------------------------------------------------- config.json
@FAST
@given(st.dictionaries(st.sampled_from(["recipe", "data", "steps", "seed", "lr_g", "batch_size", "net", "latent", "techniques", "epochs",
                                        "image_size", "egan", "ensemble", "device", "conditional", "beta1"]), json_values, max_size=5))
def test_train_config_from_any_table(d):
    from ctrlgen.train.config import TrainConfig

    cfg = only_ctrlgen_errors(TrainConfig.from_dict, {"data": "ring8", "conditional": False, "net": {"family": "mlp"}, **d})
    if cfg is not None:
        assert math.isfinite(cfg.lr_g) and math.isfinite(cfg.lr_d) and 0 <= cfg.seed < 2**32


@FAST
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()))
def test_run_config_json_of_any_bytes(tmp_path_factory, data):
    from ctrlgen.train.run_state import read_run_config

    run = tmp_path_factory.mktemp("run")
    (run / "config.json").write_bytes(data)
    only_ctrlgen_errors(read_run_config, run, {}, {"steps"})


# --------------------------------------------------------------------------- recipes (TOML)
toml_values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str), st.floats().map(lambda f: repr(f).replace("inf", "inf")),
                        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), max_size=8).map(lambda s: f'"{s}"'),
                        st.sampled_from(["true", "[]", "[1, 2]", "{}", "{ a = 1 }", "nan", "-inf", "[[1]]"]))


@FAST
@given(st.lists(st.tuples(st.sampled_from(["lr_g", "seed", "batch_size", "steps", "epochs", "latent.noise_dim", "net.g_width", "net.depth",
                                           "techniques.ema", "techniques.ema.decay", "loss", "n_critic", "image_size", "extends", "mode"]),
                          toml_values), max_size=4),
       st.binary(max_size=60))
def test_recipe_of_any_values_or_bytes(tmp_path_factory, items, junk):
    from ctrlgen.train.config import TrainConfig
    from ctrlgen.train.recipe import read_recipe

    folder = tmp_path_factory.mktemp("recipe")
    body = 'data = "ring8"\nconditional = false\n' + "".join(f"{k} = {v}\n" for k, v in items if "." not in k)
    body += "".join(f"[{k.rsplit('.', 1)[0]}]\n{k.rsplit('.', 1)[1]} = {v}\n" for k, v in items if "." in k)
    for name, data in (("r.toml", body.encode()), ("junk.toml", junk)):
        (folder / name).write_bytes(data)
        d = only_ctrlgen_errors(read_recipe, str(folder / name))
        if d is not None:
            d.setdefault("net", {}) if isinstance(d.get("net", {}), dict) else None
            if isinstance(d.get("net"), dict):
                d["net"].setdefault("family", "mlp")
            only_ctrlgen_errors(TrainConfig.from_dict, d)


# --------------------------------------------------------------------------- IDX headers
@FAST
@given(dtype=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]), ndim=st.integers(0, 255),
       dims=st.lists(st.integers(0, 2**32 - 1), max_size=6), tail=st.binary(max_size=64), gz=st.booleans())
def test_idx_header_of_any_shape(tmp_path_factory, dtype, ndim, dims, tail, gz):
    import gzip

    from ctrlgen.data import read_idx

    raw = bytes([0, 0, dtype, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims) + tail
    if gz:
        raw = gzip.compress(raw, mtime=0)
    path = tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    arr = only_ctrlgen_errors(read_idx, path)
    if arr is not None:
        assert isinstance(arr, np.ndarray) and arr.nbytes <= len(tail)


@FAST
@given(st.binary(max_size=200))
def test_idx_folder_of_any_label_bytes(tmp_path_factory, labels):
    from ctrlgen.data import load_idx_split

    folder = tmp_path_factory.mktemp("idxf")
    images = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(8)
    (folder / "train-images-idx3-ubyte").write_bytes(images)
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2]) + labels[:2] if len(labels) % 2 else labels)
    data = only_ctrlgen_errors(load_idx_split, folder)
    if data is not None:
        assert len(data.class_names) <= 1000


@pytest.fixture(scope="module")
def ring8_onnx(tiny_models):
    import onnx

    return onnx.load(str(tiny_models["ring8"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(["noise_dim", "output", "labels", "categorical", "continuous", "noise", "extra"]), json_values,
       st.one_of(st.none(), st.integers(1, 4), st.sampled_from(["image", "points"])))
def test_a_model_whose_spec_is_anything_loads_and_generates_or_is_one_line(tmp_path_factory, ring8_onnx, key, value, size):
    """A ring8 graph carrying a fuzzed spec: whatever Runtime.from_file accepts really generates what its spec says."""
    from ctrlgen.runtime import Runtime

    m = type(ring8_onnx)()
    m.CopyFrom(ring8_onnx)
    props = {p.key: p.value for p in m.metadata_props}
    d = json.loads(props["ctrlgen.spec"])
    d[key] = value
    if isinstance(size, int):
        d["output"] = {"kind": "points", "shape": [size]}
    elif size is not None:
        d["output"] = {"kind": size, "shape": [1, 28, 28] if size == "image" else [2]}
    props["ctrlgen.spec"] = json.dumps(d, allow_nan=True)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    path.write_bytes(m.SerializeToString())
    rt = only_ctrlgen_errors(Runtime.from_file, path)
    if rt is not None:
        samples, _ = rt.generate(5, seed=1)
        assert samples.shape == (5, *rt.spec.output_shape) and samples.dtype == np.float32
