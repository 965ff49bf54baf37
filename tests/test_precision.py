"""Reduced precision: the exact lowering, int8 export with its checks, the torch bf16 runtime, bad names."""

import json

import numpy as np
import pytest
import torch
from test_cli import assert_one_line_error
from torch import nn
from typer.testing import CliRunner

from conftest import needs_fashion
from ctrlgen.errors import CtrlgenError
from ctrlgen.lowering import SubPixelChain, SubPixelConvTranspose, lower
from ctrlgen.nets import Generator, NetConfig
from ctrlgen.precision import INT8_MEAN_TOL
from ctrlgen.runtime import Runtime
from ctrlgen.serve.cli import app
from ctrlgen.spec import LatentSpec

runner = CliRunner()


@pytest.mark.parametrize("size", [3, 7, 14])
def test_subpixel_form_equals_the_transposed_conv(size):
    torch.manual_seed(size)
    ct = nn.ConvTranspose2d(5, 3, 4, 2, 1)
    x = torch.randn(2, 5, size, size)
    got = SubPixelConvTranspose(ct)(x)
    assert got.shape == (2, 3, 2 * size, 2 * size)
    torch.testing.assert_close(got, ct(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size, g_fc", [(28, 0), (28, 32), (32, 0), (64, 0)])
def test_lowering_folds_batchnorm_and_keeps_the_outputs(size, g_fc):
    """BatchNorm folded, ConvTransposes in sub-pixel form, consecutive ones chained (no shuffle between
    them): the same images, for 2, 3 and 4 upsampling layers."""
    spec = LatentSpec(noise_dim=16, output_kind="image", output_shape=(1, size, size), labels=tuple("abcdefghij"))
    torch.manual_seed(size + g_fc)
    g = Generator(spec, NetConfig(g_width=8, g_fc=g_fc))
    for m in g.modules():  # non-trivial running statistics, as after training
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    g.eval()
    low = lower(g)
    kinds = {type(m) for m in low.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.BatchNorm1d not in kinds and nn.BatchNorm2d not in kinds
    assert SubPixelChain in kinds  # the first two upsampling layers, with no shuffle between them
    x = {k: torch.from_numpy(v) for k, v in spec.sample(9, seed=1).items()}
    with torch.no_grad():
        torch.testing.assert_close(low(**x), g(**x), atol=1e-5, rtol=1e-4)
    assert g.training is False and any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())  # g itself untouched


@pytest.mark.parametrize("size, g_fc", [(28, 0), (28, 32), (32, 0)])
def test_lowering_folds_virtual_batchnorm_and_keeps_the_outputs(size, g_fc):
    """VBN's reference statistics go into the layer before it (ResidualVBN keeps the per-example part):
    the same images, and every folded layer's output has about unit variance per channel on the
    reference batch (against raw spreads over a factor 400 here), which is what lets one int8 scale per
    tensor serve all its channels."""
    from ctrlgen.lowering import ResidualVBN
    from ctrlgen.vbn import VirtualBatchNorm

    spec = LatentSpec(noise_dim=16, output_kind="image", output_shape=(1, size, size), labels=tuple("abcdefghij"))
    torch.manual_seed(size + g_fc)
    g = Generator(spec, NetConfig(g_width=8, g_fc=g_fc, g_vbn=16))
    for m in g.modules():  # channels of very different spread, as after training
        if isinstance(m, VirtualBatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    for m in g.body:  # output channels scaled by 0.05 ... 20
        if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            linear = isinstance(m, nn.Linear)
            scale = torch.rand(m.weight.shape[0 if linear else 1]) * 20 + 0.05
            m.weight.data.mul_(scale.view((-1, 1) if linear else (1, -1, 1, 1)))
    g.train()
    ref = {k: torch.from_numpy(v) for k, v in spec.sample(4, seed=2).items()}
    with torch.no_grad():
        g(**ref)  # a training pass sets the reference statistics for these weights
    g.eval()
    low = lower(g)
    assert sum(isinstance(m, ResidualVBN) for m in low.modules()) == sum(isinstance(m, VirtualBatchNorm) for m in g.modules()) > 0
    assert not any(isinstance(m, VirtualBatchNorm) for m in low.modules())
    x = {k: torch.from_numpy(v) for k, v in spec.sample(9, seed=1).items()}
    with torch.no_grad():
        torch.testing.assert_close(low(**x), g(**x), atol=1e-5, rtol=1e-4)
        h = low.input(**{name: getattr(g, f"vbn_ref_{name}") for name in g.ref_names})
        vbns, first = iter([m for m in g.body if isinstance(m, VirtualBatchNorm)]), True
        for m in low.body:
            if isinstance(m, ResidualVBN):  # h: the folded layer's output on the reference batch
                v = next(vbns)
                var = v.ref_sq - v.ref_mean**2
                spread = h.transpose(0, 1).reshape(h.shape[1], -1).std(1, unbiased=False)
                want = torch.sqrt(var / (var + v.eps))  # 1 but for ε, at the first VBN; deeper, the eval pass
                # normalizes the reference rows with their own statistics mixed in (weight 1/17 here), so only about
                tol = 1e-3 if first else 0.25
                torch.testing.assert_close(spread, want, atol=tol, rtol=tol)
                first = False
            h = m(h)


def test_int8_keeps_the_layer_before_tanh_and_the_normalization_in_fp32(tmp_path):
    """The image logits before tanh span a wide range that one uint8 scale rounds visibly, so the conv
    making them stays fp32; the other convs and the Gemms are int8."""
    import onnx

    from ctrlgen.export import OnnxInterface, _torch_export
    from ctrlgen.precision import before_tanh, quantize_int8

    spec = LatentSpec(noise_dim=16, output_kind="image", output_shape=(1, 28, 28), labels=tuple("abcdefghij"))
    torch.manual_seed(0)
    g = Generator(spec, NetConfig(g_width=8, g_fc=32, g_vbn=8)).eval()
    low, q = tmp_path / "low.onnx", tmp_path / "int8.onnx"
    _torch_export(OnnxInterface(lower(g), spec).eval(), spec, low)
    (last,) = before_tanh(str(low))
    quantize_int8(str(low), str(q), spec)
    graph = onnx.load(str(q)).graph
    dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    layers = {n.name: n for n in graph.node if n.op_type in ("Conv", "Gemm")}
    assert last in layers and not set(layers[last].input) & dq_out  # fp32 input and weights
    assert all(set(n.input[:2]) <= dq_out for name, n in layers.items() if name != last) and len(layers) >= 4


@needs_fashion
@pytest.mark.slow
def test_int8_export_writes_a_checked_file_that_generate_uses(tiny_runs, tmp_path):
    from ctrlgen.card import read_metadata
    from ctrlgen.export import export

    out = tmp_path / "cgan-int8.onnx"
    rep = export(tiny_runs["cgan"], out, precision="int8", quality_n=1000)
    meta = read_metadata(out)
    fp32 = Runtime.from_file(export(tiny_runs["cgan"], tmp_path / "cgan.onnx").path)
    assert json.loads(meta["ctrlgen.spec"]) == json.loads(fp32.spec.to_json())
    card = json.loads(meta["ctrlgen.card"])
    assert card["precision"] == "int8" and card["name"] == fp32.card["name"] and card["steps"] == fp32.card["steps"]
    assert card["export_parity_max_abs_diff"] < 1e-4  # the lowered fp32 graph is exact
    assert 0 < card["int8_vs_fp32_mean_abs_diff"] <= INT8_MEAN_TOL
    q = card["quality_check"]
    assert q["n"] == 1000 and abs(q["fp32"]["conditional_accuracy"] - q["reduced"]["conditional_accuracy"]) <= 0.01
    assert q["reduced"]["fd"] <= 1.1 * q["fp32"]["fd"]
    rt = Runtime.from_file(out, precision="int8")
    assert rt.precision == "int8" and rep.precision == "int8"
    ops = {n.op_type for n in __import__("onnx").load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "DepthToSpace"} <= ops and "ConvTranspose" not in ops
    a, _ = rt.generate(37, seed=3, label="Trouser")
    b, _ = fp32.generate(37, seed=3, label="Trouser")
    assert a.shape == b.shape and np.abs(a - b).mean() <= INT8_MEAN_TOL
    result = runner.invoke(app, ["generate", str(out), "--n", "20", "--label", "1", "-o", str(tmp_path / "s.npz")])
    assert result.exit_code == 0 and "int8" in result.output, result.output


@needs_fashion
def test_bf16_torch_runtime_is_close_to_fp32(tiny_runs):
    fp32 = Runtime.from_file(tiny_runs["cgan"])
    bf16 = Runtime.from_file(tiny_runs["cgan"], precision="bf16")
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    a, _ = bf16.generate(16, seed=0)
    b, _ = fp32.generate(16, seed=0)
    assert a.dtype == np.float32 and 0 < np.abs(a - b).mean() < 0.02


@needs_fashion
def test_bad_precision_is_one_line(tiny_runs, tiny_models, tmp_path):
    cases = [
        (["export", tiny_runs["cgan"], "--precision", "fp16", "-o", tmp_path / "a.onnx"], "precision 'fp16' is unknown"),
        (["export", tiny_runs["cgan"], "--precision", "bf16", "-o", tmp_path / "b.onnx"], "no bf16 MatMul/Gemm kernels"),
        (["export", tiny_runs["cgan"], "--precision", "int8", "--q-head", "-o", tmp_path / "c.onnx"], "fp32 only"),
        (["export", tiny_runs["ring8"], "--precision", "int8", "-o", tmp_path / "d.onnx"], "image generators"),
        (["generate", tiny_runs["cgan"], "--precision", "int8", "-o", tmp_path / "e.npz"], "int8 runs from an exported file"),
        (["generate", tiny_models["cgan"], "--precision", "bf16", "-o", tmp_path / "f.npz"], "holds a fp32 model, not bf16"),
    ]
    for args, fragment in cases:
        assert_one_line_error(runner.invoke(app, [str(a) for a in args]), fragment)
    assert not any(tmp_path.iterdir())
    with pytest.raises(CtrlgenError, match="unknown"):
        Runtime.from_file(tiny_models["cgan"], precision="int4")


@needs_fashion
@pytest.mark.parametrize("has_bf16", [True, False])
def test_amp_auto_is_bf16_for_image_models_on_cpus_with_bf16_only(has_bf16, monkeypatch, tmp_path):
    """amp=auto on the CPU: bf16 autocast for image models where the CPU has bf16 instructions; the 2D
    mixtures always fp32; amp=off always fp32; the checkpoint header says which ran."""
    from conftest import tiny_config
    from ctrlgen import precision as P
    from ctrlgen.train.trainer import Trainer

    monkeypatch.setattr(P, "cpu_has_bf16", lambda: has_bf16)
    image = Trainer(tiny_config("fashion-cgan", "device=cpu"), tmp_path / "a")
    assert image.amp_dtype == (torch.bfloat16 if has_bf16 else None)
    assert image.meta()["precision"] == ("bf16 autocast" if has_bf16 else "fp32")
    assert Trainer(tiny_config("fashion-cgan", "device=cpu", "amp=off"), tmp_path / "b").amp_dtype is None
    assert Trainer(tiny_config("ring8", "device=cpu"), tmp_path / "c").amp_dtype is None
    if has_bf16:
        image.train_step()  # and a bf16 step runs, with fused Adam
        assert all(g.get("fused") for g in image.opt_g.param_groups)


def test_cpu_has_bf16_reads_the_cpu_flags():
    from ctrlgen.precision import cpu_has_bf16

    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    assert cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & set(flags))
