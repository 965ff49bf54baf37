"""The GPU pieces that can be checked without a GPU: the compile setting (train/accel.py), the
"no CUDA" answers of ``generate --device cuda``, install.sh --gpu, and the GPU report script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, needs_fashion, run_cli, tiny_config
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.accel import double_backward, wants_compile

ROOT = Path(__file__).resolve().parents[1]
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def test_compile_auto_is_eager_and_on_never_where_torch_compile_cannot_train():
    cgan = tiny_config("fashion-cgan")
    assert cgan.compile == "auto"
    assert not wants_compile(cgan, CUDA) and not wants_compile(cgan, CPU)  # eager measured faster on an H200
    assert wants_compile(tiny_config("fashion-cgan", "compile=on"), CUDA)
    assert wants_compile(tiny_config("fashion-cgan", "compile=on"), CPU)
    assert not wants_compile(tiny_config("fashion-cgan", "compile=off"), CUDA)
    # ring8's recipe trains R1 (a gradient of a gradient): torch.compile has no double backward
    assert double_backward(tiny_config("ring8")) == ["r1"] and not wants_compile(tiny_config("ring8"), CUDA)
    assert double_backward(tiny_config("ring8", "loss=wgan-gp", "techniques.r1={}", "techniques.unrolled={}")) == [
        "r1", "gradient_penalty", "unrolled (second_order)"]
    assert double_backward(tiny_config("fashion-cgan", "techniques.unrolled.second_order=false")) == []
    assert not wants_compile(tiny_config("ring8", 'mode="egan"', "techniques.r1={}"), CUDA)
    assert not wants_compile(tiny_config("fashion-cgan", 'mode="egan"'), CUDA)  # E-GAN copies generators around: eager
    with pytest.raises(CtrlgenError, match="compile=on cannot train r1: torch.compile has no double backward; use compile=auto or off"):
        wants_compile(tiny_config("ring8", "compile=on"), CPU)


def test_compile_is_checked_at_config_time_and_may_change_on_resume(tmp_path):
    from ctrlgen.train.trainer import Trainer

    with pytest.raises(CtrlgenError, match="compile 'fast' is unknown; use one of auto, off, on"):
        tiny_config("ring8", "compile=fast")
    Trainer(tiny_config("ring8", "steps=2", "monitor_every=0"), tmp_path).run()
    again = Trainer.resume(tmp_path, {"compile": "off", "steps": 3})
    assert again.cfg.compile == "off" and not again.compiled


@needs_fashion
def test_the_cpu_default_stays_eager():
    from ctrlgen.train.accel import is_compiled
    from ctrlgen.train.trainer import Trainer

    t = Trainer(tiny_config("fashion-cgan", "monitor_every=0", "device=cpu"), "unused")
    assert t.device.type == "cpu" and not t.compiled and not is_compiled(t.G) and not is_compiled(t.D)


# ---------------------------------------------------------------------- no CUDA: one clear line
def test_generate_device_cuda_without_the_cuda_provider_says_why_and_how_in_one_line(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider (onnxruntime-gpu)")
    result = run_cli("generate", ROOT / "models" / "ring8.onnx", "--device", "cuda", "-o", tmp_path / "x.png", ok=False)
    assert_one_line_error(result, "this onnxruntime has no CUDA provider; install onnxruntime-gpu or use --device cpu")
    assert "scripts/install.sh --gpu" in result.output and f"onnxruntime {ort.__version__}" in result.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_generate_device_cuda_from_a_checkpoint_without_a_gpu_says_so(tiny_runs, tmp_path):
    result = run_cli("generate", tiny_runs["ring8"], "--device", "cuda", "-o", tmp_path / "x.png", ok=False)
    assert_one_line_error(result, "torch sees no CUDA device; use --device cpu")


# ---------------------------------------------------------------------- install.sh --gpu
def _dry_install(*flags: str) -> list[str]:
    env = {**os.environ, "CTRLGEN_INSTALL_DRY_RUN": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), *flags], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]


def test_install_gpu_swaps_onnxruntime_for_onnxruntime_gpu_and_the_cpu_install_is_unchanged():
    gpu = _dry_install("--gpu")
    ctrlgen = next(i for i, c in enumerate(gpu) if c.endswith(" -e ."))
    removal = next(i for i, c in enumerate(gpu) if "uninstall -y -q onnxruntime onnxruntime-gpu" in c)
    final = next(i for i, c in enumerate(gpu) if c.endswith("install -q --disable-pip-version-check onnxruntime-gpu"))
    assert ctrlgen < removal < final == len(gpu) - 1  # ctrlgen's onnxruntime dependency first, then removed, then the GPU build alone
    cpu = _dry_install()
    assert not any("onnxruntime" in c for c in cpu) and cpu[-1].endswith(" -e .")
    assert _dry_install("--test", "--gpu")[-1].endswith(" onnxruntime-gpu")
    bad = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "--cuda"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option --cuda; use --test and/or --gpu" in bad.stderr


# ---------------------------------------------------------------------- the report
def test_gpu_report_renders_device_numbers_and_leaves_docs_alone_without_them(tmp_path):
    report = ROOT / "benchmarks" / "gpu_report.py"
    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps({"skipped": "no CUDA device (torch 2.x+cpu)"}))
    docs = ROOT / "docs" / "results" / "gpu.md"
    before = docs.read_text() if docs.exists() else None
    proc = subprocess.run([sys.executable, str(report), str(skipped), str(skipped), "-o", str(tmp_path / "a.md"), "--docs"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "docs/ left alone" in proc.stdout
    assert (docs.read_text() if docs.exists() else None) == before
    assert "not measured (no CUDA device" in (tmp_path / "a.md").read_text()
    train = {"device": "NVIDIA Test", "torch": "2.x", "cuda": "13.0", "syncs_per_step": {"cgan default": 0}, "notes": [],
             "batches": {"64": {"batch": 64, "rows": {
                 "reference plain DCGAN fp32": {"steps_per_s": 100.0, "ms_per_step": 10.0, "vs_reference": 1.0, "warmup_s": 1.0},
                 "cgan default (compile=auto: torch.compile, bf16)": {"steps_per_s": 600.0, "ms_per_step": 1.67, "vs_reference": 6.0,
                                                                      "warmup_s": 40.0}}}}}
    gen = {"device": "NVIDIA Test", "torch": "2.x", "onnxruntime": "1.30", "model": "fashion-cgan.onnx", "notes": ["ort skipped"],
           "results": {"torch eager fp32": {"1": 900.0, "8192": 2_000_000.0}, "ort cuda fp32": {}}}
    (tmp_path / "t.json").write_text(json.dumps(train))
    (tmp_path / "g.json").write_text(json.dumps(gen))
    proc = subprocess.run([sys.executable, str(report), str(tmp_path / "t.json"), str(tmp_path / "g.json"), "-o", str(tmp_path / "b.md")],
                          capture_output=True, text=True, timeout=60)
    text = (tmp_path / "b.md").read_text()
    assert proc.returncode == 0 and text.startswith("# GPU results (NVIDIA Test)")
    assert "| cgan default (compile=auto: torch.compile, bf16) | 600.0 | 1.67 | 38,400 | 6.00x | 40.0 |" in text
    assert "Fastest ctrlgen path at batch 64: cgan default (compile=auto: torch.compile, bf16), 6.00x the reference" in text
    assert "| torch eager fp32 | 900 | 2,000,000 |" in text and "ort cuda fp32 |" not in text and "Note: ort skipped" in text
