"""Feature matching (Salimans et al. 2016): G matches the mean of D's features on real data.

    L_FM = weight · ‖E_x f(x) − E_z f(G(z))‖²₂

with f D's last hidden layer (``DOut.features``, the layer InfoGAN's Q head
also reads).  With ``replace = true`` it *is* G's loss (the paper's form: the
adversarial G term is dropped); otherwise it is added to it.  The real
features come from the same D the G step uses (a look-ahead D under
unrolling) and carry no gradient.
"""

from __future__ import annotations

import dataclasses

import torch

from ctrlgen.train.techniques.base import SWITCH_OFF, StepContext, Technique, register


def feature_distance(real_features: torch.Tensor, fake_features: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """‖mean(real) − mean(fake)‖² over the batch (real side detached).

    ``groups``: the batch is that many contiguous blocks of an ensemble (train/ensemble.py); the
    distance is taken per block and averaged, like the batch-mean losses beside it.
    """
    real = real_features.detach().float().reshape(groups, -1, real_features.shape[-1])
    fake = fake_features.float().reshape(groups, -1, fake_features.shape[-1])
    diff = real.mean(1) - fake.mean(1)
    return (diff * diff).sum(1).mean()


def _no_adversarial_term(fake_logits: torch.Tensor) -> torch.Tensor:
    return fake_logits.sum() * 0.0


@register
class FeatureMatching(Technique):
    name = "feature_matching"
    doc = "G minimizes ||E f(x) - E f(G(z))||^2 on D's last hidden layer, added to or replacing its loss."
    params = {"weight": 1.0, "replace": False}
    positive = {"weight": SWITCH_OFF}
    needs_real_in_g_step = True

    def wrap_loss(self, loss):
        if not self.p["replace"]:
            return loss
        return dataclasses.replace(loss, g=_no_adversarial_term)

    def g_penalty(self, ctx: StepContext):
        with torch.no_grad():
            real_features = ctx.discriminate(ctx.real, ctx.real_label).features
        return {"feature_matching": self.p["weight"] * feature_distance(real_features, ctx.out_fake.features, ctx.run.seeds)}
