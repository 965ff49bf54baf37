"""EMA of G's weights (Yazici et al. 2019): a smoothed generator for sampling and export.

The technique owns the averaged copy of G.  Its state (the average's weights
and BatchNorm statistics) is checkpointed under ``ema.``, where every
checkpoint since the first version kept it and where export looks for it;
``sampler()`` hands the trainer the average, with BatchNorm statistics
recomputed for the averaged weights, whenever the run samples or exports.
"""

from __future__ import annotations

import copy

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.nets import recalibrate_batchnorm
from ctrlgen.train.techniques.base import RunContext, Technique, register

RECALIBRATION_SEED = 104729  # offset from the run's seed of the latents that recompute BatchNorm statistics
RECALIBRATION_BATCHES, RECALIBRATION_SIZE = 8, 256  # per seed of an ensemble


@register
class EMA(Technique):
    name = "ema"
    doc = "Exponential moving average of G's weights; the run samples and exports the average."
    params = {"decay": 0.999, "start": 0, "warmup": True}
    non_negative = {"start": "the step the average starts at; 0 = the first step"}
    state_group = "ema"

    @classmethod
    def check(cls, cfg, params):
        decay = params.get("decay", cls.params["decay"])
        if not 0.0 < decay < 1.0:
            raise CtrlgenError(f"techniques.ema.decay must be in (0, 1), got {decay}")

    def setup(self, run: RunContext) -> None:
        self.run = run
        self.average = copy.deepcopy(run.G).eval().requires_grad_(False)
        self._calibrated = False

    def decay_at(self, step: int) -> float:
        """With warmup the decay ramps as (1+t)/(10+t): early averages forget the random init fast."""
        if step < self.p["start"]:
            return 0.0
        t = step - self.p["start"]
        return min(self.p["decay"], (1.0 + t) / (10.0 + t)) if self.p["warmup"] else self.p["decay"]

    @torch.no_grad()
    def after_g_step(self, run: RunContext) -> None:
        beta = self.decay_at(run.step)
        ema_p = list(self.average.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in run.G.parameters()], 1.0 - beta)
        self._calibrated = False  # BatchNorm statistics are not averaged: recomputed on the next sampler()

    def sampler(self) -> torch.nn.Module:
        """The average, with BatchNorm statistics that match its weights (recomputed once per change)."""
        if not self._calibrated:
            run = self.run
            n = RECALIBRATION_SIZE * run.seeds
            seed = run.seed + RECALIBRATION_SEED
            batches = [
                {k: torch.from_numpy(v).to(run.device) for k, v in run.spec.sample(n, seed=seed, start=n * i).items()}
                for i in range(RECALIBRATION_BATCHES)
            ]
            recalibrate_batchnorm(self.average, batches)
            self._calibrated = True
        return self.average

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.average.state_dict())

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average.load_state_dict(state)
        self._calibrated = False
