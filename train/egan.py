"""Evolutionary training, E-GAN (Wang et al. 2018): a population of generators against one discriminator.

``mode = "egan"`` in a config turns it on (the trainer's G update is then the
``egan`` piece, train/egan_update.py; this module holds the settings, the
fitness and the selection); the ``[egan]`` table sets it, every key optional::

    [egan]
    population = 1                                      # μ: parents kept after every step
    mutations = ["minimax", "nonsaturating", "lsgan"]   # G losses by registry name (ctrlgen.train.losses); see mutation_loss
    gamma = 0.1                                         # weight of the diversity term F_d in the fitness
    eval_batch = 0                                      # latent draws of the fitness batch (0 = batch_size)
    g_steps = 1                                         # G updates each child takes with its mutation

One training step:

1. **D**: ``n_critic`` updates as usual, each on a fake batch split evenly
   among the μ survivors (and its real batch; ``loss`` is D's loss).
2. **Variation**: every parent makes one child per mutation.  The parent's
   weights, buffers and Adam moments are copied into the trainer's own G and
   G optimizer (preallocated tensors; no module is deep-copied), and the child
   takes ``g_steps`` updates with that mutation's G loss (``mutation_loss``:
   the registry's G loss, except that under a cross-entropy D the least-squares
   mutation reads D's probability, as in the paper) plus every technique's G penalty: for
   InfoGAN that is the mutual-information term, so every child keeps its codes.
   The children of one parent see the same latent batches; each parent draws
   its own (parents that start as copies then drift apart).
3. **Evaluation** on one batch shared by all children (``eval_batch`` latent
   draws and the last D update's real batch):  F = F_q + γ·F_d, where
   F_q = mean D(G(z)) read as a probability by ``d_probability``: σ(logit) for
   the BCE losses (minimax, nonsaturating, dragan) and, for D losses without
   probabilities (hinge, WGAN, WGAN-GP critics), σ(critic output), a bounded
   monotone reading of the critic; σ(4(logit − ½)) for least squares.
   F_d = −log ‖∇_D L_D‖ with L_D D's adversarial loss on the real batch and
   the child's samples, the norm over all of D's parameters (a child whose
   samples leave D with small gradients is the more diverse one).  D's
   buffers (BatchNorm statistics, spectral-norm vectors) are put back after.
4. **Selection**: the μ fittest children (a tie goes to the earlier child, a
   NaN fitness loses) become the parents; the best is loaded into the
   trainer's G, so sampling, monitoring, EMA, checkpoints and export all see
   the best survivor.  The techniques' after-G-step hooks then run once.

Fitness values go through ``reduce_fitness``, which averages them across
ranks when ``torch.distributed`` is initialized: every rank then ranks the
same numbers and keeps the same survivors (a DDP run stays one population).
Distributed (train/distributed.py), every rank holds the whole population;
each child's G updates run through DDP on the rank's rows (its gradients are
all-reduced, so the child is the same on every rank), and each rank scores
the children on its share, ``eval_batch / N``, of the fitness batch before
the all-reduce.

State: parent 0 is the trainer's G and G optimizer; parents 1..μ-1 are the
``Population``, whose own state dict the trainer checkpoints under
``population.`` (and restores on ``--resume``, NaN-guard undos and collapse
rollbacks).  ``metrics.jsonl`` gets one
``{"event": "egan", ...}`` line per step (the survivors' mutations, every
child's fitness, F_q and F_d); ``ctrlgen plot`` draws the share of each
mutation among the survivors over training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import check_int
from ctrlgen.train.losses import LOSSES, GanLoss, d_probability

# The config (train/config.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
TrainConfig = Any

Tensor = torch.Tensor
MODES = ("standard", "egan")
DEFAULTS: dict[str, Any] = {
    "population": 1,
    "mutations": ["minimax", "nonsaturating", "lsgan"],
    "gamma": 0.1,
    "eval_batch": 0,
    "g_steps": 1,
}


# ---------------------------------------------------------------------- config
@dataclass(frozen=True)
class EganSettings:
    population: int
    mutations: tuple[str, ...]
    gamma: float
    eval_batch: int
    g_steps: int


def egan_settings(cfg: TrainConfig) -> EganSettings:
    """The [egan] table with defaults filled in and every value checked (one-line errors)."""
    table = dict(cfg.egan)
    unknown = sorted(set(table) - set(DEFAULTS))
    if unknown:
        raise CtrlgenError(f"egan: unknown setting(s) {unknown}; valid: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **table}
    for key in ("population", "eval_batch", "g_steps"):
        if isinstance(s[key], bool) or not isinstance(s[key], int):
            raise CtrlgenError(f"egan.{key} must be an integer, got {s[key]!r}")
    if isinstance(s["gamma"], bool) or not isinstance(s["gamma"], (int, float)) or not math.isfinite(s["gamma"]) or s["gamma"] < 0:
        raise CtrlgenError(f"egan.gamma must be a number >= 0, got {s['gamma']!r}")
    muts = s["mutations"]
    if isinstance(muts, str) or not isinstance(muts, (list, tuple)) or not muts or not all(isinstance(m, str) for m in muts):
        raise CtrlgenError(f"egan.mutations must be a non-empty list of G loss names, e.g. [\"minimax\", \"lsgan\"]; got {muts!r}")
    bad = [m for m in muts if m not in LOSSES]
    if bad:
        raise CtrlgenError(f"egan.mutations: unknown loss(es) {bad}; use names from: {', '.join(LOSSES)}")
    if len(set(muts)) != len(muts):
        raise CtrlgenError(f"egan.mutations names a loss twice ({list(muts)}); list each once")
    if s["population"] < 1 or s["g_steps"] < 1 or s["eval_batch"] < 0:
        raise CtrlgenError(f"egan.population and egan.g_steps must be >= 1 and egan.eval_batch >= 0, got {s['population']}, {s['g_steps']}, {s['eval_batch']}")
    check_int("egan.g_steps", s["g_steps"], 1, 100, "the E-GAN paper takes 1")  # G updates per child in every step: 10^9 never ended one
    eval_batch = s["eval_batch"] or cfg.batch_size
    if eval_batch > cfg.batch_size:
        raise CtrlgenError(f"egan.eval_batch={eval_batch} is larger than batch_size={cfg.batch_size} (the real half of the fitness batch); "
                           f"use at most {cfg.batch_size}")
    if eval_batch % cfg.net.pack:
        raise CtrlgenError(f"egan.eval_batch={eval_batch} must be a multiple of net.pack={cfg.net.pack}")
    if s["population"] > cfg.batch_size // cfg.net.pack:
        raise CtrlgenError(f"egan.population={s['population']} survivors cannot share D's fake batch of {cfg.batch_size}; "
                           "use a smaller population or a larger batch_size")
    return EganSettings(s["population"], tuple(muts), float(s["gamma"]), eval_batch, s["g_steps"])


# ---------------------------------------------------------------------- mutations
def _ls_probability_g(fake: Tensor) -> Tensor:
    # E-GAN's least-squares mutation, E[(D(G(z)) - 1)^2] on D's probability D = σ(logit).
    return ((torch.sigmoid(fake) - 1.0) ** 2).mean()


def mutation_loss(name: str, d_loss: GanLoss) -> GanLoss:
    """The G loss of mutation ``name`` against a D trained with ``d_loss``.

    E-GAN's three mutations (Wang et al. 2019, Eqs. 2-4, and the authors' Theano code, whose D ends in a
    sigmoid) all read one D's *probability*: minimax E[log(1 - D)], heuristic -E[log D], least squares
    E[(D - 1)^2].  Under a D trained with cross-entropy (minimax, nonsaturating, dragan), ``lsgan`` is
    therefore the quadratic on σ(logit), not the LSGAN loss on the raw logit: the raw-logit quadratic
    gave G gradients 2-5x the other mutations' (it grows without bound where the sigmoid saturates),
    won ~90% of the selections on quality alone and collapsed E-GAN on Fashion-MNIST.  Under a D trained
    with least squares (``loss = "lsgan"``) D's output is the least-squares score itself and the LSGAN
    G loss applies as it is; every other mutation is the registry's G loss."""
    loss = LOSSES[name]
    if name == "lsgan" and d_loss.probabilistic and d_loss.name != "lsgan":
        return GanLoss("lsgan", loss.d, _ls_probability_g, "E-GAN's least-squares mutation on D's probability.",
                       loss.requires, loss.probabilistic, loss.supports_smoothing)
    return loss


def check_egan(cfg: TrainConfig) -> None:
    if cfg.mode not in MODES:
        raise CtrlgenError(f"mode {cfg.mode!r} is unknown; use one of {', '.join(MODES)}")
    if cfg.mode != "egan":
        if cfg.egan:
            raise CtrlgenError("an [egan] table is set but mode is \"standard\"; set mode = \"egan\" or remove the table")
        return
    egan_settings(cfg)
    if cfg.techniques.get("feature_matching", {}).get("replace"):
        raise CtrlgenError("techniques.feature_matching.replace=true removes G's adversarial loss, which is what E-GAN's "
                           "mutations are; use replace=false (feature matching added to every child's loss) with mode=egan")


def rank_share(eg: EganSettings, cfg: TrainConfig, world: int) -> int:
    """Each rank's share of the fitness batch (train/distributed.py: batch sizes are global)."""
    if eg.eval_batch % (world * cfg.net.pack):
        raise CtrlgenError(f"egan.eval_batch={eg.eval_batch} must split over {world} ranks in multiples of net.pack={cfg.net.pack}; "
                           f"use a multiple of {world * cfg.net.pack}")
    if eg.population > cfg.batch_size // world // cfg.net.pack:
        raise CtrlgenError(f"egan.population={eg.population} survivors cannot share each rank's fake batch of "
                           f"{cfg.batch_size // world}; use a smaller population or a larger batch_size")
    return eg.eval_batch // world


# ---------------------------------------------------------------------- fitness and selection
def fitness_terms(
    d_fn, d_params: list[Tensor], loss: GanLoss, real_logit: Tensor, fake: Tensor, fake_label: Tensor | None,
    seeds: int = 1,
) -> tuple[Tensor, Tensor]:
    """(F_q, F_d) of one child's samples ``fake``: mean D probability, −log of D's loss-gradient norm.

    ``real_logit`` is D's output on the real batch with its graph kept (it is shared by every child).
    ``seeds`` > 1: an ensemble (train/ensemble.py): the batch is that many blocks and D's parameters are
    stacked per seed, so both terms come per seed, shape (seeds,)."""
    out_f = d_fn(fake, fake_label)
    logit = out_f.logit.float()
    f_q = d_probability(loss, logit.detach()).reshape(seeds, -1).mean(1)
    l_d = loss.d(real_logit, logit)
    grads = torch.autograd.grad(l_d, d_params, retain_graph=True, allow_unused=True)
    norms = [g.detach().float().reshape(seeds, -1).norm(dim=1) for g in grads if g is not None]
    norm = torch.stack(norms).norm(dim=0) if norms else torch.zeros(seeds, device=logit.device)
    f_d = -torch.log(norm.clamp_min(torch.finfo(torch.float32).tiny))
    return (f_q[0], f_d[0]) if seeds == 1 else (f_q, f_d)


def reduce_fitness(values: Tensor) -> Tensor:
    """Every child's fitness terms, averaged over ranks when torch.distributed is initialized.

    All selection reads the result, so every rank keeps the same survivors."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= dist.get_world_size()
    return values


def select(fitness: list[float], mu: int) -> list[int]:
    """Indices of the ``mu`` fittest, best first; a tie goes to the lower index, NaN is the worst."""
    key = [(-f if f == f else math.inf, i) for i, f in enumerate(fitness)]
    return [i for _, i in sorted(key)[:mu]]
