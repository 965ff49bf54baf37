"""One-sided label smoothing (Salimans et al. 2016): D's target on real samples is α < 1; fake targets stay 0.

Smoothing the fake target too would pull D's optimum towards the fake
distribution where data is absent, so only the real side is smoothed.  The
loss functions take the target (``real_target``); this technique sets it.
Critic losses (wgan, wgan-gp) have no targets and are rejected.
"""

from __future__ import annotations

import dataclasses
import functools

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.losses import LOSSES, get_loss
from ctrlgen.train.techniques.base import Technique, register


@register
class LabelSmoothing(Technique):
    name = "label_smoothing"
    doc = "One-sided label smoothing: D aims at alpha (e.g. 0.9) on real samples, 0 on fakes."
    params = {"real_target": 0.9}

    @classmethod
    def check(cls, cfg, params):
        alpha = params.get("real_target", cls.params["real_target"])
        if not 0.5 < alpha < 1.0:
            raise CtrlgenError(f"techniques.label_smoothing.real_target must be in (0.5, 1), got {alpha}")
        if not get_loss(cfg.loss).supports_smoothing:
            ok = ", ".join(n for n, loss in LOSSES.items() if loss.supports_smoothing)
            raise CtrlgenError(f"loss {cfg.loss} is a critic with no targets, so label smoothing makes no sense; use it with {ok}")

    def wrap_loss(self, loss):
        return dataclasses.replace(loss, d=functools.partial(loss.d, real_target=self.p["real_target"]))
