"""Data-parallel training over several processes: torchrun + DistributedDataParallel.

``torchrun --nproc_per_node N -m ctrlgen.train RECIPE ...`` (or ``ctrlgen train
RECIPE --distributed`` under torchrun) starts N ranks; each builds the same
Trainer and this module makes them one run:

* **Process group**: ``env://`` from torchrun's variables (MASTER_ADDR,
  MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK); NCCL when the run trains on CUDA
  (rank r uses GPU LOCAL_RANK), gloo on CPU.
* **Batch**: ``batch_size`` is the *global* batch.  Each rank takes
  ``batch_size / N`` rows of real batch i (its slice of the same per-epoch
  permutation, ``train/batches.py``) and draws ``batch_size / N`` latents; DDP
  averages the gradients, so one step follows the gradient of the mean loss
  over the global batch, as a single process would.  A recipe therefore means
  the same optimization problem (batch, learning rates, steps per epoch)
  whatever N is, and the data position (real batches drawn) is counted in
  global batches, so a checkpoint resumes on any number of ranks.
* **Random numbers**: rank r draws latents (and technique noise) from its own
  generator seeded by ``rank_seed(seed, r)``; rank 0's seed is the run's seed,
  so rank 0 draws what a single process draws.  A run is reproducible for a
  given N (same seed, same N → same weights on CPU); runs with different N see
  different latent draws (same distribution), so they agree statistically,
  not bit for bit.  Checkpoints keep every rank's generator, so resuming with
  the same N is exact; ranks a checkpoint has no generator for start from
  ``rank_seed(seed, r, step)``.
* **Writes**: rank 0 alone writes config.json, metrics.jsonl (losses averaged
  over ranks), samples, checkpoints, and runs the monitor; its stop decision
  (collapse detector, Ctrl-C on any rank) reaches every rank through one
  all-reduce per step.  Checkpoints hold the unwrapped modules' state, the
  format of a single-process run.
* **State of techniques**: every rank holds identical G and D weights (DDP
  broadcasts them at start and averages every gradient), so EMA and
  historical averaging, updated from those weights on every rank, stay
  identical.  Experience replay's buffer holds each rank's own fakes (like its
  data shard); a checkpoint keeps rank 0's buffer.
* **BatchNorm**: plain BatchNorm with per-rank statistics, not SyncBatchNorm:
  the per-rank batch (32 for the image recipes on 2 ranks) is large enough for stable
  statistics (on many ranks raise batch_size), SyncBatchNorm runs on CUDA only (so CPU runs and tests could not
  use it) and costs an all-reduce per layer per forward.  The running
  statistics of every BatchNorm layer in G and D are averaged over ranks
  after every step, so every rank holds the same state; the running means then
  equal those of the global batch (the variances miss the spread between the
  ranks' means).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ctrlgen.errors import CtrlgenError
from ctrlgen.text import plain

# The trainer and its config (train/trainer.py, train/config.py) import this module, so the types are named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any
TrainConfig = Any

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s generator: the run's seed for rank 0 at step 0."""
    if rank == 0 and step == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)


def env_int(name: str, default: int) -> int:
    """An integer from torchrun's environment; a value that is not one is one line naming the variable."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise CtrlgenError(f"environment variable {name}={plain(raw, 40)!s} is not an integer; unset it, or launch with torchrun") from None


def check_environment() -> None:
    """torchrun's variables hold values a process group can be built from: one line naming the first that
    does not (a port of 99999 ended in a traceback; RANK >= WORLD_SIZE waited for peers for 30 minutes)."""
    world, rank, local = env_int("WORLD_SIZE", 1), env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    port = env_int("MASTER_PORT", 29500)
    fix = "unset it, or launch with torchrun"
    if world < 1:
        raise CtrlgenError(f"environment variable WORLD_SIZE={world} must be at least 1; {fix}")
    if not 0 <= rank < world:
        raise CtrlgenError(f"environment variable RANK={rank} must be in 0..{world - 1} (WORLD_SIZE={world}); {fix}")
    if local < 0:
        raise CtrlgenError(f"environment variable LOCAL_RANK={local} must be >= 0; {fix}")
    if not 1 <= port <= 65535:
        raise CtrlgenError(f"environment variable MASTER_PORT={port} must be a port, 1..65535; {fix}")
    if not os.environ.get("MASTER_ADDR", "x").strip():
        raise CtrlgenError(f"environment variable MASTER_ADDR is empty; set it to the first node's address (127.0.0.1 on one machine), or {fix}")


def launched_by_torchrun() -> bool:
    return env_int("WORLD_SIZE", 1) > 1


def init(device: torch.device) -> None:
    """Join the process group described by torchrun's environment (once per process)."""
    if dist.is_initialized():
        return
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise CtrlgenError(
            f"--distributed needs torchrun's environment ({', '.join(missing)} unset); "
            "launch with: torchrun --nproc_per_node N -m ctrlgen.train RECIPE ..."
        )
    check_environment()
    if device.type == "cuda":
        torch.cuda.set_device(env_int("LOCAL_RANK", 0))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank ``rank`` of ``world``.  World 1 = a plain single-process run,
    where every method below does nothing."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes files and runs the monitor."""
        return self.rank == 0

    def local_batch(self, cfg: TrainConfig) -> int:
        if cfg.batch_size % self.world:
            raise CtrlgenError(f"batch_size {cfg.batch_size} is the global batch and must split evenly over {self.world} ranks; "
                               f"use a multiple of {self.world}")
        b = cfg.batch_size // self.world
        if b % cfg.net.pack:
            raise CtrlgenError(f"each rank's batch ({b} = {cfg.batch_size}/{self.world}) must be a multiple of net.pack={cfg.net.pack}")
        return b

    def end_step(self, trainer: Trainer, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """After each step: BatchNorm's running statistics and the loss terms averaged over ranks (two all-reduces).

        Buffers: BatchNorm's running statistics move with each rank's own batch; averaged,
        the running means are those of the global batch and every rank holds the same
        state again.  Loss terms: every rank logs and judges (NaN/inf) the same numbers."""
        if self.world == 1:
            return stats
        from torch.nn.modules.batchnorm import _BatchNorm

        buffers = [b for net in (trainer.G, trainer.D) for m in net.modules() if isinstance(m, _BatchNorm)
                   for b in (m.running_mean, m.running_var) if b is not None]
        if buffers:
            flat = torch.cat([b.detach().reshape(-1).float() for b in buffers])
            dist.all_reduce(flat)
            flat /= self.world
            for b, v in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
                b.copy_(v.view_as(b))
        if not stats:
            return stats
        keys = list(stats)
        flat = torch.stack([stats[k].detach().float().reshape(()) for k in keys])
        dist.all_reduce(flat)
        flat /= self.world
        return dict(zip(keys, flat.unbind(), strict=True))

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on one (a stop request)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather_rng(self, gen: torch.Generator) -> list[torch.Tensor]:
        """Every rank's generator state (a collective: all ranks call it at the same checkpoint)."""
        if self.world == 1:
            return [gen.get_state()]
        states: list[Any] = [None] * self.world
        dist.all_gather_object(states, gen.get_state().cpu())
        return states

    def wrap(self, trainer: Trainer) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The modules the training forward passes go through: DDP wrappers of G and D, or G and D themselves.

        Only the passes whose gradients update the wrapped net use the wrapper
        (D on real and fake in D's step, G in G's step); D inside G's step, the
        penalties' extra passes, EMA, sampling and checkpoints use the plain
        modules, which share their parameters with the wrappers."""
        if self.world == 1:
            return trainer.G, trainer.D
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [torch.cuda.current_device()] if trainer.device.type == "cuda" else None
        # Buffers are averaged after each step (end_step), not broadcast from rank 0 at each forward
        # (torch 2.13 renamed the switch; both sync at construction, where every rank holds the same).
        import inspect

        name = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
        return DDP(trainer.G, device_ids=ids, **{name: False}), DDP(trainer.D, device_ids=ids, **{name: False})


def ranks(cfg: TrainConfig, device: torch.device, distributed: bool) -> Ranks:
    """This process's place in the run; joins the process group when ``distributed``."""
    if not distributed:
        return Ranks()
    init(device)
    r = Ranks(dist.get_rank(), dist.get_world_size())
    if r.world > 1 and cfg.on_collapse == "rollback":
        raise CtrlgenError("on_collapse=rollback restores a file only rank 0 reads; with several ranks use --on-collapse warn or stop")
    r.local_batch(cfg)  # checks the split
    return r



def close(synchronize: bool = True) -> None:
    """Leave the process group at the end of a run (torch warns about one left open).

    ``synchronize``: every rank reaches the end first (a rank that tears its connections down while
    another is still in a last collective makes gloo abort that one: a SIGABRT seen under load).
    Off when leaving on an error, where the other ranks may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()
