"""The technique interface: the base class with its hooks, the contexts hooks see, and the registry.

``ctrlgen.train.techniques`` (the package) loads every technique module and
builds the active ones for a config; each technique module imports only this
file, so the package and its modules import each other in one direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ctrlgen.errors import CtrlgenError

if TYPE_CHECKING:
    from ctrlgen.nets import DOut
    from ctrlgen.spec import LatentSpec
    from ctrlgen.train.losses import GanLoss

# The config (train/config.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
TrainConfig = Any

Tensor = torch.Tensor


@dataclass
class RunContext:
    """What techniques see of a run (the trainer builds one and keeps it current)."""

    G: torch.nn.Module  # the generator being trained (an ensemble of seeds' copies when ``seeds`` > 1)
    D: torch.nn.Module
    opt_d: torch.optim.Optimizer
    spec: LatentSpec
    device: torch.device
    rng: torch.Generator  # the run's own generator: checkpointed, so draws resume exactly
    seed: int
    seeds: int = 1  # seeds trained at once (train/ensemble.py): every batch holds one block per seed
    sample_latent: Callable[[int], dict[str, Tensor]] | None = None
    next_real: Callable[[], tuple[Tensor, Tensor]] | None = None
    autocast: Callable[[], Any] | None = None
    loss: GanLoss | None = None  # the run's adversarial loss, as the techniques wrapped it
    step: int = 0  # G updates done (the trainer updates it)
    total_steps: int = 0  # G updates in the whole run (a resume with --epochs/--steps changes it)
    batch_size: int = 0  # this process's batch of real images
    data: Any = None  # the training images (ctrlgen.data.ImageData; None for the 2D mixtures): semi-supervised labels


@dataclass
class StepContext:
    """What a hook may look at during one D or G update."""

    run: RunContext
    real: Tensor | None  # a real batch (None in the G step unless a technique asked for it)
    real_label: Tensor | None
    inputs: dict[str, Tensor]  # the latent inputs the fake batch was made from
    fake: Tensor
    out_fake: DOut
    out_real: DOut | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    d: Callable[..., DOut] | None = None  # the D this update uses (G's look-ahead D when unrolled)

    def discriminate(self, x: Tensor, label: Tensor | None) -> DOut:
        return (self.d or self.run.D)(x, label)


class Technique:
    """Base class: every hook does nothing.  Subclasses override what they need."""

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}  # defaults; the types of the defaults are enforced
    doc: ClassVar[str] = ""
    needs_real_in_g_step: ClassVar[bool] = False  # G step also runs D on a real batch (feature matching)
    # Parameters that must be > 0 (``positive``) or >= 0 (``non_negative``), each with what the refusal adds
    # in brackets ("" for nothing).  The registry checks them for every technique before ``check`` runs.
    positive: ClassVar[dict[str, str]] = {}
    non_negative: ClassVar[dict[str, str]] = {}

    def __init__(self, **params: Any) -> None:
        self.p = dict(self.params)
        self.p.update(params)

    @classmethod
    def check(cls, cfg: TrainConfig, params: dict[str, Any]) -> None:
        """Raise CtrlgenError if this technique makes no sense with ``cfg``."""

    @classmethod
    def net_fields(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The ``net.*`` fields this technique sets, from the parameters given in the config."""
        return {}

    @classmethod
    def spec_for(cls, spec: LatentSpec, class_names: tuple[str, ...], params: dict[str, Any]) -> LatentSpec:
        """The run's spec as this technique changes it (semi-supervision names the categorical values by class)."""
        return spec

    state_group: ClassVar[str] = ""  # checkpoint group of state_dict(); "" = tech.NAME

    def setup(self, run: RunContext) -> None: ...

    def wrap_loss(self, loss: GanLoss) -> GanLoss:
        return loss

    def g_latent(self, inputs: dict[str, Tensor], run: RunContext) -> dict[str, Tensor]:
        """G's latent batch as this technique wants it (mode seeking pairs samples that differ only in z)."""
        return inputs

    def fake_for_d(self, fake: Tensor, inputs: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        return fake, inputs

    def augment(self, x: Tensor, run: RunContext) -> Tensor:
        """The images D is shown, real and fake, in both updates, as this technique changes them (DiffAugment)."""
        return x

    def d_penalty(self, ctx: StepContext) -> dict[str, Tensor] | None:
        return None

    def g_penalty(self, ctx: StepContext) -> dict[str, Tensor] | None:
        return None

    def d_for_g(self, run: RunContext, d_fn):
        """The discriminator the G step differentiates through (unrolled GANs return a look-ahead copy)."""
        return d_fn

    def after_d_step(self, run: RunContext) -> None: ...

    def after_g_step(self, run: RunContext) -> None: ...

    def sampler(self) -> torch.nn.Module | None:
        """A generator that samples and exports in G's place (EMA's average), ready to use; None: G."""
        return None

    def group(self) -> str:
        return self.state_group or f"tech.{self.name}"

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def meta(self) -> dict[str, Any]:
        """What the checkpoint header (and so the model card) records of this technique beyond its params."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


SWITCH_OFF = "to switch it off, remove its table"


def late_weight(run: RunContext, early: float, late: float, late_from: float) -> float:
    """A two-phase weight: ``early``, then ``late`` from step ``late_from`` × the run's G steps on (where ``late`` > 0).
    A function of the step, so a resume is exact (mode seeking's ``weight_late``, semi-supervision's ``lambda_sup_late``)."""
    return late if late > 0 and run.step >= late_from * run.total_steps else early


def check_late_weight(prefix: str, early_key: str, late_key: str, late: float, late_from: float) -> None:
    """The one-line errors for ``late_weight``'s settings, named ``PREFIX.LATE_KEY`` and ``PREFIX.late_from``."""
    if not late >= 0:  # NaN too
        raise CtrlgenError(f"{prefix}.{late_key} must be >= 0 (0 keeps {early_key} to the end), got {late}")
    if not 0 <= late_from <= 1:
        raise CtrlgenError(f"{prefix}.late_from is the share of the run's steps after which {late_key} applies; "
                           f"it must be in [0, 1], got {late_from}")


TECHNIQUES: dict[str, type[Technique]] = {}


def register(cls: type[Technique]) -> type[Technique]:
    if not cls.name or cls.name in TECHNIQUES:
        raise ValueError(f"technique name {cls.name!r} is empty or taken")
    undeclared = sorted((set(cls.positive) | set(cls.non_negative)) - set(cls.params))
    if undeclared:
        raise ValueError(f"technique {cls.name!r} bounds parameters it does not have: {undeclared}")
    TECHNIQUES[cls.name] = cls
    return cls


def active_techniques(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The techniques a config switches on (its own plus those its loss requires), with params."""
    from ctrlgen.train.losses import get_loss

    out = {name: dict(params) for name, params in cfg.techniques.items()}
    for req in get_loss(cfg.loss).requires:
        out.setdefault(req, {})
    if cfg.infogan:
        out.setdefault("mutual_information", {})
    return out
