"""ctrlgen export --triton: the model repository's config.pbtxt, read back by a small parser of
protobuf's text format, must describe the ONNX file beside it (names, data types, dims), and
ONNX Runtime must accept batches shaped the way Triton builds them from that config."""

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import assert_one_line_error as one_line_error
from conftest import needs_fashion
from conftest import run_cli as run
from ctrlgen.models import models_dir

ONNX_TO_TRITON = {1: "TYPE_FP32", 7: "TYPE_INT64"}  # the element types ctrlgen models use
NUMPY = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64}


# ---------------------------------------------------------------------- a parser for the text format
_TOKEN = re.compile(r'\s*(?:#[^\n]*\n\s*)*("(?:[^"\\]|\\.)*"|[{}\[\]:,]|[A-Za-z0-9_.+-]+)')


def parse_pbtxt(text: str) -> dict:
    """Protobuf text format -> {field: [values]} (nested messages as dicts; repeated fields as lists)."""
    tokens, pos = [], 0
    text = text.rstrip() + "\n"
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        assert m, f"cannot tokenize at {text[pos:pos + 30]!r}"
        tokens.append(m.group(1))
        pos = m.end()
    tokens = [t for t in tokens if t]

    def scalar(tok):
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def value(i):
        if tokens[i] == "{":
            return message(i + 1, "}")
        return scalar(tokens[i]), i + 1

    def message(i, end):
        out: dict = {}
        while i < len(tokens) and tokens[i] != end:
            key = tokens[i]
            i += 1
            if tokens[i] == ":":
                i += 1
            if tokens[i] == "[":
                i += 1
                items = []
                while tokens[i] != "]":
                    v, i = value(i)
                    items.append(v)
                    if tokens[i] == ",":
                        i += 1
                i += 1
                out.setdefault(key, []).extend(items)
            else:
                v, i = value(i)
                out.setdefault(key, []).append(v)
        return out, i + 1

    parsed, _ = message(0, None)
    return parsed


def test_parser_reads_what_it_should():
    got = parse_pbtxt('# c\nname: "m"\nn: 3\ninput [ { dims: [ 1, 2 ] reshape: { shape: [ ] } }, { dims: [ 4 ] } ]\nk { a: B }\n')
    assert got == {"name": ["m"], "n": [3], "input": [{"dims": [1, 2], "reshape": [{"shape": []}]}, {"dims": [4]}], "k": [{"a": ["B"]}]}


# ---------------------------------------------------------------------- the config against the graph
def check_repository(model_dir, source_onnx, name, *, kind="KIND_GPU", count=1, max_batch=1024):
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    onnx_path = model_dir / "1" / "model.onnx"
    assert cfg["name"] == [name] and cfg["platform"] == ["onnxruntime_onnx"] and cfg["max_batch_size"] == [max_batch]
    assert cfg["instance_group"] == [{"count": [count], "kind": [kind]}]
    assert cfg["dynamic_batching"][0]["max_queue_delay_microseconds"][0] >= 0
    model = onnx.load(str(onnx_path))
    if source_onnx is not None:
        assert onnx_path.read_bytes() == source_onnx.read_bytes()
    for section, graph_values in (("input", model.graph.input), ("output", model.graph.output)):
        entries = {e["name"][0]: e for e in cfg[section]}
        assert list(entries) == [v.name for v in graph_values]  # the same tensors, in the graph's order
        for v in graph_values:
            e, t = entries[v.name], v.type.tensor_type
            assert e["data_type"] == [ONNX_TO_TRITON[t.elem_type]]
            assert t.shape.dim[0].dim_param, "the batch axis is dynamic"
            per_sample = [d.dim_value for d in t.shape.dim[1:]]
            if per_sample:
                assert e["dims"] == per_sample and "reshape" not in e
            else:  # a [batch] tensor: Triton's idiom
                assert e["dims"] == [1] and e["reshape"] == [{"shape": []}]
    return cfg, onnx_path


def run_as_triton_would(cfg, onnx_path, batch=5):
    """Feed ONNX Runtime a batch built from the config alone: [batch, *dims], reshaped where the config says."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for e in cfg["input"]:
        shape = e["reshape"][0]["shape"] if "reshape" in e else e["dims"]
        dtype = NUMPY[e["data_type"][0]]
        feeds[e["name"][0]] = (rng.standard_normal((batch, *shape)) if dtype == np.float32 else rng.integers(0, 2, (batch, *shape))).astype(dtype)
    outs = sess.run([e["name"][0] for e in cfg["output"]], feeds)
    for e, out in zip(cfg["output"], outs, strict=True):
        assert out.shape == (batch, *e["dims"]) and out.dtype == NUMPY[e["data_type"][0]]


@pytest.mark.parametrize("model", ["fashion-cgan", "ring8"])
def test_repository_from_an_onnx_file_matches_the_graph(tmp_path, model):
    src = models_dir() / f"{model}.onnx"
    run("export", src, "--triton", tmp_path / "repo")
    cfg, onnx_path = check_repository(tmp_path / "repo" / model, src, model)
    run_as_triton_would(cfg, onnx_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging folder left behind


def test_options_change_the_config_and_force_replaces(tmp_path):
    src, repo = models_dir() / "ring8.onnx", tmp_path / "repo"
    run("export", src, "--triton", repo, "--triton-name", "ring", "--triton-kind", "cpu", "--triton-instances", 3, "--max-batch-size", 64)
    check_repository(repo / "ring", src, "ring", kind="KIND_CPU", count=3, max_batch=64)
    one_line_error(run("export", src, "--triton", repo, "--triton-name", "ring", ok=False), "already exists; pass --force")
    other = models_dir() / "grid25.onnx"
    run("export", other, "--triton", repo, "--triton-name", "ring", "--force")
    check_repository(repo / "ring", other, "ring")
    run("export", src, "--triton", repo)  # a second model beside the first
    assert sorted(p.name for p in repo.iterdir()) == ["ring", "ring8"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_bad_input_is_one_line(tmp_path):
    src = models_dir() / "ring8.onnx"
    one_line_error(run("export", tmp_path / "none.onnx", "--triton", tmp_path / "r", ok=False), "does not exist")
    one_line_error(run("export", src, "--triton", tmp_path / "r", "--triton-kind", "tpu", ok=False), "use one of gpu, cpu")
    one_line_error(run("export", src, "--triton", tmp_path / "r", "--triton-name", "../x", ok=False), "not a usable folder name")
    (tmp_path / "file").write_text("x")
    one_line_error(run("export", src, "--triton", tmp_path / "file", ok=False), "is a file")
    one_line_error(run("export", src, "--triton", tmp_path / "r", "--eval", ok=False), "--eval measures an .onnx file")
    # an ONNX file that ctrlgen did not write: no spec, so no interface to describe
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", 2])
    foreign = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
    onnx.save(foreign, tmp_path / "foreign.onnx")
    one_line_error(run("export", tmp_path / "foreign.onnx", "--triton", tmp_path / "r", ok=False), "no ctrlgen.spec metadata")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    one_line_error(run("export", tmp_path / "junk.onnx", "--triton", tmp_path / "r", ok=False), "not a readable ONNX file")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.slow
@needs_fashion
def test_repository_from_a_run_directory_with_the_q_head(tiny_runs, tmp_path):
    """A run directory is exported (and checked against torch) first; InfoGAN's Q output is described too."""
    run("export", tiny_runs["infogan"], "--triton", tmp_path / "repo", "--q-head", "--triton-name", "info")
    cfg, onnx_path = check_repository(tmp_path / "repo" / "info", None, "info")
    assert [e["name"][0] for e in cfg["input"]] == ["z", "code_cat", "code_cont"]
    assert [e["name"][0] for e in cfg["output"]] == ["sample", "q_code_cont"]
    run_as_triton_would(cfg, onnx_path)
