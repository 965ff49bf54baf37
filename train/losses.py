"""Adversarial losses as pure functions, in a registry by name.

Each loss is a pair: ``d(real_logits, fake_logits) -> scalar`` minimized by D,
and ``g(fake_logits) -> scalar`` minimized by G.  Logits are D's raw outputs
(no sigmoid).  ``real_target`` is the target D aims at on real samples: 1 for
the plain losses, α < 1 under one-sided label smoothing (fake targets stay 0).
Penalties such as WGAN-GP's gradient penalty are not losses; they are
techniques (``ctrlgen.train.techniques``) that a loss may require.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ctrlgen.errors import CtrlgenError

Tensor = torch.Tensor


@dataclass(frozen=True)
class GanLoss:
    name: str
    d: Callable[..., Tensor]  # (real_logits, fake_logits, real_target=1.0) -> scalar
    g: Callable[[Tensor], Tensor]  # (fake_logits) -> scalar
    doc: str
    requires: tuple[str, ...] = ()  # techniques this loss switches on (e.g. WGAN-GP's penalty)
    probabilistic: bool = True  # D's output is a logit of a probability (False for critics)
    supports_smoothing: bool = True  # one-sided label smoothing changes its real target


def _bce_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    # -[t·log σ(r) + (1-t)·log(1-σ(r))] - log(1-σ(f)), written with softplus for stability.
    real_term = real_target * F.softplus(-real) + (1.0 - real_target) * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


def _minimax_g(fake: Tensor) -> Tensor:
    # minimize log(1 - σ(f)) = -softplus(f): the original saturating objective.
    return -F.softplus(fake).mean()


def _nonsaturating_g(fake: Tensor) -> Tensor:
    # minimize -log σ(f) = softplus(-f).
    return F.softplus(-fake).mean()


def _ls_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * (fake**2).mean()


def _ls_g(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def _wasserstein_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    return fake.mean() - real.mean()


def _wasserstein_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _hinge_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    return F.relu(real_target - real).mean() + F.relu(1.0 + fake).mean()


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss("minimax", _bce_d, _minimax_g, "Goodfellow et al. 2014: G minimizes log(1 - D(G(z))) (saturates early)."),
    "nonsaturating": GanLoss("nonsaturating", _bce_d, _nonsaturating_g, "G maximizes log D(G(z)) instead (the heuristic of the GAN paper)."),
    "lsgan": GanLoss("lsgan", _ls_d, _ls_g, "Mao et al. 2017: least squares with targets 1 (real) and 0 (fake)."),
    "wgan": GanLoss(
        "wgan", _wasserstein_d, _wasserstein_g, "Arjovsky et al. 2017: critic difference, Lipschitz by weight clipping.",
        requires=("weight_clip",), probabilistic=False, supports_smoothing=False,
    ),
    "wgan-gp": GanLoss(
        "wgan-gp", _wasserstein_d, _wasserstein_g, "Gulrajani et al. 2017: critic difference with a gradient penalty on interpolates.",
        requires=("gradient_penalty",), probabilistic=False, supports_smoothing=False,
    ),
    "hinge": GanLoss("hinge", _hinge_d, _wasserstein_g, "Lim & Ye 2017 / Miyato et al. 2018: hinge D loss, G maximizes D(G(z)).", probabilistic=False),
    "dragan": GanLoss(
        "dragan", _bce_d, _nonsaturating_g, "Kodali et al. 2017: non-saturating loss with a gradient penalty around real data.",
        requires=("dragan_penalty",),
    ),
}


def get_loss(name: str) -> GanLoss:
    try:
        return LOSSES[name]
    except KeyError:
        raise CtrlgenError(f"loss {name!r} is unknown; use one of: {', '.join(LOSSES)}") from None


def d_probability(loss: GanLoss, logits: Tensor) -> Tensor:
    """D's output read as 'probability of real' (E-GAN's quality term, D accuracy):
    σ(logit) for probabilistic losses; for critics and least squares the logit thresholded at the
    midpoint of the targets (0 for critics, 0.5 for LSGAN) through a sigmoid."""
    if loss.name == "lsgan":
        return torch.sigmoid(4.0 * (logits - 0.5))
    return torch.sigmoid(logits)


# ---------------------------------------------------------------------- Q on unlabelled images
def class_entropy_gap(logits: torch.Tensor) -> torch.Tensor:
    """mean_i H(p_i) − H(mean_i p_i) for p_i = softmax(logits_i): CatGAN's objective for a classifier on
    unlabelled data (Springenberg 2016).  Low when each image gets one confident class (the first term)
    while the batch uses all classes evenly (the second, which keeps it from calling everything one class)."""
    logp = F.log_softmax(logits, 1)
    p = logp.exp()
    per_image = -(p * logp).sum(1).mean()
    mean = p.mean(0)
    return per_image + (mean * torch.log(mean.clamp_min(1e-12))).sum()
