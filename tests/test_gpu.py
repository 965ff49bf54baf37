"""CUDA end to end: training (bf16 autocast, compiled and eager), exact resume, export to CPU,
E-GAN and every technique, data that never leaves the device, ONNX Runtime's CUDA provider,
and DDP over NCCL through torchrun.  Every test is marked ``gpu`` and the whole module skips
without a CUDA device; ``scripts/gpu_check.sh`` runs it (and the GPU benchmarks) on one.

Fashion-MNIST is used where it is installed; elsewhere (a bare GPU machine) the image tests
train on a small synthetic IDX folder of the same shape: these tests check that the CUDA
paths run and agree, not what the images look like.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

# cuBLAS reads this when it starts (deterministic matmuls for the exact-resume test); set before any CUDA work.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

if not torch.cuda.is_available():
    pytest.skip(f"no CUDA device visible to torch {torch.__version__} (these tests need an NVIDIA GPU)", allow_module_level=True)

from test_techniques_train import CASES, NOT_WITH_CGAN, NOT_WITH_INFOGAN  # noqa: E402

from conftest import TINY_CONV, TINY_MLP, run_cli  # noqa: E402
from ctrlgen import checkpoint as ckpt_io  # noqa: E402
from ctrlgen.data import FASHION_MNIST_DIR  # noqa: E402
from ctrlgen.train.accel import is_compiled  # noqa: E402
from ctrlgen.train.batches import ImageBatches, MixtureBatches  # noqa: E402
from ctrlgen.train.config import load_config  # noqa: E402
from ctrlgen.train.techniques import TECHNIQUES  # noqa: E402
from ctrlgen.train.trainer import Trainer  # noqa: E402

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]
CUDA = ["device=cuda"]
IMAGE_RECIPES = ("cgan", "infogan")  # the families: the shipped presets already carry EMA, VBN, minibatch stddev


def write_idx(folder: Path, n: int, seed: int = 0) -> Path:
    """A Fashion-MNIST-shaped IDX folder of noise images (n × 28 × 28 uint8, 10 labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    (folder / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes())
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """"" (the installed Fashion-MNIST) or a synthetic IDX folder when it is missing."""
    if FASHION_MNIST_DIR.is_dir():
        return ""
    return str(write_idx(tmp_path_factory.mktemp("data") / "fashion-synthetic", 640))


def cfg(recipe: str, data_dir: str, *overrides: str):
    """A tiny CUDA config of ``recipe`` (eager unless an override says compile=...)."""
    if recipe in ("ring8", "grid25"):
        base = TINY_MLP
    else:
        base = [*TINY_CONV, "net.g_fc=32", *([f"data_dir={data_dir!s}"] if data_dir else [])]
    return load_config(recipe, [*base, *CUDA, "compile=off", "monitor_every=0", *overrides])


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu() for k, v in t.state_tensors().items() if not k.startswith("rng.")}


def finite_losses(run_dir: Path) -> list[dict]:
    """The logged training rows; every loss term in them finite."""
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "event" not in r]
    assert rows and all("g_adv" in r for r in rows), rows[:2]
    for r in rows:
        for k, v in r.items():
            if k.startswith(("d_", "g_", "info_")) and isinstance(v, float):
                assert math.isfinite(v), (k, r)
    return rows


# ---------------------------------------------------------------------- a few steps, bf16
@pytest.mark.parametrize("recipe", ["fashion-cgan", "fashion-infogan", "ring8"])  # the shipped presets
def test_a_few_bf16_steps_on_cuda_log_finite_losses_and_write_a_checkpoint(recipe, data_dir, tmp_path):
    t = Trainer(cfg(recipe, data_dir, "steps=6", "amp=bf16"), tmp_path)
    assert t.device.type == "cuda" and t.amp_dtype == torch.bfloat16
    assert next(t.G.parameters()).is_cuda and t.batches.get(0)[0].is_cuda
    assert t.run() == "done" and t.step == 6
    finite_losses(tmp_path)
    found = ckpt_io.newest(tmp_path)
    assert found is not None
    ck = ckpt_io.load(found)
    assert ck.meta["step"] == 6 and ck.meta["precision"] == "bf16 autocast"
    assert ck.meta["device"] == torch.cuda.get_device_name()


def _three_steps(data_dir: str, setting: str):
    """Losses of three fp32 steps, G's output on fixed inputs after them, and the state, at ``compile=setting``."""
    from torch._dynamo.utils import counters

    t = Trainer(cfg("fashion-cgan", data_dir, "amp=off", f"compile={setting}"), "unused")
    assert t.compiled == (setting == "on") == is_compiled(t.G) == is_compiled(t.D)
    stats = [{k: float(v) for k, v in t.train_step().items()} for _ in range(3)]
    if setting == "on":
        assert counters["stats"]["unique_graphs"] > 0, "compile=on compiled no graph"
    inputs = {k: torch.from_numpy(v).cuda() for k, v in t.spec.sample(32, seed=3).items()}
    with torch.no_grad():
        t.G.eval()
        out = t.G(**inputs).float().cpu()
    return stats, out, weights(t)


def test_the_compiled_path_matches_eager_within_tolerance(data_dir):
    """compile=on runs G and D under torch.compile (the default, auto, stays eager: measured faster); three fp32 steps (amp=off) of it
    against eager from the same seed: every loss term within rtol 1e-3 / atol 1e-3, G's output on fixed
    inputs within 2e-2, every tensor of two or more dimensions (weights, their Adam moments) within 1e-5 + 1e-3 ×
    its mean magnitude on average, and every tensor within 1.5e-3 at most (cuDNN's TF32 off on both sides).  (Inductor fuses and reorders float sums, so bit
    equality is not expected.  A bias that feeds a BatchNorm has a gradient of rounding noise, which Adam
    scales to a full ±lr step, so those biases and the running means after them may differ by up to
    3 × 2 × lr = 1.2e-3: seen on CPU, where the weights agreed within 4e-7.)  The state keeps its plain
    keys, so checkpoints do not depend on compile."""
    runs = {}
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions on both sides: the comparison is about compile, not TF32
    try:
        for setting in ("off", "on"):
            runs[setting] = _three_steps(data_dir, setting)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    (s_e, o_e, w_e), (s_c, o_c, w_c) = runs["off"], runs["on"]
    assert not any("_orig_mod" in k for k in w_c) and w_e.keys() == w_c.keys()
    for a, b in zip(s_e, s_c, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-3), (k, a[k], b[k])
    assert (o_e - o_c).abs().max() < 2e-2
    floats = [k for k in w_e if w_e[k].is_floating_point()]
    # weights: mean deviation within 1e-5 + 1e-3 x their magnitude; Adam's moments (sums of squared, reordered
    # float gradients) within 1e-4 + 1e-2 x theirs: a second H200 run moved one exp_avg by 8e-5 on average
    dense = {k: (w_e[k] - w_c[k]).abs().mean().item() - 1e-3 * w_e[k].abs().mean().item() for k in floats
             if w_e[k].dim() >= 2 and not k.startswith("opt_")}
    assert max(dense.values()) < 1e-5, sorted(dense.items(), key=lambda kv: -kv[1])[:3]
    moments = {k: (w_e[k] - w_c[k]).abs().mean().item() - 1e-2 * w_e[k].abs().mean().item() for k in floats
               if w_e[k].dim() >= 2 and k.startswith("opt_")}
    assert max(moments.values()) < 1e-4, sorted(moments.items(), key=lambda kv: -kv[1])[:3]
    worst = {k: (w_e[k] - w_c[k]).abs().max().item() for k in floats}
    assert max(worst.values()) <= 1.5e-3, sorted(worst.items(), key=lambda kv: -kv[1])[:3]


# ---------------------------------------------------------------------- resume
@pytest.mark.parametrize("recipe", ["fashion-cgan", "ring8"])
def test_resume_on_cuda_is_bit_exact_with_deterministic_algorithms(recipe, data_dir, tmp_path):
    """Stop at step 5 and resume to 10 on CUDA == 10 uninterrupted CUDA steps, bit for bit: fp32, eager,
    ``torch.use_deterministic_algorithms(True)`` and cuDNN's deterministic kernels (CUBLAS_WORKSPACE_CONFIG is set
    at import).  Every tensor of the checkpoint (weights, EMA, Adam moments, technique state) is compared."""
    torch.use_deterministic_algorithms(True, warn_only=True)  # an op without a deterministic kernel warns; the comparison decides
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        whole = Trainer(cfg(recipe, data_dir, "steps=10", "amp=off"), tmp_path / "whole")
        whole.run()
        part = Trainer(cfg(recipe, data_dir, "steps=10", "amp=off"), tmp_path / "part")
        part.run(until=5)
        resumed = Trainer.resume(tmp_path / "part")
        assert resumed.step == 5 and resumed.device.type == "cuda"
        resumed.run()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys() and any(k.startswith("opt_d.") for k in a)
    worst = {k: (a[k] - b[k]).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not worst, f"resumed run differs from the whole run: {sorted(worst.items(), key=lambda kv: -kv[1])[:5]}"


# ---------------------------------------------------------------------- CUDA checkpoint -> CPU
def test_a_cuda_checkpoint_exports_and_loads_on_cpu(data_dir, tmp_path):
    from ctrlgen.export import export
    from ctrlgen.runtime import Runtime

    run = tmp_path / "run"
    Trainer(cfg("fashion-cgan", data_dir, "steps=4", "amp=bf16"), run).run()
    onnx_path = tmp_path / "m.onnx"
    export(run, onnx_path)
    onnx_rt = Runtime.from_file(onnx_path, device="cpu")
    torch_rt = Runtime.from_file(run, device="cpu")
    assert onnx_rt.providers == ["CPUExecutionProvider"] and torch_rt.providers == ["cpu"]
    a, inputs = onnx_rt.generate(16, seed=5)
    b = torch_rt(**inputs)
    assert a.shape == (16, 1, 28, 28) and np.isfinite(a).all()
    assert np.abs(a - b).max() < 1e-4


# ---------------------------------------------------------------------- E-GAN and every technique
@pytest.mark.parametrize("recipe", ["ring8", "fashion-cgan"])
def test_egan_runs_a_few_steps_on_cuda(recipe, data_dir, tmp_path):
    t = Trainer(cfg(recipe, data_dir, "steps=3", 'mode="egan"', "egan.population=2", "egan.eval_batch=8", "amp=bf16"), tmp_path)
    assert t.g_update.name == "egan" and not t.compiled
    assert t.run() == "done"
    finite_losses(tmp_path)


def test_the_technique_cases_cover_the_registry(data_dir):
    """The cases below (tests/test_techniques_train.py's) switch on every registered technique (some through a loss)."""
    from ctrlgen.train.techniques import active_techniques

    active = {name for recipe in IMAGE_RECIPES for case, (on, _) in CASES.items()
              if not (recipe == "infogan" and case in NOT_WITH_INFOGAN) and not (recipe != "infogan" and case in NOT_WITH_CGAN) for name in active_techniques(cfg(recipe, data_dir, *on))}
    assert set(TECHNIQUES) <= active, f"no case switches on {sorted(set(TECHNIQUES) - active)}"


@pytest.mark.parametrize("recipe", IMAGE_RECIPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_technique_runs_a_few_steps_on_cuda(case, recipe, data_dir):
    if (recipe == "infogan" and case in NOT_WITH_INFOGAN) or (recipe != "infogan" and case in NOT_WITH_CGAN):
        pytest.skip(f"{case} is rejected with InfoGAN at config time")
    t = Trainer(cfg(recipe, data_dir, "amp=bf16", *CASES[case][0]), "unused")
    for _ in range(2):
        stats = t.train_step()
    assert stats and all(math.isfinite(float(v)) for v in stats.values()), stats
    assert all(p.is_cuda for p in t.G.parameters())


# ---------------------------------------------------------------------- data on the device
def test_batches_live_on_the_device_and_drawing_one_never_waits_for_the_gpu(data_dir):
    from ctrlgen.data import load_images, mixture

    dev = torch.device("cuda")
    images = ImageBatches(load_images(data_dir or None, "train", 28, 1), 64, 0, dev)
    assert images.x.is_cuda and images.x.dtype == torch.uint8 and images.y.is_cuda
    points = MixtureBatches(mixture("ring8"), 64, 0, dev)
    images.get(0)  # the epoch's permutation goes up once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host<->device synchronization raises
    try:
        for i in range(1, 5):
            x, y = images.get(i)
            p, k = points.get(i)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.is_cuda and y.is_cuda and p.is_cuda and k.is_cuda and x.shape == (64, 1, 28, 28)
    cpu = MixtureBatches(mixture("ring8"), 64, 0, torch.device("cpu"))
    assert torch.equal(p.cpu(), cpu.get(4)[0]) and torch.equal(k.cpu(), cpu.get(4)[1])  # the same batch on either device


def test_a_training_step_counts_its_host_syncs(data_dir):
    """The step itself (no logging, guard or monitor) may wait for the GPU only a bounded number of times."""
    t = Trainer(cfg("fashion-cgan", data_dir, "amp=bf16"), "unused")
    t.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    print(f"host syncs in one fashion-cgan train_step: {len(syncs)} {syncs[:3]}")
    assert len(syncs) <= 2, syncs


# ---------------------------------------------------------------------- ONNX Runtime CUDA
def test_generate_device_cuda_through_onnxruntime_matches_cpu(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (the CPU build): scripts/install.sh --gpu installs onnxruntime-gpu")
    from ctrlgen.runtime import Runtime

    model = ROOT / "models" / "fashion-cgan.onnx"
    rt = Runtime.from_file(model, device="cuda")
    assert rt.providers[0] == "CUDAExecutionProvider"
    out = {}
    for dev in ("cpu", "cuda"):
        path = tmp_path / f"{dev}.npz"
        run_cli("generate", model, "--n", 256, "-f", "npz", "-o", path, "--device", dev, "--label", "random")
        out[dev] = np.load(path)["sample"]
    assert out["cpu"].shape == out["cuda"].shape == (256, 1, 28, 28)
    assert np.abs(out["cpu"] - out["cuda"]).max() < 1e-3


# ---------------------------------------------------------------------- DDP over NCCL
DDP_SCRIPT = """
import sys
import torch
import torch.distributed as dist

init = dist.init_process_group


def spy(backend=None, **kw):  # report the backend, then check that a DDP step all-reduces over it
    init(backend, **kw)
    print("BACKEND", dist.get_backend(), "WORLD", dist.get_world_size(), flush=True)
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1).cuda(), device_ids=[torch.cuda.current_device()])
    net(torch.ones(8, 4, device="cuda")).sum().backward()
    assert torch.allclose(net.module.weight.grad, torch.full((1, 4), 8.0, device="cuda"))
    print("DDP step ok", flush=True)


dist.init_process_group = spy
from ctrlgen.serve.cli import main

sys.argv = ["ctrlgen", *sys.argv[1:]]
main()
"""


def test_ddp_with_nccl_on_one_gpu_through_torchrun(tmp_path):
    """torchrun --nproc_per_node 1, ``ctrlgen train --distributed --device cuda``: the process group is NCCL,
    a DDP backward all-reduces over it, and the run trains and checkpoints as a world of one."""
    script, run = tmp_path / "rank.py", tmp_path / "run"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(script), "train", "ring8",
           "--distributed", "--device", "cuda", "--steps", "4", "-o", str(run), "--no-progress",
           "--set", "log_every=2", "--set", "monitor_every=0", "--set", "compile=off"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "BACKEND nccl WORLD 1" in out and "DDP step ok" in out, out[-2000:]
    ck = ckpt_io.load(ckpt_io.newest(run))
    assert ck.meta["step"] == 4 and ck.meta["world_size"] == 1
    finite_losses(run)
