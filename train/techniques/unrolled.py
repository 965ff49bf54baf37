"""Unrolled GAN (Metz et al. 2017): G's update sees D after k look-ahead steps.

Before each G update, D's parameters are copied (as plain tensors) and
advanced ``steps`` times with D's own optimizer rule (Adam, starting from D's
current moments) on one real batch and one fake batch, through
``torch.func.functional_call``; G's loss is then computed against this
look-ahead D.  D's parameters, buffers and optimizer state are never touched;
D's own update is the ordinary one.

With ``second_order = true`` (the paper's form) the look-ahead steps are
differentiated through, so G also sees how D would *react* to its samples;
the Adam denominator is treated as a constant in that derivative.  The
look-ahead uses the adversarial D loss only (penalties are left out, they
regularize D's real update); weight clipping, a hard constraint on D's
parameters that the look-ahead would leave, is rejected.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import check_int
from ctrlgen.spec import LABEL
from ctrlgen.train.techniques.base import Technique, active_techniques, register


def adam_moments(opt: torch.optim.Optimizer, named: dict[str, torch.nn.Parameter]):
    """(m, v, step) per parameter name from D's optimizer (zeros before its first step)."""
    out = {}
    for name, p in named.items():
        st = opt.state.get(p, {})
        if "exp_avg" in st:
            out[name] = (st["exp_avg"].detach(), st["exp_avg_sq"].detach(), float(st["step"]))
        else:
            out[name] = (torch.zeros_like(p), torch.zeros_like(p), 0.0)
    return out


def look_ahead(run, steps: int, second_order: bool) -> dict[str, torch.Tensor]:
    """D's parameters after ``steps`` Adam steps on one real and one fake batch (D untouched)."""
    D = run.D
    named = dict(D.named_parameters())
    buffers = {k: b.clone() for k, b in D.named_buffers()}  # BN / spectral-norm state: copies
    group = run.opt_d.param_groups[0]
    lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
    moments = adam_moments(run.opt_d, named)
    real, y = run.next_real()
    y = y if run.spec.conditional else None
    inputs = run.sample_latent(real.shape[0])
    with torch.set_grad_enabled(second_order), run.autocast():
        fake = run.G(**inputs).float()
    params = {k: p.detach().requires_grad_(True) for k, p in named.items()}
    for _ in range(steps):
        with run.autocast():
            out_r = functional_call(D, {**params, **buffers}, (real, y))
            out_f = functional_call(D, {**params, **buffers}, (fake, inputs.get(LABEL)))
        loss = run.loss.d(out_r.logit.float(), out_f.logit.float())
        keys = list(params)
        grads = torch.autograd.grad(loss, [params[k] for k in keys], create_graph=second_order, allow_unused=True)
        new = {}
        for k, g in zip(keys, grads, strict=True):
            if g is None:  # e.g. the Q head: the adversarial loss does not reach it
                new[k] = params[k]
                continue
            g = g * run.seeds  # an ensemble's batch means average its seeds (train/ensemble.py)
            m, v, t = moments[k]
            m, v, t = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g.detach() ** 2, t + 1
            moments[k] = (m, v, t)
            step = lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
            new[k] = params[k] - step if second_order else (params[k] - step).detach().requires_grad_(True)
        params = new
    return {**params, **buffers}


@register
class Unrolled(Technique):
    name = "unrolled"
    doc = "G's loss is taken against D after k look-ahead optimizer steps (functional copies; D unchanged)."
    params = {"steps": 5, "second_order": True}

    @classmethod
    def check(cls, cfg, params):
        # D look-ahead updates inside every G step: 10^9 filled the memory
        check_int("techniques.unrolled.steps", params.get("steps", 5), 1, 100, "Metz et al. unrolled up to 10")
        if "weight_clip" in active_techniques(cfg):
            raise CtrlgenError(
                "unrolled look-ahead steps would leave weight clipping's box, so unrolling makes no sense with "
                "weight_clip (loss wgan); use loss wgan-gp or hinge with unrolled"
            )

    def d_for_g(self, run, d_fn):
        state = look_ahead(run, self.p["steps"], self.p["second_order"])
        D = run.D

        def unrolled_d(x, label=None):
            return functional_call(D, state, (x, label))

        return unrolled_d
