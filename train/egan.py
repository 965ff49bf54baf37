"""Evolutionary training, E-GAN (Wang et al. 2018): a population of generators against one discriminator.

``mode = "egan"`` in a config turns it on (``Trainer(cfg, dir)`` then builds an
``EganTrainer``); the ``[egan]`` table sets it, every key optional::

    [egan]
    population = 1                                      # μ: parents kept after every step
    mutations = ["minimax", "nonsaturating", "lsgan"]   # G losses from the registry (ctrlgen.train.losses)
    gamma = 0.1                                         # weight of the diversity term F_d in the fitness
    eval_batch = 0                                      # latent draws of the fitness batch (0 = batch_size)
    g_steps = 1                                         # G updates each child takes with its mutation

One training step:

1. **D**: ``n_critic`` updates as usual, each on a fake batch split evenly
   among the μ survivors (and its real batch; ``loss`` is D's loss).
2. **Variation**: every parent makes one child per mutation.  The parent's
   weights, buffers and Adam moments are copied into the trainer's own G and
   G optimizer (preallocated tensors; no module is deep-copied), and the child
   takes ``g_steps`` updates with that mutation's G loss (its ``g`` on D's
   logits, as the registry defines it) plus every technique's G penalty: for
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

State: parent 0 is the trainer's G and G optimizer; parents 1..μ-1 are a
technique-like object in ``trainer.techniques`` (``egan_population``), so
checkpoints, ``--resume``, the NaN guard and collapse rollbacks carry the
whole population with no special case.  ``metrics.jsonl`` gets one
``{"event": "egan", ...}`` line per step (the survivors' mutations, every
child's fitness, F_q and F_d); ``ctrlgen plot`` draws the share of each
mutation among the survivors over training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import LABEL
from ctrlgen.train.losses import LOSSES, GanLoss, d_probability, get_loss
from ctrlgen.train.techniques import StepContext, Technique
from ctrlgen.train.trainer import Trainer

if TYPE_CHECKING:
    from ctrlgen.train.config import TrainConfig

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


def _rank_share(eg: EganSettings, cfg: TrainConfig, world: int) -> int:
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
    ``seeds`` > 1: an ensemble (ctrlgen.ensemble): the batch is that many blocks and D's parameters are
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


# ---------------------------------------------------------------------- population state
class Slot:
    """One generator's state as preallocated tensors: parameters, buffers, Adam moments and step counts."""

    def __init__(self, g: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        self.params = [p.detach().clone() for p in g.parameters()]
        self.buffers = [b.detach().clone() for b in g.buffers()]
        st = [opt.state[p] for p in g.parameters()]
        self.m = [s["exp_avg"].clone() for s in st]
        self.v = [s["exp_avg_sq"].clone() for s in st]
        self.steps = [s["step"].clone() for s in st]

    def tensors(self) -> list[list[Tensor]]:
        return [self.params, self.buffers, self.m, self.v, self.steps]

    @torch.no_grad()
    def save_from(self, g: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        params = list(g.parameters())
        st = [opt.state[p] for p in params]
        for dst, src in zip(self.tensors(), _live(g, st), strict=True):
            _copy(dst, src)

    @torch.no_grad()
    def load_into(self, g: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        st = [opt.state[p] for p in g.parameters()]
        for src, dst in zip(self.tensors(), _live(g, st), strict=True):
            _copy(dst, src)

    def named(self, g: torch.nn.Module) -> dict[str, Tensor]:
        """Parameters and buffers by name, for ``functional_call(g, ...)``."""
        names = [n for n, _ in g.named_parameters()] + [n for n, _ in g.named_buffers()]
        return dict(zip(names, self.params + self.buffers, strict=True))


def _copy(dst: list[Tensor], src: list[Tensor]) -> None:
    if dst:  # a generator without buffers has an empty list
        torch._foreach_copy_(dst, src)


def _live(g: torch.nn.Module, st: list[dict[str, Tensor]]) -> list[list[Tensor]]:
    return [list(g.parameters()), list(g.buffers()),
            [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]]


class Population(Technique):
    """Parents 1..μ-1 (parent 0 is the trainer's G): checkpointed and restored like a technique's state."""

    name = "egan_population"

    def __init__(self, slots: list[Slot]) -> None:
        super().__init__()
        self.slots = slots

    def state_dict(self) -> dict[str, Tensor]:
        out = {}
        for i, slot in enumerate(self.slots):
            for part, ts in zip(("p", "b", "m", "v", "s"), slot.tensors(), strict=True):
                out.update({f"{i + 1}.{part}{j}": t for j, t in enumerate(ts)})
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for i, slot in enumerate(self.slots):
            for part, ts in zip(("p", "b", "m", "v", "s"), slot.tensors(), strict=True):
                for j, t in enumerate(ts):
                    t.copy_(state[f"{i + 1}.{part}{j}"])


def _zero_adam_state(opt: torch.optim.Optimizer) -> None:
    """Adam's state as it would be created lazily before its first step, so every slot has tensors to copy."""
    for group in opt.param_groups:
        for p in group["params"]:
            if not opt.state[p]:
                opt.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32),
                                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


# ---------------------------------------------------------------------- the trainer
class EganTrainer(Trainer):
    """The trainer with E-GAN's G update: variation, evaluation, selection (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, run_dir, distributed: bool = False) -> None:
        super().__init__(cfg, run_dir, distributed)
        self.egan = egan_settings(cfg)
        self.eval_share = _rank_share(self.egan, cfg, self.dist.world) * self.ensemble  # rows of the fitness batch
        self.mutations = [(name, self.wrapped_loss(get_loss(name))) for name in self.egan.mutations]
        _zero_adam_state(self.opt_g)
        mu, n_children = self.egan.population, self.egan.population * len(self.mutations)
        # Parents 1..μ-1 start as copies of G (E-GAN starts from one generator); parent 0 is G itself.
        self.population = Population([Slot(self.G, self.opt_g) for _ in range(mu - 1)])
        self.techniques.append(self.population)
        self._parent0 = Slot(self.G, self.opt_g)
        self._children = [Slot(self.G, self.opt_g) for _ in range(n_children)]
        self._last_real: tuple[Tensor, Tensor] | None = None
        self._pending: list[dict[str, Any]] = []  # per-step records, written with the next training record

    # ------------------------------------------------------------------ D's fakes: the survivors share the batch
    def parents(self) -> list[Slot]:
        return [self._parent0, *self.population.slots]

    def generate_fake(self, inputs: dict[str, Tensor]) -> Tensor:
        mu = self.egan.population
        if mu == 1:
            return self.G(**inputs)
        n = next(iter(inputs.values())).shape[0]
        bounds = [round(i * n / mu / self.cfg.net.pack) * self.cfg.net.pack for i in range(mu + 1)]
        parts = [self.G(**{k: v[bounds[0]:bounds[1]] for k, v in inputs.items()})]
        for i, slot in enumerate(self.population.slots, start=1):
            chunk = {k: v[bounds[i]:bounds[i + 1]] for k, v in inputs.items()}
            parts.append(functional_call(self.G, slot.named(self.G), args=(), kwargs=chunk))
        return torch.cat(parts)

    def next_real(self) -> tuple[Tensor, Tensor]:
        x, y = super().next_real()
        self._last_real = (x, y)  # the fitness batch's real half: the last D update's batch
        return x, y

    # ------------------------------------------------------------------ G: variation, evaluation, selection
    def _child_update(self, loss: GanLoss, inputs: dict[str, Tensor], real, y) -> dict[str, Tensor]:
        d_fn = self.D
        for t in self.techniques:
            d_fn = t.d_for_g(self, d_fn)
        with self.autocast():
            fake = self.g_train(**inputs)  # through DDP when distributed: the child's G gradients are all-reduced
            out_f = d_fn(fake, inputs.get(LABEL))
        terms = {"g_adv": loss.g(out_f.logit.float())}
        ctx = StepContext(self, real, y if self.spec.conditional else None, inputs, fake, out_f, d=d_fn)
        for t in self._g_pen:
            terms.update(t.g_penalty(ctx) or {})
        self.opt_g.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        self.opt_g.step()
        return {k: v.detach() for k, v in terms.items()}

    def g_step(self) -> dict[str, Tensor]:
        eg = self.egan
        assert self._last_real is not None, "E-GAN's G step follows a D step"
        # this rank's share of the fitness batch: the first rows of each seed's block (one block unless an ensemble)
        s = self.ensemble
        real_eval, y_eval = (t.reshape(s, -1, *t.shape[1:])[:, : self.eval_share // s].flatten(0, 1) for t in self._last_real)
        eval_inputs = self.sample_latent(self.eval_share)
        self._parent0.save_from(self.G, self.opt_g)  # G is the scratch module from here on
        d_params = [p for p in self.D.parameters() if p.requires_grad]
        d_buffers = [b.detach().clone() for b in self.D.buffers()]
        with self.autocast():
            real_logit = self.D(real_eval, y_eval if self.spec.conditional else None).logit.float()
        child_terms, f_q, f_d = [], [], []
        for parent in self.parents():
            # A parent's children see the same batches (their losses differ, nothing else); parents draw their own,
            # so parents that start as copies (population > 1) do not stay twins.
            batches = []
            for _ in range(eg.g_steps):
                inputs = self.sample_latent(self.batch)
                real, y = self.next_real() if self._needs_real_g else (None, None)
                batches.append((inputs, real, y))
            for _, loss in self.mutations:
                parent.load_into(self.G, self.opt_g)
                self.D.requires_grad_(False)  # no D weight gradients in G's updates
                try:
                    for inputs, real, y in batches:
                        terms = self._child_update(loss, inputs, real, y)
                finally:
                    self.D.requires_grad_(True)
                with torch.no_grad(), self.autocast():
                    fake = self.G(**eval_inputs).float()
                with self.autocast():
                    q, d = fitness_terms(self.D, d_params, self.loss, real_logit, fake, eval_inputs.get(LABEL), self.ensemble)
                self._children[len(child_terms)].save_from(self.G, self.opt_g)
                child_terms.append(terms)
                f_q.append(q)
                f_d.append(d)
        del real_logit
        with torch.no_grad():
            _copy(list(self.D.buffers()), d_buffers)  # the fitness passes leave D as it was
            fq_fd = reduce_fitness(torch.stack([torch.stack(f_q), torch.stack(f_d)]).float())
            fitness = fq_fd[0] + eg.gamma * fq_fd[1]
        if self.ensemble > 1:  # every seed of the ensemble selects its own survivor
            return self._select_per_seed(fitness, fq_fd, child_terms)
        values = fitness.cpu().tolist()
        chosen = select(values, eg.population)
        # The survivors become the parents (slot objects change places: no copies), the best is loaded into G.
        survivors = [self._children[i] for i in chosen]
        rest = [s for i, s in enumerate(self._children) if i not in chosen]
        self._children = rest + [self._parent0, *self.population.slots]
        self._parent0, self.population.slots = survivors[0], survivors[1:]
        self._parent0.load_into(self.G, self.opt_g)
        for t in self.techniques:
            t.after_g_step(self)
        names = [name for name, _ in self.mutations]
        won = [names[i % len(names)] for i in chosen]
        fq_l, fd_l = fq_fd[0].cpu().tolist(), fq_fd[1].cpu().tolist()
        self._record(won, values, fq_l, fd_l)
        best = chosen[0]
        stats = dict(child_terms[best])
        stats.update(fitness=fitness[best], f_q=fq_fd[0, best], f_d=fq_fd[1, best])
        return stats

    @torch.no_grad()
    def _select_per_seed(self, fitness: Tensor, fq_fd: Tensor, child_terms: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Ensembles (μ = 1): fitness is (children, seeds); seed s's parent becomes its own fittest child,
        slice s of that child's weights, buffers and Adam moments (tie: the earlier child; NaN loses)."""
        seeds = fitness.shape[1]
        best = [select(fitness[:, s].cpu().tolist(), 1)[0] for s in range(seeds)]
        parent = self._parent0
        for s, c in enumerate(best):
            child = self._children[c]
            for dst, src in zip(parent.tensors()[:4], child.tensors()[:4], strict=True):  # params, buffers, m, v
                for d, t in zip(dst, src, strict=True):
                    d[s].copy_(t[s])
        _copy(parent.steps, self._children[best[0]].steps)  # Adam's step counts: the same in every child
        parent.load_into(self.G, self.opt_g)
        for t in self.techniques:
            t.after_g_step(self)
        names = [name for name, _ in self.mutations]
        mean = fitness.mean(1)
        self._record([names[c % len(names)] for c in best], mean.cpu().tolist(), fq_fd[0].mean(1).cpu().tolist(),
                     fq_fd[1].mean(1).cpu().tolist())
        stats = {k: torch.stack([child_terms[c][k] for c in best]).mean() for k in child_terms[best[0]]}
        idx = torch.tensor(best, device=fitness.device)
        seeds_range = torch.arange(seeds, device=fitness.device)
        stats.update(fitness=fitness[idx, seeds_range].mean(), f_q=fq_fd[0][idx, seeds_range].mean(),
                     f_d=fq_fd[1][idx, seeds_range].mean())
        return stats

    # ------------------------------------------------------------------ metrics.jsonl: one line per step
    def _record(self, won: list[str], fitness: list[float], f_q: list[float], f_d: list[float]) -> None:
        step = self.step + 1  # train_step counts this step after the G update
        self._pending = [r for r in self._pending if r["step"] < step]  # steps undone (NaN guard, rollback) are dropped
        r4 = lambda xs: [round(x, 5) if math.isfinite(x) else None for x in xs]  # noqa: E731
        self._pending.append({"event": "egan", "step": step, "won": won, "fitness": r4(fitness), "f_q": r4(f_q), "f_d": r4(f_d)})

    def log(self, record: dict[str, Any]) -> None:
        if "event" not in record:  # a training record: the per-step E-GAN lines go first
            self.log_pending()
        super().log(record)

    def save_checkpoint(self):
        self.log_pending()  # a stop between two log lines must not lose its steps' records
        return super().save_checkpoint()

    def log_pending(self) -> None:
        for r in self._pending:
            if r["step"] <= self.step:
                super().log(r)
        self._pending = [r for r in self._pending if r["step"] > self.step]

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "egan": {"mutations": list(self.egan.mutations), "population": self.egan.population,
                                           "G": "the best survivor of the last step"}}
