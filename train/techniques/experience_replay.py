"""Experience replay for D (Shrivastava et al. 2017; Pfau & Vinyals 2016).

A buffer of ``size`` past generated samples, with the latent inputs that made
them (labels and InfoGAN codes stay paired with their samples).  Each D step,
the first ``ratio`` of the fake batch is replaced by samples drawn uniformly
from the buffer (when it holds any), and the fresh fakes they displaced are
written into it: appended while it fills, then over random slots.  D is thus
reminded of modes G has left, and G cannot escape by hopping between them.
The buffer is checkpointed, so resume is exact.  In an ensemble run
(train/ensemble.py) every seed's block of the batch has its own buffer
(``groups``): a seed's D is only ever shown its own G's past samples.
"""

from __future__ import annotations

import math

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import check_batch_memory
from ctrlgen.train.techniques.base import Technique, register


class ReplayBuffer:
    """Fixed-size store of samples and their latent inputs; random reads and random overwrites.

    With ``groups`` > 1 the rows come as ``groups`` contiguous blocks (the seeds of an ensemble) and
    each block has its own store of ``size`` rows; the random slots are the same in every store.
    """

    def __init__(self, size: int, groups: int = 1) -> None:
        self.size, self.groups = size, groups
        self.data: dict[str, torch.Tensor] = {}  # "sample" and each latent input name, (groups, size, ...)
        self.filled = 0

    def draw(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """n rows from each block's store: (groups, n, ...)."""
        idx = torch.randint(0, self.filled, (n,), generator=gen, device=gen.device)
        return {k: v[:, idx] for k, v in self.data.items()}

    @torch.no_grad()
    def write(self, rows: dict[str, torch.Tensor], gen: torch.Generator) -> None:
        rows = {k: v.reshape(self.groups, -1, *v.shape[1:]) for k, v in rows.items()}
        n = next(iter(rows.values())).shape[1]
        if not self.data:
            self.data = {k: v.new_zeros((self.groups, self.size, *v.shape[2:])) for k, v in rows.items()}
        fresh = min(n, self.size - self.filled)  # append while there is room ...
        slots = torch.arange(self.filled, self.filled + fresh, device=gen.device)
        if n > fresh:  # ... then overwrite distinct random old slots (repeated indices would race)
            old = torch.randperm(self.filled, generator=gen, device=gen.device)[: n - fresh]
            slots = torch.cat([slots, old])
        for k, v in rows.items():
            self.data[k][:, slots] = v.detach().to(self.data[k].dtype)
        self.filled += fresh


@register
class ExperienceReplay(Technique):
    name = "experience_replay"
    doc = "A buffer of past fakes (and their latent inputs) mixed into D's fake batches."
    # ratio 0.25, not Shrivastava et al.'s 0.5 (a refiner starting near the identity, not a G from noise): at 0.5
    # the ring8 GAN of benchmarks/toy2d.py collapsed to one mode in 10/10 seeds and stayed there, hopping from
    # mode to mode (its buffer covers many modes over time, its current samples one); at 0.25 it spreads out
    # (docs/results/toy2d-paper.md, the replay rows; tests/test_cures.py).
    params = {"size": 4096, "ratio": 0.25}

    @classmethod
    def check(cls, cfg, params):
        ratio = params.get("ratio", cls.params["ratio"])
        if not 0.0 < ratio < 1.0:
            raise CtrlgenError(f"techniques.experience_replay.ratio must be in (0, 1) (the share of D's fakes that are replayed), got {ratio}")
        size = params.get("size", cls.params["size"])
        if size < cfg.batch_size:
            raise CtrlgenError(f"techniques.experience_replay.size must be >= batch_size ({cfg.batch_size})")
        # The buffer keeps each fake and its latent inputs (+ at most 64 code values) as float32, per seed of an ensemble.
        per_fake = (2 if cfg.points else cfg.channels * cfg.image_size ** 2) + cfg.latent.noise_dim + 64
        check_batch_memory("techniques.experience_replay.size", size, per_fake, copies=max(1, cfg.ensemble))

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.buffer = ReplayBuffer(self.p["size"])

    def setup(self, run) -> None:
        self.rng = run.rng  # the run's generator: checkpointed, so replay draws resume exactly
        self.buffer.groups = run.seeds

    def fake_for_d(self, fake, inputs):
        g = self.buffer.groups
        rows = {k: v.reshape(g, -1, *v.shape[1:]) for k, v in {"sample": fake, **inputs}.items()}  # (seeds, n, ...)
        n_old = math.ceil(self.p["ratio"] * next(iter(rows.values())).shape[1])  # per block
        mixed = rows
        if self.buffer.filled:
            old = self.buffer.draw(n_old, self.rng)
            mixed = {k: torch.cat([old[k].to(v.dtype), v[:, n_old:]], 1) for k, v in rows.items()}
        self.buffer.write({k: v[:, :n_old].flatten(0, 1) for k, v in rows.items()}, self.rng)  # fresh fakes D did not see
        mixed = {k: v.flatten(0, 1) for k, v in mixed.items()}
        fake = mixed.pop("sample")
        return fake, mixed

    def state_dict(self):
        if not self.buffer.data:
            return {}
        # Stored as (groups·size, ...): a single model's buffer keeps the layout of earlier checkpoints.
        return {"filled": torch.tensor(self.buffer.filled), **{f"data.{k}": v.flatten(0, 1) for k, v in self.buffer.data.items()}}

    def load_state_dict(self, state):
        if "filled" in state:
            self.buffer.filled = int(state["filled"])
            g = self.buffer.groups
            self.buffer.data = {
                k[5:]: v.to(self.rng.device).reshape(g, -1, *v.shape[1:]).clone() for k, v in state.items() if k.startswith("data.")
            }
