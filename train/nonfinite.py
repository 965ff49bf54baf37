"""NaN and inf losses: the step is undone from the last good state, counted, and too many stop the run.

The trainer runs each step through ``NonfiniteGuard.train_step``.  The guard
keeps an in-memory copy of the last good state (G and D weights with their
buffers, both optimizers' moments, the techniques' state, EMA's average
among them, and the G update's state), taken every
``log_every`` steps, so it costs one copy per log line, not one per step.
After each step it checks every loss term once (one host sync): when one is
NaN or inf, the copy is loaded back, the step counter returns to it, and the
run goes on with fresh random draws and the next data (the random stream
and the data position are not rewound, so the same bad batch is not
replayed).  Each event is a ``{"event": "nonfinite", ...}`` line in
``metrics.jsonl`` and a line on stderr; the count travels in checkpoints.
At ``nonfinite_limit`` events the good state is saved as a checkpoint and
training stops with one line saying what to change.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch

from ctrlgen.errors import CtrlgenError

# The trainer (train/trainer.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any


def _clone(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}


def bad_terms(stats: dict[str, torch.Tensor]) -> list[str]:
    """Names of the loss terms that are NaN or inf (one host sync for all of them)."""
    if not stats:
        return []
    names = list(stats)
    ok = torch.stack([torch.isfinite(stats[k].detach().float()).all() for k in names]).cpu().tolist()
    return [k for k, good in zip(names, ok, strict=True) if not good]


def weights_finite(trainer: Trainer) -> bool:
    tensors = [p.detach() for net in (trainer.G, trainer.D) for p in net.parameters()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


class NonfiniteGuard:
    def __init__(self, limit: int, every: int) -> None:
        self.limit, self.every = limit, max(1, every)
        self._state: dict[str, Any] | None = None
        self._state_step = -1
        self._seen = -1  # the step after the last guarded step; anything else means the state was replaced

    # ------------------------------------------------------------------ the hook
    def train_step(self, trainer: Trainer) -> dict[str, torch.Tensor] | None:
        """One training step; None when it was non-finite and has been undone."""
        if self._state is None or trainer.step != self._seen:
            self.snapshot(trainer)  # a new run, a resume or a rollback: this state is where we stand
        elif trainer.step % self.every == 0 and trainer.step != self._state_step:
            if weights_finite(trainer):
                self.snapshot(trainer)
            else:  # a finite loss whose update made the weights NaN
                self.undo(trainer, trainer.step, ["weights"])
                return None
        stats = trainer.train_step()
        bad = bad_terms(stats)
        if not bad:
            self._seen = trainer.step
            return stats
        self.undo(trainer, trainer.step, bad)
        return None

    # ------------------------------------------------------------------ state
    def snapshot(self, trainer: Trainer) -> None:
        state: dict[str, Any] = {"G": _clone(trainer.G.state_dict()), "D": _clone(trainer.D.state_dict())}
        state["g_update"] = _clone(trainer.g_update.state_dict())
        state["opt_g"] = copy.deepcopy(trainer.opt_g.state_dict())
        state["opt_d"] = copy.deepcopy(trainer.opt_d.state_dict())
        state["tech"] = {t.name: _clone(t.state_dict()) for t in trainer.techniques}
        self._state, self._state_step, self._seen = state, trainer.step, trainer.step

    def restore(self, trainer: Trainer) -> None:
        s = self._state
        assert s is not None
        trainer.G.load_state_dict(s["G"])
        trainer.D.load_state_dict(s["D"])
        trainer.g_update.load_state_dict(_clone(s["g_update"]))
        trainer.opt_g.load_state_dict(copy.deepcopy(s["opt_g"]))  # the optimizer would share the copy's tensors
        trainer.opt_d.load_state_dict(copy.deepcopy(s["opt_d"]))
        for t in trainer.techniques:
            t.load_state_dict(_clone(s["tech"][t.name]))
        trainer.step = self._seen = self._state_step

    def undo(self, trainer: Trainer, step: int, bad: list[str]) -> None:
        self.restore(trainer)
        trainer.nonfinite_events += 1
        n = trainer.nonfinite_events
        trainer.log({"event": "nonfinite", "step": step, "restored_step": trainer.step, "terms": bad, "count": n})
        print(f"Warning: non-finite {', '.join(bad)} at step {step}; undone, back to step {trainer.step} "
              f"({n} of at most {self.limit})", file=sys.stderr, flush=True)
        if n >= self.limit:
            path = trainer.save_checkpoint()
            raise CtrlgenError(
                f"training stopped at step {trainer.step}: {n} non-finite (NaN/inf) steps reached nonfinite_limit={self.limit}; "
                f"the last good state is saved in {path}; lower the learning rates or add a stabilizer and start a new run, "
                f"or resume with --set nonfinite_limit={2 * self.limit} to keep trying"
            )
