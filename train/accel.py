"""torch.compile for the training networks: the ``compile`` setting (auto | off | on).

``auto`` (the default) compiles on CUDA and nowhere else: on a GPU the eager step of these
small networks is bound by kernel launches and Python, which inductor's fused kernels cut
(``benchmarks/train.py --device cuda`` measures eager against compiled, docs/results/gpu.md);
on a CPU the compile costs minutes for little.  ``on`` compiles on any device, ``off`` never.

G and D are compiled in place (``nn.Module.compile``), so their ``state_dict`` keys, the
checkpoints, DDP's wrappers and every caller stay as they are; only their forward (and so
its backward) runs inductor's kernels.  E-GAN (which copies generators around) and vmapped
ensembles run eager.  Under ``auto`` a network that inductor cannot compile falls back to
eager with a warning instead of stopping the run (``torch._dynamo.config.suppress_errors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ctrlgen.errors import CtrlgenError

if TYPE_CHECKING:
    from ctrlgen.train.trainer import Trainer

COMPILES = ("auto", "off", "on")


def check_compile(value: str) -> str:
    if value not in COMPILES:
        raise CtrlgenError(f"compile {value!r} is unknown; use one of {', '.join(COMPILES)}")
    return value


def wants_compile(setting: str, device: torch.device, mode: str = "standard", ensemble: int = 1) -> bool:
    """Whether G and D run under torch.compile for this setting, device and run shape."""
    check_compile(setting)
    if setting == "off" or mode != "standard" or ensemble > 1:
        return False
    return setting == "on" or device.type == "cuda"


def maybe_compile(trainer: Trainer, compile_mode: str | None = None) -> bool:
    """Compile ``trainer.G`` and ``trainer.D`` in place when the run's ``compile`` setting asks for it.

    ``compile_mode`` is torch.compile's mode (None = inductor's default; the benchmark also
    tries ``"reduce-overhead"``, CUDA graphs).  Returns whether it compiled."""
    cfg = trainer.cfg
    setting = getattr(cfg, "compile", "off")
    if not wants_compile(setting, trainer.device, cfg.mode, cfg.ensemble):
        return False
    if setting == "auto":
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True  # a network inductor cannot compile runs eager, with a warning
    for net in (trainer.G, trainer.D):
        net.compile(mode=compile_mode)
    return True


def is_compiled(module: torch.nn.Module) -> bool:
    """True when ``module`` was compiled in place (``nn.Module.compile``)."""
    return getattr(module, "_compiled_call_impl", None) is not None
