"""Mode seeking (Mao et al. 2019, MSGAN): G is rewarded for making different images from different z.

A conditional G can learn to ignore its noise: the label alone decides the
image and the samples of one class look alike (within-class collapse).  The
mode-seeking term compares two samples made with the same label and codes but
different noise,

    d = mean |G(c, z₁) − G(c, z₂)| / mean |z₁ − z₂|,    L_MS = weight / (d + eps),

and G minimizes it, so small image distances for large latent distances cost
the most.  The paper's form (means over the pair halves of a batch, eps 1e-5,
weight 1).  With ``weight_late`` > 0 the weight becomes ``weight_late`` from step ``late_from`` × the
run's G steps on (a step count, so a resume is exact): a strong push for diversity while the learning
rates are high and a lighter one while they fall, where the weight sets the trade against conditional
accuracy (docs/results/fashion-cgan-runs.md).

With ``pair_scale`` > 0 the second sample of each pair is a nearby latent instead of a fresh one,
``z₂ = z₁ + pair_scale · ε`` with ε standard normal (clamped to [−1, 1] for uniform noise), so the
same ratio measures how far G spreads a latent's neighbourhood (the finite-difference estimate of
G's local Jacobian that Odena et al. 2018 use to study G's conditioning): a reward for samples
that are not packed close to their nearest neighbours, which recall's k-NN balls count
(docs/results/recall_by_class.md).  0, the default, is the paper's fresh noise.

The pairs cost no extra forward pass: ``g_latent`` makes G's latent batch
out of two halves that share every input but the noise (per ensemble block,
so each seed's copy pairs within its own block), and the penalty compares the
halves of the fake batch G's loss already made.  D's batches are untouched.
"""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import Z
from ctrlgen.train.techniques.base import (
    SWITCH_OFF,
    RunContext,
    StepContext,
    Technique,
    check_late_weight,
    late_weight,
    register,
)

Tensor = torch.Tensor


def _halves(x: Tensor, blocks: int) -> tuple[Tensor, Tensor]:
    """The first and second half of every one of ``blocks`` contiguous blocks of ``x``'s rows."""
    b = x.reshape(blocks, 2, -1, *x.shape[1:])
    return b[:, 0].reshape(-1, *x.shape[1:]), b[:, 1].reshape(-1, *x.shape[1:])


def paired(inputs: dict[str, Tensor], blocks: int = 1) -> dict[str, Tensor]:
    """``inputs`` with every input but the noise of each block's second half copied from its first half."""
    out = {}
    for key, value in inputs.items():
        if key == Z:
            out[key] = value
            continue
        first, _ = _halves(value, blocks)
        b = first.reshape(blocks, 1, -1, *value.shape[1:])
        out[key] = torch.cat([b, b], 1).reshape(value.shape)
    return out


def nearby_pairs(z: Tensor, blocks: int, scale: float, gen: torch.Generator, uniform: bool) -> Tensor:
    """``z`` with each block's second half replaced by its first half plus ``scale`` × standard normal noise
    (clamped to [-1, 1] where the noise is uniform), drawn from ``gen``."""
    first, _ = _halves(z, blocks)
    near = first + scale * torch.randn(first.shape, generator=gen, device=gen.device).to(first.device, first.dtype)
    if uniform:
        near = near.clamp(-1.0, 1.0)
    shape = (blocks, 1, -1, *z.shape[1:])
    return torch.cat([first.reshape(shape), near.reshape(shape)], 1).reshape(z.shape)


def mode_seeking_ratio(fake: Tensor, z: Tensor, blocks: int = 1) -> Tensor:
    """mean |G(c, z₁) − G(c, z₂)| / mean |z₁ − z₂| over the pairs of ``paired`` inputs, one value per block."""
    f1, f2 = _halves(fake.float(), blocks)
    z1, z2 = _halves(z.float(), blocks)
    return (f1 - f2).abs().reshape(blocks, -1).mean(1) / (z1 - z2).abs().reshape(blocks, -1).mean(1)


@register
class ModeSeeking(Technique):
    name = "mode_seeking"
    doc = "G minimizes weight / (mean|G(c,z1)-G(c,z2)| / mean|z1-z2| + eps) over same-condition pairs (MSGAN)."
    params = {"weight": 1.0, "eps": 1e-5, "weight_late": 0.0, "late_from": 0.5, "pair_scale": 0.0}
    positive = {"weight": SWITCH_OFF, "eps": "it keeps 1/d finite when two samples coincide"}
    non_negative = {"pair_scale": "0 draws each pair's second noise afresh, as the paper; > 0 draws it this far from the first"}

    @classmethod
    def check(cls, cfg, params):
        check_late_weight("techniques.mode_seeking", "weight", "weight_late", params.get("weight_late", 0.0), params.get("late_from", 0.5))
        if cfg.batch_size % 2:
            raise CtrlgenError(f"techniques.mode_seeking pairs the samples of each G batch: batch_size must be even, got {cfg.batch_size}")

    def g_latent(self, inputs: dict[str, Tensor], run: RunContext) -> dict[str, Tensor]:
        rows = inputs[Z].shape[0] // run.seeds
        if rows % 2:
            raise CtrlgenError(f"techniques.mode_seeking pairs the samples of each G batch, but a batch here has {rows} rows; "
                               "use a batch_size that stays even on every rank")
        out = paired(inputs, run.seeds)
        if self.p["pair_scale"] > 0:
            out[Z] = nearby_pairs(out[Z], run.seeds, self.p["pair_scale"], run.rng, uniform=run.spec.noise == "uniform")
        return out

    def g_penalty(self, ctx: StepContext):
        ratio = mode_seeking_ratio(ctx.fake, ctx.inputs[Z], ctx.run.seeds)
        # a mean over blocks, like the batch-mean losses beside it: each seed's copy gets its lone gradient
        weight = late_weight(ctx.run, self.p["weight"], self.p["weight_late"], self.p["late_from"])
        return {"mode_seeking": (weight / (ratio + self.p["eps"])).mean()}
