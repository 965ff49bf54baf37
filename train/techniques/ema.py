"""EMA of G's weights (Yazici et al. 2019): a smoothed generator for sampling and export."""

from __future__ import annotations

import copy

import torch

from ctrlgen.train.techniques import Technique, register


@register
class EMA(Technique):
    name = "ema"
    doc = "Exponential moving average of G's weights; the run samples and exports the average."
    params = {"decay": 0.999, "start": 0, "warmup": True}

    @classmethod
    def check(cls, cfg, params):
        from ctrlgen.errors import CtrlgenError

        decay = params.get("decay", cls.params["decay"])
        if not 0.0 < decay < 1.0:
            raise CtrlgenError(f"techniques.ema.decay must be in (0, 1), got {decay}")

    def setup(self, trainer) -> None:
        trainer.g_ema = copy.deepcopy(trainer.G).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """With warmup the decay ramps as (1+t)/(10+t): early averages forget the random init fast."""
        if step < self.p["start"]:
            return 0.0
        t = step - self.p["start"]
        return min(self.p["decay"], (1.0 + t) / (10.0 + t)) if self.p["warmup"] else self.p["decay"]

    @torch.no_grad()
    def after_g_step(self, trainer) -> None:
        beta = self.decay_at(trainer.step)
        ema_p = list(trainer.g_ema.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in trainer.G.parameters()], 1.0 - beta)
        # BatchNorm statistics are not averaged: the trainer recomputes them for the
        # averaged weights whenever the EMA generator is used (recalibrate_batchnorm).
