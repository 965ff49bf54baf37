"""Stabilizers: small objects with a few hooks, selected by name.

The training step never asks "is technique X on?".  It calls every active
technique's hooks and sums what they return:

* ``d_penalty(ctx)`` / ``g_penalty(ctx)``: extra loss terms (a dict name -> scalar, or None);
* ``g_latent(inputs, run)``: change G's latent batch (mode seeking pairs samples that differ only in z);
* ``fake_for_d(fake, inputs)``: change the fake batch D sees (experience replay);
* ``augment(x, run)``: change every image D is shown, real and fake, in both updates (DiffAugment);
* ``wrap_loss(loss)``: change the adversarial loss (label smoothing);
* ``after_d_step(run)`` / ``after_g_step(run)``: act on weights (clipping, EMA);
* ``state_dict()`` / ``load_state_dict()``: tensors saved in checkpoints, so resume is exact
  (under ``tech.NAME.``, or the group ``state_group`` names);
* ``d_for_g(run, d)``: the discriminator G's update differentiates through (unrolled GANs);
* ``spec_for(spec, class_names, params)``: the run's spec as the technique changes it (semi-supervision
  names the categorical code's values by class);
* ``meta()``: what the checkpoint header records beyond the params (semi-supervision's labelled set);
* ``sampler()``: a generator to sample and export with instead of G (EMA's average), or None;
* ``net_fields(params)``: for techniques that *are* a network option (packing, minibatch
  discrimination, spectral norm, virtual batch norm), the ``net.*`` fields they set.  Those
  are resolved into the config's NetConfig when it is built, so checkpoints and exports
  rebuild the same networks; a clash with a ``net.*`` value set by hand is an error.

A new technique is one new file in this folder with a class decorated by
``@register`` (both from ``ctrlgen.train.techniques.base``); its ``params`` are its settings, set from a recipe's
``[techniques.NAME]`` table.  ``check(cfg)`` rejects combinations that make
no sense at config time; parameters that must be > 0 or >= 0 are declared in
``positive`` / ``non_negative`` instead, and checked here for every technique.

Hooks see a ``RunContext``: the networks, D's optimizer, the spec, the run's
random generator, the step, and the few trainer services a technique may
call (draw latents, draw a real batch, autocast, the loss).  They never get
the trainer itself, so a technique cannot reach into the loop.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from typing import Any

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.techniques.base import (
    TECHNIQUES,
    RunContext,
    StepContext,
    Technique,
    active_techniques,
    register,
)

# The config (train/config.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
TrainConfig = Any

__all__ = ["TECHNIQUES", "RunContext", "StepContext", "Technique", "active_techniques", "build_techniques", "check_techniques",
           "register", "resolve_net", "resolve_spec"]


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
        if isinstance(v, float) and not math.isfinite(v):  # a check written as `x < 0` lets NaN through
            raise CtrlgenError(f"techniques.{name}.{k} must be a finite number, got {v}; give a number such as {cls.params[k]!r}")
    for sign, bounded in ((">", cls.positive), (">=", cls.non_negative)):
        for k, hint in bounded.items():
            v = params.get(k)
            if v is not None and not (v > 0 if sign == ">" else v >= 0):
                raise CtrlgenError(f"techniques.{name}.{k} must be {sign} 0, got {v}" + (f" ({hint})" if hint else ""))
    return params


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


def resolve_spec(cfg: TrainConfig, spec, class_names: tuple[str, ...]):
    """``spec`` as the config's techniques change it (``spec_for``), in name order."""
    _load_all()
    for name, params in sorted(active_techniques(cfg).items()):
        cls = TECHNIQUES.get(name)
        if cls is not None:
            spec = cls.spec_for(spec, tuple(class_names), {**cls.params, **params})
    return spec


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
