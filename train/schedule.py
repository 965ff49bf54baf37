"""The learning-rate schedule: ``lr_decay = "linear"`` (both rates fall linearly to 0 over the run's last
``1 - lr_decay_start``) and ``lr_g_late`` / ``lr_d_late`` (the rate each player's fall starts from).

Everything is a function of the step, so a resumed run sets the same rates as the run that never stopped."""

from __future__ import annotations


def lr_factor(cfg, total_steps: int, step: int) -> float:
    """The learning rates' multiplier at ``step``: 1, or under ``lr_decay = "linear"`` falling from 1 at
    ``lr_decay_start`` of the run to 0 at its end."""
    if cfg.lr_decay == "none":
        return 1.0
    start = cfg.lr_decay_start * total_steps
    return 1.0 if step < start else max(0.0, (total_steps - step) / max(1.0, total_steps - start))


def apply_lr_schedule(trainer) -> None:  # a train.trainer.Trainer (not imported: it imports this module)
    """Set both optimizers' lr to base × lr_factor(step); each group keeps its base (``base_lr``, checkpointed
    with the optimizer; a rollback halves it).  From ``lr_decay_start`` on, ``lr_g_late`` / ``lr_d_late``
    (when set) replace ``lr_g`` / ``lr_d`` as the rate the fall starts from: the base is scaled by their
    ratio, so a rollback's halving still holds."""
    cfg = trainer.cfg
    if cfg.lr_decay == "none":
        return
    f = lr_factor(cfg, trainer.total_steps, trainer.step)
    late = trainer.step >= cfg.lr_decay_start * trainer.total_steps
    for opt, lr, lr_late in ((trainer.opt_g, cfg.lr_g, cfg.lr_g_late), (trainer.opt_d, cfg.lr_d, cfg.lr_d_late)):
        scale = lr_late / lr if late and lr_late else 1.0
        for group in opt.param_groups:
            group["lr"] = group.setdefault("base_lr", group["lr"]) * f * scale
