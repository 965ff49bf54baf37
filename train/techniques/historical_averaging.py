"""Historical averaging (Salimans et al. 2016): each player is pulled towards the mean of its past parameters.

    penalty = weight · Σ_i ‖θ_i − (1/t) Σ_{s<t} θ_i[s]‖²

added to D's loss, G's loss, or both (``players``).  The average is the exact
running mean of every parameter value the player has had before this update
(it is folded in just after the penalty is computed, so clipping and other
after-step changes are included).  The averages and their counts are
checkpointed, so resume is exact.  Like fictitious play, the penalty damps
the orbiting of the two players around an equilibrium.
"""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.techniques.base import SWITCH_OFF, StepContext, Technique, register

PLAYERS = {"both": ("G", "D"), "g": ("G",), "d": ("D",)}


class RunningMean:
    """The exact mean of the parameter vectors seen so far (a list of tensors)."""

    def __init__(self) -> None:
        self.mean: list[torch.Tensor] = []
        self.count = 0

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        if not self.count:
            return None
        if self.mean[0].device != params[0].device:  # loaded from a checkpoint on the CPU
            self.mean = [m.to(params[0].device) for m in self.mean]
        return sum(((p.float() - m) ** 2).sum() for p, m in zip(params, self.mean, strict=True))

    @torch.no_grad()
    def add(self, params: list[torch.Tensor]) -> None:
        self.count += 1
        if self.count == 1:
            self.mean = [p.detach().float().clone() for p in params]
        else:
            torch._foreach_lerp_(self.mean, [p.detach().float() for p in params], 1.0 / self.count)


@register
class HistoricalAveraging(Technique):
    name = "historical_averaging"
    doc = "weight * ||theta - mean of past theta||^2 for G and/or D."
    params = {"weight": 1e-3, "players": "both"}
    positive = {"weight": SWITCH_OFF}

    @classmethod
    def check(cls, cfg, params):
        if params.get("players", "both") not in PLAYERS:
            raise CtrlgenError(f"techniques.historical_averaging.players must be one of {', '.join(PLAYERS)}, got {params['players']!r}")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.means = {who: RunningMean() for who in PLAYERS[self.p["players"]]}

    def _term(self, who: str, module: torch.nn.Module, n_seeds: int = 1) -> dict[str, torch.Tensor] | None:
        if who not in self.means:
            return None
        params = list(module.parameters())
        pen = self.means[who].penalty(params)
        self.means[who].add(params)
        if pen is None:
            return None
        # An ensemble's parameters hold every seed's copy: the sum over them is the seeds' penalties
        # summed, while the batch-mean losses beside it average the seeds.  Average it too.
        return {f"{who.lower()}_hist_avg": self.p["weight"] * pen / n_seeds}

    def d_penalty(self, ctx: StepContext):
        return self._term("D", ctx.run.D, ctx.run.seeds)

    def g_penalty(self, ctx: StepContext):
        return self._term("G", ctx.run.G, ctx.run.seeds)

    def state_dict(self):
        out = {}
        for who, rm in self.means.items():
            out[f"{who}.count"] = torch.tensor(rm.count)
            out.update({f"{who}.{i}": m for i, m in enumerate(rm.mean)})
        return out

    def load_state_dict(self, state):
        for who, rm in self.means.items():
            rm.count = int(state[f"{who}.count"])
            n = sum(1 for k in state if k.startswith(f"{who}.") and k != f"{who}.count")
            rm.mean = [state[f"{who}.{i}"].clone() for i in range(n)]
