"""WGAN's weight clipping (Arjovsky et al. 2017): D's weights kept in [-c, c] after each D step."""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.techniques.base import Technique, register


@register
class WeightClip(Technique):
    name = "weight_clip"
    doc = "Clamp every D parameter to [-clip, clip] after each D update (a crude Lipschitz bound)."
    params = {"clip": 0.01}
    positive = {"clip": "the box D's weights are clamped to; WGAN takes 0.01"}

    @classmethod
    def check(cls, cfg, params):
        if cfg.net.d_norm == "spectral":
            raise CtrlgenError("weight_clip and spectral normalization both bound D's Lipschitz constant; use one of them")

    @torch.no_grad()
    def after_d_step(self, run) -> None:
        c = self.p["clip"]
        for p in run.D.parameters():
            p.clamp_(-c, c)
