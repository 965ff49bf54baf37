"""Penalties on D's input gradient: WGAN-GP, DRAGAN and R1.

* gradient_penalty (Gulrajani et al. 2017): λ·(‖∇ₓD(x̂)‖₂ − 1)² on x̂ = εx + (1−ε)G(z), ε ~ U[0,1] per sample.
* dragan_penalty (Kodali et al. 2017): the same term on x̂ = x + α·δ, δ = 0.5·std(x)·U[0,1] noise around reals.
* r1 (Mescheder et al. 2018): γ/2·‖∇ₓD(x)‖₂² on real samples (zero-centred), every ``every`` steps, scaled up to match.

Each needs per-sample gradients, so D must not use batch normalization with it.
"""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import check_int
from ctrlgen.train.techniques.base import StepContext, Technique, register


def input_gradient_norm(ctx: StepContext, x: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    """‖∇ₓ Σ D(x)‖₂ per sample, differentiable (create_graph) so the penalty trains D."""
    x = x.detach().requires_grad_(True)
    out = ctx.discriminate(x, label)
    (grad,) = torch.autograd.grad(out.logit.sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def _reject_batchnorm(name: str, cfg) -> None:
    if cfg.net.d_norm == "batch":
        raise CtrlgenError(f"{name} needs per-sample gradients but D uses batch norm; set net.d_norm to none, layer or spectral")


# A penalty's weight (or scale) below 0 would reward what it is meant to penalize; 0 would do nothing.
SWITCH_PENALTY_OFF = "to switch the penalty off, remove its table"


@register
class GradientPenalty(Technique):
    name = "gradient_penalty"
    doc = "WGAN-GP: lambda * (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."
    params = {"weight": 10.0}
    positive = {"weight": SWITCH_PENALTY_OFF}

    @classmethod
    def check(cls, cfg, params):
        _reject_batchnorm(cls.name, cfg)

    def d_penalty(self, ctx):
        real, fake = ctx.real, ctx.fake.detach()
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=ctx.run.rng)
        x_hat = eps * real + (1 - eps) * fake
        norm = input_gradient_norm(ctx, x_hat, ctx.real_label)
        return {"gp": self.p["weight"] * ((norm - 1.0) ** 2).mean()}


@register
class DraganPenalty(Technique):
    name = "dragan_penalty"
    doc = "DRAGAN: lambda * (||grad D(x_hat)|| - 1)^2 on noisy perturbations of real samples."
    params = {"weight": 10.0, "scale": 0.5}
    positive = {"weight": SWITCH_PENALTY_OFF, "scale": SWITCH_PENALTY_OFF}

    @classmethod
    def check(cls, cfg, params):
        _reject_batchnorm(cls.name, cfg)

    def d_penalty(self, ctx):
        real = ctx.real
        gen = ctx.run.rng
        # std(x) of each seed's own block when the run is an ensemble (one block, the batch, otherwise)
        n = ctx.run.seeds
        std = real.reshape(n, -1).std(1).repeat_interleave(real.shape[0] // n).view(-1, *([1] * (real.dim() - 1)))
        delta = self.p["scale"] * std * torch.rand(real.shape, device=real.device, generator=gen)
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=gen)
        norm = input_gradient_norm(ctx, real + alpha * delta, ctx.real_label)
        return {"dragan": self.p["weight"] * ((norm - 1.0) ** 2).mean()}


@register
class R1(Technique):
    name = "r1"
    doc = "R1: gamma/2 * ||grad D(x)||^2 on real samples (zero-centred), lazily every N steps."
    params = {"gamma": 10.0, "every": 1}
    positive = {"gamma": SWITCH_PENALTY_OFF}

    @classmethod
    def check(cls, cfg, params):
        _reject_batchnorm(cls.name, cfg)
        check_int("techniques.r1.every", params.get("every", 1), 1, 1000,
                  "lazy R1 runs on every N-th step, scaled by N; StyleGAN2 uses 16")

    def d_penalty(self, ctx):
        every = self.p["every"]
        if ctx.run.step % every:
            return None
        norm = input_gradient_norm(ctx, ctx.real, ctx.real_label)
        return {"r1": 0.5 * self.p["gamma"] * every * (norm**2).mean()}
