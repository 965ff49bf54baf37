"""Distributed training (train/distributed.py): shards, seeds, and two gloo ranks on CPU.

The documented semantics: batch_size is the global batch, each of N ranks takes
batch_size/N rows of real batch i and draws batch_size/N latents from its own
generator (rank 0's is the run's), and DDP averages the gradients.  So two
ranks must hold identical weights, equal a single process that sees the
concatenation of both ranks' rows and latents, resume exactly on two ranks,
and resume on one rank from the same checkpoint format.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_config
from ctrlgen.data import FASHION_MNIST_DIR, ImageData, mixture
from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.cli import app
from ctrlgen.train.batches import ImageBatches, MixtureBatches
from ctrlgen.train.distributed import Ranks, rank_seed

WORLD = 2
MLP = ("log_every=2", "checkpoint_every=4", "sample_every=4")
CGAN = ("techniques.historical_averaging={}", "techniques.feature_matching={}", "techniques.ema.decay=0.9", "steps=4")


# ---------------------------------------------------------------------- shards and seeds
def test_rank_shards_concatenate_to_the_single_process_batch():
    rng = np.random.default_rng(0)
    data = ImageData(rng.integers(0, 256, (50, 1, 4, 4), dtype=np.uint8), rng.integers(0, 3, 50), ("a", "b", "c"), "test")
    cpu = torch.device("cpu")
    for world in (2, 4):
        single = ImageBatches(data, 8, 3, cpu)
        shards = [ImageBatches(data, 8, 3, cpu, r, world) for r in range(world)]
        for i in range(20):  # crosses epochs (6 batches per epoch)
            x, y = single.get(i)
            parts = [s.get(i) for s in shards]
            assert all(len(p[1]) == 8 // world for p in parts)
            assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    mix = mixture("ring8")
    single, shards = MixtureBatches(mix, 64, 1, cpu), [MixtureBatches(mix, 64, 1, cpu, r, 2) for r in range(2)]
    for i in range(3):
        x, y = single.get(i)
        assert torch.equal(torch.cat([s.get(i)[0] for s in shards]), x) and torch.equal(torch.cat([s.get(i)[1] for s in shards]), y)


def test_rank_seeds_keep_rank_zero_on_the_run_seed():
    assert rank_seed(7, 0) == 7  # rank 0 draws what a single process draws
    seeds = {rank_seed(7, r) for r in range(8)} | {rank_seed(7, 1, step) for step in (10, 20)}
    assert len(seeds) == 10 and all(0 <= s < 2**63 for s in seeds)


def test_the_global_batch_must_split_evenly():
    cfg = tiny_config("ring8")  # batch 64
    assert Ranks(1, 4).local_batch(cfg) == 16
    with pytest.raises(CtrlgenError, match="must split evenly over 3 ranks"):
        Ranks(0, 3).local_batch(cfg)
    with pytest.raises(CtrlgenError, match="multiple of net.pack=4"):
        Ranks(0, 32).local_batch(tiny_config("ring8", "net.pack=4"))


def test_cli_refuses_half_configured_launches(tmp_path, monkeypatch):
    runner = CliRunner()
    for var in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    r = runner.invoke(app, ["train", "ring8", "--distributed", "--steps", "1", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--distributed needs torchrun's environment" in r.output
    assert runner.invoke(app, ["train", "ring8", "--distributed"]).output.strip().endswith("every rank must name the same folder)")
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = runner.invoke(app, ["train", "ring8", "--steps", "1", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "add --distributed" in r.output
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("WORLD_SIZE", "two")  # was a ValueError traceback
    r = runner.invoke(app, ["train", "ring8", "--steps", "1", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and r.output.strip() == "Error: environment variable WORLD_SIZE=two is not an integer; unset it, or launch with torchrun"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("env", "message"), [
    ({"MASTER_PORT": "99999"}, "MASTER_PORT=99999 must be a port, 1..65535"),  # a ValueError traceback from torch
    ({"RANK": "5"}, "RANK=5 must be in 0..1 (WORLD_SIZE=2)"),  # waited 30 minutes for peers, deaf to SIGTERM
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 must be >= 0"),
    ({"MASTER_ADDR": " "}, "MASTER_ADDR is empty"),
])
def test_cli_refuses_torchrun_values_no_process_group_can_use(tmp_path, monkeypatch, env, message):
    for var, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", **env}.items():
        monkeypatch.setenv(var, value)
    r = CliRunner().invoke(app, ["train", "ring8", "--distributed", "--steps", "1", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and message in r.output, r.output
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------- two gloo ranks
def _state(trainer) -> dict[str, torch.Tensor]:
    """Everything a checkpoint holds except the per-rank random streams."""
    return {k: v.clone() for k, v in trainer.state_tensors().items() if not k.startswith("rng.")}


def _worker(rank: int, port: int, root: str, with_cgan: bool) -> None:
    import torch.distributed as dist

    from ctrlgen.train.distributed import close
    from ctrlgen.train.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    out = f"{root}/rank{rank}"

    def train(name, cfg):
        t = Trainer(cfg, f"{root}/{name}", distributed=True)
        t.run()
        torch.save(_state(t), f"{out}-{name}.pt")

    train("a", tiny_config("ring8", "steps=3", *MLP))  # 3 steps: the checkpoint to resume from
    dist.barrier()
    if rank == 0:
        shutil.copytree(f"{root}/a", f"{root}/a2")
        shutil.copytree(f"{root}/a", f"{root}/a1")  # resumed on one rank by the test
    dist.barrier()
    t = Trainer.resume(f"{root}/a2", {"steps": 6}, distributed=True)
    t.run()
    torch.save(_state(t), f"{out}-a2.pt")
    train("b", tiny_config("ring8", "steps=6", *MLP))  # the same 6 steps without the break
    t = Trainer(tiny_config("ring8", "steps=6", *MLP), f"{root}/stop", distributed=True)
    step = t.train_step

    def stop_on_rank_1():  # as Ctrl-C reaching rank 1 alone
        stats = step()
        if rank == 1 and t.step == 2:
            t.request_stop()
        return stats

    t.train_step = stop_on_rank_1
    status = t.run()
    with open(f"{out}-stop.txt", "w") as f:
        f.write(f"{status} {t.step}")
    # E-GAN: a population of 2 and 3 mutations; children trained through DDP, fitness all-reduced
    train("egan", tiny_config("ring8", "steps=3", *MLP, 'mode="egan"', "egan.population=2", "egan.eval_batch=32"))
    if with_cgan:  # conv nets with BatchNorm in G; techniques with state, and D on reals in G's step
        train("cgan", tiny_config("fashion-cgan", *CGAN))
    close()


def _spawn(root, with_cgan: bool, timeout: float = 150.0) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.spawn(_worker, args=(port, str(root), with_cgan), nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {WORLD} ranks did not finish within {timeout} s (a collective out of step?)")


def _single_process_over_both_ranks(root, steps: int):
    """One process, batch 64, whose latents are rank 0's 32 then rank 1's 32 (each from its rank's generator)."""
    from ctrlgen.train.trainer import Trainer

    t = Trainer(tiny_config("ring8", f"steps={steps}", *MLP), root / "reference")
    gens = [torch.Generator().manual_seed(rank_seed(t.cfg.seed, r)) for r in range(WORLD)]
    plain = t.sample_latent

    def both(n):
        parts = []
        for g in gens:
            t.rng = g
            parts.append(plain(n // WORLD))
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    t.sample_latent = both
    t.run()
    return _state(t)


@pytest.mark.slow
def test_two_gloo_ranks_train_one_run(tmp_path):
    from ctrlgen import checkpoint as ckpt_io
    from ctrlgen.train.trainer import Trainer

    with_cgan = FASHION_MNIST_DIR.is_dir()
    _spawn(tmp_path, with_cgan)
    load = lambda rank, name: torch.load(tmp_path / f"rank{rank}-{name}.pt", weights_only=True)  # noqa: E731
    names = ["a", "a2", "b", "egan"] + (["cgan"] if with_cgan else [])
    for name in names:  # identical weights, EMA, optimizer moments and technique state on both ranks
        r0, r1 = load(0, name), load(1, name)
        assert r0.keys() == r1.keys()
        assert [k for k in r0 if not torch.equal(r0[k], r1[k])] == [], name
    assert any(k.startswith("population.") for k in load(0, "egan"))
    survivors = [json.loads(line) for line in (tmp_path / "egan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in survivors if r.get("event") == "egan"] == [1, 2, 3]  # rank 0 alone logged them
    if with_cgan:
        assert any(k.startswith("tech.historical_averaging.") for k in r0) and any(k.startswith("ema.") for k in r0)

    # Same number of ranks: resuming at step 3 ends exactly where the uninterrupted run does.
    a2, b = load(0, "a2"), load(0, "b")
    assert [k for k in b if not torch.equal(a2[k], b[k])] == []

    # The semantics: one single process over the concatenated global batch (float summation order aside).
    ref, a = _single_process_over_both_ranks(tmp_path, 3), load(0, "a")
    worst = max(float((ref[k].float() - a[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-5, worst
    print(f"2 ranks vs one process over the same global batch, 3 steps: max |difference| {worst:.2e}")

    # A stop asked for on rank 1 alone stops both ranks after the same step, with a checkpoint.
    assert [(tmp_path / f"rank{r}-stop.txt").read_text() for r in range(WORLD)] == ["interrupted 2"] * WORLD
    assert ckpt_io.load(tmp_path / "stop").step == 2

    # Rank 0 alone wrote: one metrics line per logged step, the single-process checkpoint format plus rank 1's stream.
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    ck = ckpt_io.load(tmp_path / "a1")
    single = ckpt_io.load(tmp_path / "reference")
    assert set(ck.tensors) - set(single.tensors) == {"rng.train.rank1"} and ck.meta["world_size"] == WORLD

    # Resume the 2-rank checkpoint on one process: its weights, then 3 more steps.
    t = Trainer.resume(tmp_path / "a1", {"steps": 6})
    start = _state(t)
    assert all(torch.equal(start[k], a[k]) for k in a)
    assert t.run() == "done" and t.step == 6
    assert any(not torch.equal(_state(t)[k], a[k]) for k in a if k.startswith("G."))


@pytest.mark.slow
def test_torchrun_module_entry(tmp_path):
    """torchrun -m ctrlgen.train: --distributed implied, rank 0 alone prints and writes."""
    import subprocess
    import sys

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), "-m", "ctrlgen.train",
           "ring8", "--steps", "4", "--set", "net.g_width=16", "--set", "net.d_width=16", "--set", "batch_size=64",
           "--no-progress", "-o", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("Training ring8 for 4 steps") == 1 and "x 2 ranks (32 samples each)" in out.stdout
    assert out.stdout.count("done at step 4/4") == 1
    from ctrlgen import checkpoint as ckpt_io

    ck = ckpt_io.load(run)
    assert ck.step == 4 and ck.meta["world_size"] == WORLD and ck.meta["config"]["batch_size"] == 64
