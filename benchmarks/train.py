"""Training step speed: ctrlgen's step on its paths, and the plain DCGAN loop as the reference, side by side.

    .venv/bin/python benchmarks/train.py [--batch 64] [--compile] [--scale] [--quick]
    .venv/bin/python benchmarks/train.py --device cuda [--batches 64 256] [--json FILE]

Contenders (steps/s of one full step = one D update + one G update, at the same batch):

* ``cgan``: ``Trainer.train_step`` of the fashion-cgan recipe (conditional DCGAN, projection D
  with spectral norm, EMA) as trained by ``ctrlgen train``: fp32 (the CPU default, ``amp=auto``),
  ``amp=bf16`` (bf16 autocast), each also with G and D in channels-last memory format,
  and (``--compile``) G and D under ``torch.compile``;
* ``infogan``: the fashion-infogan recipe, fp32 and bf16;
* ``reference``: the step written the plain way the popular GAN collections write it: an
  unconditional DCGAN with the same G and D layers (built by ``ctrlgen.nets`` from the same
  NetConfig), BCE-with-logits, Adam, real batches from a ``DataLoader`` over a per-item
  Dataset (uint8 -> float -> normalize per image, shuffled), fp32.

Every contender runs ``--steps`` steps in turn inside each repeat (so machine load hits all
alike) after warm-up steps; medians are printed with ratios to the reference.  The batch
fetch itself is timed separately (ctrlgen's in-memory index gather vs the DataLoader), and
``--scale`` adds step time vs batch size.  E-GAN is not in this repository (no technique),
so its ratio is not measured.

``--device cuda`` (``cuda_main``): the same reference loop on the GPU (its DataLoader batches
copied up each step) against ctrlgen's step eager fp32, eager bf16, the default (``compile=auto``:
eager, bf16), G and D under ``torch.compile`` (``compile=on``, bf16) and ``torch.compile(mode="reduce-overhead")`` (CUDA graphs),
at each ``--batches``; every timing is bracketed by ``torch.cuda.synchronize()``, warm-up (and
compile) steps excluded, medians of interleaved repeats.  Eager fp32 and CUDA graphs run at the first batch
size only, CUDA graphs in a table of their own after the others (compile time is scripts/gpu_check.sh's budget).  Also counted: the host syncs inside one
default step (``torch.cuda.set_sync_debug_mode``).  Without Fashion-MNIST it trains on noise
images of the same shape (step time does not depend on pixel values) and says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402

from ctrlgen.data import load_images  # noqa: E402


def trainer(recipe: str, batch: int, run_dir: Path, *overrides: str, device: str = "cpu"):
    from ctrlgen.train.config import load_config
    from ctrlgen.train.trainer import Trainer

    cfg = load_config(recipe, [f"batch_size={batch}", "progress=false", "monitor_every=0", f"device={device}", *overrides])
    return Trainer(cfg, run_dir)


def channels_last(t):
    t.G.to(memory_format=torch.channels_last)
    t.D.to(memory_format=torch.channels_last)
    return t


def compiled(t):
    t.G, t.D = torch.compile(t.G), torch.compile(t.D)
    return t


class PerItem(torch.utils.data.Dataset):
    """What the collections' torchvision pipelines do: one image at a time, converted and normalized."""

    def __init__(self, images) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.images[i]).float().div(255.0)
        return (x - 0.5) / 0.5


class Reference:
    """The plain DCGAN loop (unconditional), same layers as the cgan recipe's G and D."""

    def __init__(self, batch: int, images, net, device: str = "cpu") -> None:
        from ctrlgen.nets import Discriminator, Generator
        from ctrlgen.spec import LatentSpec

        spec = LatentSpec(noise_dim=64, output_kind="image", output_shape=(1, 28, 28))
        torch.manual_seed(0)
        self.G, self.D = Generator(spec, net).to(device), Discriminator(spec, net, q_head=False).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = torch.utils.data.DataLoader(PerItem(images), batch_size=batch, shuffle=True, drop_last=True)
        self.it = iter(self.loader)
        self.batch, self.bce, self.device = batch, nn.BCEWithLogitsLoss(), device

    def real(self) -> torch.Tensor:
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def train_step(self) -> None:
        real = self.real().to(self.device)
        ones, zeros = torch.ones(self.batch, device=self.device), torch.zeros(self.batch, device=self.device)
        z = torch.randn(self.batch, 64, device=self.device)
        fake = self.G(z=z)
        d_loss = self.bce(self.D(real).logit, ones) + self.bce(self.D(fake.detach()).logit, zeros)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = self.bce(self.D(fake).logit, ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()


def time_steps(step: Callable[[], object], k: int, sync: Callable[[], None] = lambda: None) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(k):
        step()
    sync()
    return (time.perf_counter() - t0) / k


def side_by_side(steps: dict[str, Callable], repeats: int, k: int, warmup: int, sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """name -> median seconds per step (``sync`` waits for the device at both ends of a timing)."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {n: [] for n in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            times[name].append(time_steps(fn, k, sync))
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="Steps per timing (per contender per repeat).")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--compile", action="store_true", help="Add torch.compile'd G and D (slow to compile on CPU).")
    ap.add_argument("--scale", action="store_true", help="Also step time vs batch size (32..256), fp32 and bf16.")
    ap.add_argument("--quick", action="store_true", help="Batch 16, 1 repeat of 2 steps, cgan and reference only (a smoke test).")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the GPU comparison (cuda_main).")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256], help="--device cuda: batch sizes.")
    ap.add_argument("--json", type=Path, default=None, help="--device cuda: also write the results here.")
    args = ap.parse_args()
    if args.device == "cuda":
        cuda_main(args)
        return
    if args.quick:
        args.batch, args.repeats, args.steps, args.compile, args.scale = 16, 1, 2, False, False
    torch.set_num_threads(args.threads)
    print(f"# machine: {machine()}")
    print(f"# threads: {args.threads}; batch {args.batch}; {args.repeats} repeats of {args.steps} steps each, interleaved; medians")
    data = load_images(None, "train", 28, 1)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        b = args.batch
        t_cgan = trainer("fashion-cgan", b, root / "a", "amp=off")
        ref = Reference(b, data.images, t_cgan.cfg.net)
        default = trainer("fashion-cgan", b, root / "b")  # amp=auto: bf16 autocast where the CPU has bf16
        dflt = "bf16" if default.amp_dtype is not None else "fp32"
        runs: dict[str, Callable] = {
            "cgan fp32 (amp=off)": t_cgan.train_step,
            f"cgan default (amp=auto: {dflt})": default.train_step,
        }
        if not args.quick:
            runs["cgan fp32 channels_last"] = channels_last(trainer("fashion-cgan", b, root / "c", "amp=off")).train_step
            runs["cgan bf16 channels_last"] = channels_last(trainer("fashion-cgan", b, root / "d", "amp=bf16")).train_step
            runs["infogan fp32 (amp=off)"] = trainer("fashion-infogan", b, root / "e", "amp=off").train_step
            runs[f"infogan default (amp=auto: {dflt})"] = trainer("fashion-infogan", b, root / "f").train_step
        if args.compile:
            t0 = time.perf_counter()
            try:
                tc = compiled(trainer("fashion-cgan", b, root / "g", "amp=bf16"))
                tc.train_step()
                tc.train_step()
                print(f"# torch.compile (bf16): first two steps (compile) took {time.perf_counter() - t0:.0f} s")
                runs["cgan bf16 torch.compile"] = tc.train_step
            except Exception as e:  # noqa: BLE001 - report why it did not work
                print(f"# torch.compile failed after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        runs["reference plain DCGAN fp32"] = ref.train_step
        med = side_by_side(runs, args.repeats, args.steps, warmup=2)
        base = med["reference plain DCGAN fp32"]
        print(f"\n| step (batch {b}) | steps/s | ms/step | vs reference |")
        print("|---|---:|---:|---:|")
        for name, s in med.items():
            print(f"| {name} | {1 / s:.1f} | {1e3 * s:.1f} | {base / s:.2f}x |")
        fetch = side_by_side({"index gather": lambda: t_cgan.batches.get(7), "DataLoader per item": ref.real}, args.repeats, 20, warmup=2)
        print(f"\n# one real batch: ctrlgen's in-memory index gather {1e3 * fetch['index gather']:.2f} ms, "
              f"the reference's DataLoader {1e3 * fetch['DataLoader per item']:.2f} ms "
              f"({100 * fetch['DataLoader per item'] / base:.1f}% of the reference step)")
        if args.scale:
            print("\n| batch | cgan fp32 ms/step | cgan bf16 ms/step | fp32 samples/s | bf16 samples/s |")
            print("|---:|---:|---:|---:|---:|")
            for bs in (32, 64, 128, 256):
                m = side_by_side({"fp32": trainer("fashion-cgan", bs, root / f"s{bs}", "amp=off").train_step,
                                  "bf16": trainer("fashion-cgan", bs, root / f"t{bs}", "amp=bf16").train_step},
                                 max(1, args.repeats // 2), max(1, args.steps // 2), warmup=1)
                print(f"| {bs} | {1e3 * m['fp32']:.0f} | {1e3 * m['bf16']:.0f} | {bs / m['fp32']:,.0f} | {bs / m['bf16']:,.0f} |")


# ---------------------------------------------------------------------- the GPU comparison
DEVICE = "cuda"  # a module constant, so a CPU smoke run of the code below can swap it
def synthetic_idx(folder: Path, n: int = 60_000) -> Path:
    """A Fashion-MNIST-shaped IDX folder of noise (n × 28 × 28 uint8, labels 0..9) for machines without the data."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return folder


def count_syncs(step: Callable[[], object]) -> int:
    """Host<->device synchronizations inside one call (torch.cuda.set_sync_debug_mode warns on each)."""
    import warnings

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def cuda_main(args) -> None:
    import json

    from ctrlgen.data import FASHION_MNIST_DIR

    if not torch.cuda.is_available():
        print(f"# --device cuda: skipped, torch {torch.__version__} sees no CUDA device")
        if args.json:
            args.json.write_text(json.dumps({"skipped": f"no CUDA device (torch {torch.__version__})"}, indent=1))
        return
    gpu = torch.cuda.get_device_name()
    print(f"# device: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}; host: {machine()}")
    out = {"device": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "batches": {}, "notes": [], "syncs_per_step": {}}
    with tempfile.TemporaryDirectory(prefix="bench-train-cuda-") as tmp:
        root = Path(tmp)
        data_dir = ""
        if not FASHION_MNIST_DIR.is_dir():
            data_dir = str(synthetic_idx(root / "fashion-synthetic"))
            out["notes"].append("Fashion-MNIST not installed: trained on 60,000 noise images of the same shape (step time does not depend on pixel values)")
        images = load_images(data_dir or None, "train", 28, 1).images
        over = [f"data_dir={data_dir}"] if data_dir else []
        first = args.batches[0]
        # The main table at every batch size first, CUDA graphs last: each torch.compile costs up to a minute,
        # and a run cut short by scripts/gpu_check.sh's time limit keeps every table already written.
        for b, graphs in [*((b, False) for b in args.batches), (first, True)]:
            cuda_table(b, graphs, b == first, root, over, images, out, args)
            torch.cuda.empty_cache()
    print(f"\n# host syncs inside one step at batch {args.batches[0]}: {out['syncs_per_step']}")
    for n in out["notes"]:
        print(f"# {n}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


def cuda_table(b: int, graphs: bool, first: bool, root: Path, over: list[str], images, out: dict, args) -> None:
    """One table of cuda_main: the reference and ctrlgen's paths at batch ``b`` (``graphs``: the CUDA-graphs table)."""
    import json

    from torch import _dynamo

    _dynamo.reset()  # each table compiles afresh (inductor's on-disk cache still helps)
    label = f"{b}, CUDA graphs" if graphs else str(b)
    keep: list = []  # the trainers, alive until the table is done
    runs: dict[str, Callable] = {}

    def add(name: str, recipe: str, *more: str) -> Any:
        t = trainer(recipe, b, root / f"{len(keep)}-{b}", *more, *over, device=DEVICE)
        keep.append(t)
        runs[name] = t.train_step
        return t

    from ctrlgen.train.config import load_config

    net = load_config("fashion-cgan", over).net  # the reference's layers are the recipe's
    runs["reference plain DCGAN fp32"] = Reference(b, images, net, DEVICE).train_step
    if graphs:
        add("cgan eager bf16 (compile=off)", "fashion-cgan", "amp=bf16", "compile=off")
        t = add("cgan torch.compile reduce-overhead (CUDA graphs), bf16", "fashion-cgan", "amp=bf16", "compile=off")
        t.G.compile(mode="reduce-overhead")
        t.D.compile(mode="reduce-overhead")
    else:
        if first:
            add("cgan eager fp32 (amp=off, compile=off)", "fashion-cgan", "amp=off", "compile=off")
        add("cgan eager bf16 (compile=off)", "fashion-cgan", "amp=bf16", "compile=off")
        t = add("cgan default", "fashion-cgan")  # amp=auto, compile=auto
        how = ("torch.compile" if t.compiled else "eager") + (", bf16" if t.amp_dtype is not None else ", fp32")
        runs[f"cgan default (compile=auto: {how})"] = runs.pop("cgan default")
        add("cgan torch.compile bf16 (compile=on)", "fashion-cgan", "amp=bf16", "compile=on")
    warm: dict[str, float] = {}
    for name in list(runs):  # warm-up: compiles, CUDA graph recording, cuDNN autotuning; a path that fails is dropped
        t0 = time.perf_counter()
        try:
            for _ in range(3):
                runs[name]()
            torch.cuda.synchronize()
            warm[name] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - report why it did not work
            out["notes"].append(f"batch {label}: {name} failed after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            del runs[name]
    if first:
        for name in runs:
            if name.startswith("cgan") and name not in out["syncs_per_step"]:
                out["syncs_per_step"][name] = count_syncs(runs[name])
    med = side_by_side(runs, args.repeats, max(10, args.steps), warmup=2, sync=torch.cuda.synchronize)
    base = med["reference plain DCGAN fp32"]
    out["batches"][label] = {"batch": b, "rows": {n: {"steps_per_s": 1 / t, "ms_per_step": 1e3 * t, "vs_reference": base / t,
                                                      "warmup_s": warm[n]} for n, t in med.items()}}
    print(f"\n| step (batch {label}, {out['device']}) | steps/s | ms/step | samples/s | vs reference | warm-up (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t in med.items():
        print(f"| {name} | {1 / t:,.1f} | {1e3 * t:.2f} | {b / t:,.0f} | {base / t:.2f}x | {warm[name]:.1f} |")
    if args.json:  # after every table: a run cut short still leaves what it measured
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
