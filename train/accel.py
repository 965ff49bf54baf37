"""torch.compile for the training networks: the ``compile`` setting (auto | off | on).

``auto`` (the default) runs eager everywhere: measured on an H200 (``benchmarks/train.py --device
cuda``, docs/results/gpu.md), the compiled CGAN step was 0.86x the eager one at batch 64 and 0.78x
at batch 256 (plus ~19 s of compile), so eager is the fastest correct path and the default; on a CPU
the compile costs minutes for little.  ``on`` compiles on any device, ``off`` never.

G and D are compiled in place (``nn.Module.compile``), so their ``state_dict`` keys, the
checkpoints, DDP's wrappers and every caller stay as they are; only their forward (and so
its backward) runs inductor's kernels.  E-GAN (which copies generators around), vmapped
ensembles and runs with a technique that differentiates a gradient (``DOUBLE_BACKWARD``:
torch.compile has no double backward) run eager.  Under ``auto`` a network that inductor cannot compile falls back to
eager with a warning instead of stopping the run (``torch._dynamo.config.suppress_errors``).
"""

from __future__ import annotations

from typing import Any

import torch

from ctrlgen.errors import CtrlgenError

# The trainer (train/trainer.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any

COMPILES = ("auto", "off", "on")
DOUBLE_BACKWARD = ("r1", "gradient_penalty", "dragan_penalty")
"""Techniques whose penalty is a gradient's norm trained through (create_graph); unrolled joins them with second_order."""


def check_compile(value: str) -> str:
    if value not in COMPILES:
        raise CtrlgenError(f"compile {value!r} is unknown; use one of {', '.join(COMPILES)}")
    return value


def double_backward(cfg) -> list[str]:
    """The active techniques (a loss's included) that need a gradient of a gradient."""
    from ctrlgen.train.techniques import TECHNIQUES, active_techniques

    active = active_techniques(cfg)
    names = [n for n in DOUBLE_BACKWARD if n in active]
    if "unrolled" in active and {**TECHNIQUES["unrolled"].params, **active["unrolled"]}["second_order"]:
        names.append("unrolled (second_order)")
    return names


def wants_compile(cfg, device: torch.device) -> bool:
    """Whether G and D run under torch.compile for this config on this device."""
    setting = check_compile(getattr(cfg, "compile", "off"))
    if setting == "off" or cfg.mode != "standard" or cfg.ensemble > 1:
        return False
    blocked = double_backward(cfg)
    if blocked and setting == "on":
        raise CtrlgenError(f"compile=on cannot train {', '.join(blocked)}: torch.compile has no double backward; use compile=auto or off")
    return not blocked and setting == "on"


def maybe_compile(trainer: Trainer, compile_mode: str = "default") -> bool:
    """Compile ``trainer.G`` and ``trainer.D`` in place when the run's ``compile`` setting asks for it.

    ``compile_mode`` is torch.compile's mode (the benchmark also
    tries ``"reduce-overhead"``, CUDA graphs).  Returns whether it compiled."""
    if not wants_compile(trainer.cfg, trainer.device):
        return False
    import torch._dynamo

    if trainer.cfg.compile == "auto":
        torch._dynamo.config.suppress_errors = True  # a network inductor cannot compile runs eager, with a warning
    for name in ("recompile_limit", "cache_size_limit"):  # G and D meet a few guards each (no_grad, frozen D, eval); many runs per process
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
    for net in (trainer.G, trainer.D):
        net.compile(mode=compile_mode)
    return True


def is_compiled(module: torch.nn.Module) -> bool:
    """True when ``module`` was compiled in place (``nn.Module.compile``)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with torch's fused kernel: one vectorized pass per tensor, 3.5x faster than the default on the
    fashion-cgan parameters, which took Adam from 30% to 7% of a CPU step (benchmarks/profile_paths.py).
    The update rule and the state it keeps are the same; where fused is not available, the default."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas)
