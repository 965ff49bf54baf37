"""E-GAN's G update (train/egan.py says what it does): variation, evaluation, selection.

The piece keeps the population: parent 0 lives in the trainer's G and G
optimizer (so sampling, monitoring, EMA, checkpoints and export see the best
survivor), parents 1..μ-1 and the children are preallocated ``Slot`` tensors.
Every child takes its updates through ``g_update`` (train/updates.py), the
same G step as a standard run, with its mutation's loss.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import functional_call

from ctrlgen.spec import LABEL
from ctrlgen.train.egan import egan_settings, fitness_terms, mutation_loss, rank_share, reduce_fitness, select
from ctrlgen.train.updates import GUpdate, g_batch, g_update, register_update

# The trainer (train/trainer.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any

Tensor = torch.Tensor


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
        for dst, src in zip(self.tensors(), _live(g, opt), strict=True):
            _copy(dst, src)

    @torch.no_grad()
    def load_into(self, g: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        for src, dst in zip(self.tensors(), _live(g, opt), strict=True):
            _copy(dst, src)

    def named(self, g: torch.nn.Module) -> dict[str, Tensor]:
        """Parameters and buffers by name, for ``functional_call(g, ...)``."""
        names = [n for n, _ in g.named_parameters()] + [n for n, _ in g.named_buffers()]
        return dict(zip(names, self.params + self.buffers, strict=True))


def _copy(dst: list[Tensor], src: list[Tensor]) -> None:
    if dst:  # a generator without buffers has an empty list
        torch._foreach_copy_(dst, src)


def _live(g: torch.nn.Module, opt: torch.optim.Optimizer) -> list[list[Tensor]]:
    st = [opt.state[p] for p in g.parameters()]
    return [list(g.parameters()), list(g.buffers()),
            [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]]


class Population:
    """Parents 1..μ-1 (parent 0 is the trainer's G), with a state dict of their own."""

    PARTS = ("p", "b", "m", "v", "s")

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots

    def state_dict(self) -> dict[str, Tensor]:
        out = {}
        for i, slot in enumerate(self.slots):
            for part, ts in zip(self.PARTS, slot.tensors(), strict=True):
                out.update({f"{i + 1}.{part}{j}": t for j, t in enumerate(ts)})
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for i, slot in enumerate(self.slots):
            for part, ts in zip(self.PARTS, slot.tensors(), strict=True):
                for j, t in enumerate(ts):
                    t.copy_(state[f"{i + 1}.{part}{j}"])


def _zero_adam_state(opt: torch.optim.Optimizer) -> None:
    """Adam's state as it would be created lazily before its first step, so every slot has tensors to copy.

    As torch's Adam does: the step count lives on the parameter's device for the fused (and capturable)
    kernels, which refuse a CPU count next to CUDA weights, and on the CPU otherwise."""
    for group in opt.param_groups:
        on_device = group.get("fused") or group.get("capturable")
        for p in group["params"]:
            if not opt.state[p]:
                opt.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu"),
                                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


@register_update
class EganUpdate(GUpdate):
    name = "egan"

    def __init__(self, trainer: Trainer) -> None:
        super().__init__(trainer)
        tr = trainer
        self.settings = egan_settings(tr.cfg)
        self.eval_share = rank_share(self.settings, tr.cfg, tr.dist.world) * tr.ensemble  # rows of the fitness batch
        self.mutations = [(name, tr.wrapped_loss(mutation_loss(name, tr.loss))) for name in self.settings.mutations]
        _zero_adam_state(tr.opt_g)
        mu, n_children = self.settings.population, self.settings.population * len(self.mutations)
        # Parents 1..μ-1 start as copies of G (E-GAN starts from one generator); parent 0 is G itself.
        self.population = Population([Slot(tr.G, tr.opt_g) for _ in range(mu - 1)])
        self.parent0 = Slot(tr.G, tr.opt_g)
        self.children = [Slot(tr.G, tr.opt_g) for _ in range(n_children)]
        self.pending: list[dict[str, Any]] = []  # per-step records, written with the next training record

    # ------------------------------------------------------------------ D's fakes: the survivors share the batch
    def parents(self) -> list[Slot]:
        return [self.parent0, *self.population.slots]

    def generate_fake(self, inputs: dict[str, Tensor]) -> Tensor:
        tr, mu = self.tr, self.settings.population
        if mu == 1:
            return tr.G(**inputs)
        n = next(iter(inputs.values())).shape[0]
        pack = tr.cfg.net.pack
        bounds = [round(i * n / mu / pack) * pack for i in range(mu + 1)]
        parts = [tr.G(**{k: v[bounds[0]:bounds[1]] for k, v in inputs.items()})]
        for i, slot in enumerate(self.population.slots, start=1):
            chunk = {k: v[bounds[i]:bounds[i + 1]] for k, v in inputs.items()}
            parts.append(functional_call(tr.G, slot.named(tr.G), args=(), kwargs=chunk))
        return torch.cat(parts)

    # ------------------------------------------------------------------ G: variation, evaluation, selection
    def step(self) -> dict[str, Tensor]:
        tr, eg = self.tr, self.settings
        assert tr.last_real is not None, "E-GAN's G step follows a D step"
        # this rank's share of the fitness batch: the first rows of each seed's block (one block unless an ensemble)
        s = tr.ensemble
        real_eval, y_eval = (t.reshape(s, -1, *t.shape[1:])[:, : self.eval_share // s].flatten(0, 1) for t in tr.last_real)
        eval_inputs = tr.sample_latent(self.eval_share)
        self.parent0.save_from(tr.G, tr.opt_g)  # G is the scratch module from here on
        d_params = [p for p in tr.D.parameters() if p.requires_grad]
        d_buffers = [b.detach().clone() for b in tr.D.buffers()]
        with tr.autocast():
            real_logit = tr.D(real_eval, y_eval if tr.spec.conditional else None).logit.float()
        child_terms, f_q, f_d = [], [], []
        for parent in self.parents():
            # A parent's children see the same batches (their losses differ, nothing else); parents draw their own,
            # so parents that start as copies (population > 1) do not stay twins.
            batches = [g_batch(tr) for _ in range(eg.g_steps)]
            for _, loss in self.mutations:
                parent.load_into(tr.G, tr.opt_g)
                terms = g_update(tr, loss, batches)
                with torch.no_grad(), tr.autocast():
                    fake = tr.G(**eval_inputs).float()
                with tr.autocast():
                    q, d = fitness_terms(tr.D, d_params, tr.loss, real_logit, fake, eval_inputs.get(LABEL), tr.ensemble)
                self.children[len(child_terms)].save_from(tr.G, tr.opt_g)
                child_terms.append(terms)
                f_q.append(q)
                f_d.append(d)
        del real_logit
        with torch.no_grad():
            _copy(list(tr.D.buffers()), d_buffers)  # the fitness passes leave D as it was
            fq_fd = reduce_fitness(torch.stack([torch.stack(f_q), torch.stack(f_d)]).float())
            fitness = fq_fd[0] + eg.gamma * fq_fd[1]
        if tr.ensemble > 1:  # every seed of the ensemble selects its own survivor
            return self._select_per_seed(fitness, fq_fd, child_terms)
        values = fitness.cpu().tolist()
        chosen = select(values, eg.population)
        # The survivors become the parents (slot objects change places: no copies), the best is loaded into G.
        survivors = [self.children[i] for i in chosen]
        rest = [c for i, c in enumerate(self.children) if i not in chosen]
        self.children = rest + [self.parent0, *self.population.slots]
        self.parent0, self.population.slots = survivors[0], survivors[1:]
        self.parent0.load_into(tr.G, tr.opt_g)
        tr.after_g_step()
        names = [name for name, _ in self.mutations]
        self._record([names[i % len(names)] for i in chosen], values, fq_fd[0].cpu().tolist(), fq_fd[1].cpu().tolist())
        best = chosen[0]
        stats = dict(child_terms[best])
        stats.update(fitness=fitness[best], f_q=fq_fd[0, best], f_d=fq_fd[1, best])
        return stats

    @torch.no_grad()
    def _select_per_seed(self, fitness: Tensor, fq_fd: Tensor, child_terms: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Ensembles (μ = 1): fitness is (children, seeds); seed s's parent becomes its own fittest child,
        slice s of that child's weights, buffers and Adam moments (tie: the earlier child; NaN loses)."""
        tr = self.tr
        seeds = fitness.shape[1]
        best = [select(fitness[:, s].cpu().tolist(), 1)[0] for s in range(seeds)]
        parent = self.parent0
        for s, c in enumerate(best):
            child = self.children[c]
            for dst, src in zip(parent.tensors()[:4], child.tensors()[:4], strict=True):  # params, buffers, m, v
                for d, t in zip(dst, src, strict=True):
                    d[s].copy_(t[s])
        _copy(parent.steps, self.children[best[0]].steps)  # Adam's step counts: the same in every child
        parent.load_into(tr.G, tr.opt_g)
        tr.after_g_step()
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

    # ------------------------------------------------------------------ checkpoints and metrics.jsonl
    def state_dict(self) -> dict[str, Tensor]:
        return self.population.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.population.load_state_dict(state)

    def meta(self) -> dict[str, Any]:
        return {"egan": {"mutations": list(self.settings.mutations), "population": self.settings.population,
                         "G": "the best survivor of the last step"}}

    def _record(self, won: list[str], fitness: list[float], f_q: list[float], f_d: list[float]) -> None:
        step = self.tr.step + 1  # train_step counts this step after the G update
        self.pending = [r for r in self.pending if r["step"] < step]  # steps undone (NaN guard, rollback) are dropped
        r4 = lambda xs: [round(x, 5) if math.isfinite(x) else None for x in xs]  # noqa: E731
        self.pending.append({"event": "egan", "step": step, "won": won, "fitness": r4(fitness), "f_q": r4(f_q), "f_d": r4(f_d)})

    def take_records(self, step: int) -> list[dict[str, Any]]:
        ready = [r for r in self.pending if r["step"] <= step]
        self.pending = [r for r in self.pending if r["step"] > step]
        return ready
