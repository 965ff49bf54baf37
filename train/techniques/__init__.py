"""Stabilizers: small objects with a few hooks, selected by name.

The training step never asks "is technique X on?".  It calls every active
technique's hooks and sums what they return:

* ``d_penalty(ctx)`` / ``g_penalty(ctx)``: extra loss terms (a dict name -> scalar, or None);
* ``fake_for_d(fake, inputs)``: change the fake batch D sees (experience replay);
* ``wrap_loss(loss)``: change the adversarial loss (label smoothing);
* ``after_d_step(run)`` / ``after_g_step(run)``: act on weights (clipping, EMA);
* ``state_dict()`` / ``load_state_dict()``: tensors saved in checkpoints, so resume is exact
  (under ``tech.NAME.``, or the group ``state_group`` names);
* ``d_for_g(run, d)``: the discriminator G's update differentiates through (unrolled GANs);
* ``sampler()``: a generator to sample and export with instead of G (EMA's average), or None;
* ``net_fields(params)``: for techniques that *are* a network option (packing, minibatch
  discrimination, spectral norm, virtual batch norm), the ``net.*`` fields they set.  Those
  are resolved into the config's NetConfig when it is built, so checkpoints and exports
  rebuild the same networks; a clash with a ``net.*`` value set by hand is an error.

A new technique is one new file in this folder with a class decorated by
``@register``; its ``params`` are its settings, set from a recipe's
``[techniques.NAME]`` table.  ``check(cfg)`` rejects combinations that make
no sense at config time.

Hooks see a ``RunContext``: the networks, D's optimizer, the spec, the run's
random generator, the step, and the few trainer services a technique may
call (draw latents, draw a real batch, autocast, the loss).  They never get
the trainer itself, so a technique cannot reach into the loop.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ctrlgen.errors import CtrlgenError

if TYPE_CHECKING:
    from ctrlgen.nets import DOut
    from ctrlgen.spec import LatentSpec
    from ctrlgen.train.config import TrainConfig
    from ctrlgen.train.losses import GanLoss

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

    state_group: ClassVar[str] = ""  # checkpoint group of state_dict(); "" = tech.NAME

    def setup(self, run: RunContext) -> None: ...

    def wrap_loss(self, loss: GanLoss) -> GanLoss:
        return loss

    def fake_for_d(self, fake: Tensor, inputs: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        return fake, inputs

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

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


TECHNIQUES: dict[str, type[Technique]] = {}


def register(cls: type[Technique]) -> type[Technique]:
    if not cls.name or cls.name in TECHNIQUES:
        raise ValueError(f"technique name {cls.name!r} is empty or taken")
    TECHNIQUES[cls.name] = cls
    return cls


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _check_params(name: str, cls: type[Technique], params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise CtrlgenError(f"techniques.{name} must be a table of parameters, got {params!r}")
    unknown = sorted(set(params) - set(cls.params))
    if unknown:
        valid = ", ".join(sorted(cls.params)) or "none"
        raise CtrlgenError(f"techniques.{name}: unknown parameter(s) {unknown}; valid: {valid}")
    for k, v in params.items():
        if not _type_ok(v, cls.params[k]):
            raise CtrlgenError(f"techniques.{name}.{k} must be {type(cls.params[k]).__name__}, got {v!r}")
    return params


def active_techniques(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The techniques a config switches on (its own plus those its loss requires), with params."""
    from ctrlgen.train.losses import get_loss

    _load_all()
    out = {name: dict(params) for name, params in cfg.techniques.items()}
    for req in get_loss(cfg.loss).requires:
        out.setdefault(req, {})
    if cfg.infogan:
        out.setdefault("mutual_information", {})
    return out


def resolve_net(cfg: TrainConfig):
    """cfg.net with the fields that network-option techniques set (see ``net_fields``)."""
    from ctrlgen.nets import NetConfig

    _load_all()
    default, chosen = NetConfig(), {}
    for name, params in sorted(cfg.techniques.items()):
        cls = TECHNIQUES.get(name)
        if cls is None:
            continue  # reported with the list of valid names by check_techniques
        for key, value in cls.net_fields(_check_params(name, cls, params)).items():
            if key in chosen and chosen[key][1] != value:
                other = chosen[key][0]
                raise CtrlgenError(f"techniques {other} and {name} both set net.{key} ({chosen[key][1]!r} vs {value!r}); use one of them")
            current = getattr(cfg.net, key)
            if current != getattr(default, key) and current != value:
                raise CtrlgenError(f"techniques.{name} sets net.{key}={value!r} but the config sets net.{key}={current!r}; remove one of them")
            chosen[key] = (name, value)
    return dataclasses.replace(cfg.net, **{k: v for k, (_, v) in chosen.items()}) if chosen else cfg.net


def check_techniques(cfg: TrainConfig) -> None:
    _load_all()
    for name, params in active_techniques(cfg).items():
        if name not in TECHNIQUES:
            raise CtrlgenError(f"technique {name!r} is unknown; use one of: {', '.join(sorted(TECHNIQUES))}")
        cls = TECHNIQUES[name]
        cls.check(cfg, _check_params(name, cls, params))


def build_techniques(cfg: TrainConfig) -> list[Technique]:
    """Instantiate in a fixed order (sorted by name) so runs are reproducible."""
    check_techniques(cfg)
    return [TECHNIQUES[n](**p) for n, p in sorted(active_techniques(cfg).items())]
