"""Ensembles: S independent copies of a network trained as one, for many seeds at the price of one run.

Tiny networks (the 2D mixtures' MLPs) spend most of a training step in Python
and kernel-launch overhead, not arithmetic, so training 10 seeds one after the
other costs 10 runs while the machine idles.  An :class:`Ensemble` holds S
copies of a module with their parameters and buffers stacked on a leading
axis and runs them with ``torch.func.vmap`` over ``functional_call``: a batch
of S·B rows is split into S contiguous blocks and block s goes through copy s.

Each copy sees only its own block *inside* the module, so batch-level layers
(minibatch discrimination and stddev, packing, virtual and ordinary batch
norm) stay per copy, exactly as in S separate runs.  The copies share nothing
but the optimizer call: Adam and the EMA act per element, so they act per copy.
A loss that is a mean over the S·B rows is the mean of the S copies' losses,
so its gradient for copy s is 1/S of what copy s would get alone; a hook on
every stacked parameter multiplies the gradient by S, so each copy gets
exactly its lone gradient (Adam's ε makes even a scaled gradient matter).
Terms that are not batch means know the ensemble size (``Trainer.ensemble``):
feature matching and experience replay work per block, and historical
averaging divides its parameter-space sum by S.

E-GAN (train/egan.py) scores every child per seed and lets each seed keep its
own fittest child.  What cannot be an ensemble is rejected with a reason:
torch's spectral norm (its power iteration writes with ``out=``, which vmap
cannot batch) and an E-GAN population above 1.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ctrlgen.errors import CtrlgenError
from ctrlgen.nets import Discriminator, Generator


def _flat(name: str) -> str:
    return name.replace(".", "__")


class Ensemble(nn.Module):
    """S copies of one architecture, run as one module on S contiguous blocks of the batch.

    Parameters and buffers are registered stacked, (S, ...), under their dotted
    names with "." replaced by "__", so ``parameters()``, ``state_dict()``,
    ``functional_call`` (unrolled GANs) and ``copy.deepcopy`` (EMA) see ordinary
    tensors.  Other attributes (``spec``, ``cfg``, ``features_dim`` ...) are the
    template module's.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(modules) < 2:
            raise CtrlgenError("an ensemble needs at least 2 copies; use ensemble=1 for a single model")
        for m in modules[0].modules():
            if torch.nn.utils.parametrize.is_parametrized(m):
                raise CtrlgenError(
                    "spectral norm cannot run as an ensemble (its power iteration writes with out=, which vmap "
                    "cannot batch); train these seeds one at a time with ensemble=1"
                )
        self.size = len(modules)
        params, buffers = stack_module_state(list(modules))
        self._param_names = tuple(params)
        self._buffer_names = tuple(buffers)
        for name, value in params.items():
            p = nn.Parameter(value.detach().clone())
            p.register_hook(self._scale)  # the batch-mean losses average the copies: undo the 1/S
            self.register_parameter(_flat(name), p)
        for name, value in buffers.items():
            self.register_buffer(_flat(name), value.clone())
        # The template: architecture and attributes only; its own tensors are never used in forward.
        object.__setattr__(self, "template", copy.deepcopy(modules[0]))

    def _scale(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * self.size

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "template"), name)

    def __deepcopy__(self, memo: dict) -> Ensemble:
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, copy.deepcopy(v, memo))
        return new

    def train(self, mode: bool = True) -> Ensemble:
        super().train(mode)
        self.template.train(mode)  # the template's mode decides VBN / BatchNorm behaviour in forward
        return self

    def split(self, t: torch.Tensor) -> torch.Tensor:
        n = t.shape[0]
        if n % self.size:
            raise CtrlgenError(f"a batch of {n} rows does not split over an ensemble of {self.size}; use a multiple of {self.size}")
        return t.reshape(self.size, n // self.size, *t.shape[1:])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        params = {n: getattr(self, _flat(n)) for n in self._param_names}
        buffers = {n: getattr(self, _flat(n)) for n in self._buffer_names}
        template = self.template
        out_type: list[tuple[type, list[str]]] = []

        def one(p, b, a, kw):
            out = functional_call(template, (p, b), tuple(a), kw)
            if dataclasses.is_dataclass(out):  # DOut -> its fields that are set (vmap returns tensors only)
                names = [f.name for f in dataclasses.fields(out) if getattr(out, f.name) is not None]
                out_type.append((type(out), names))
                return tuple(getattr(out, n) for n in names)
            return out

        def blocks(v):
            return self.split(v) if torch.is_tensor(v) else v

        a = [blocks(v) for v in args]
        kw = {k: blocks(v) for k, v in kwargs.items()}
        dims = (0, 0, [0 if torch.is_tensor(v) else None for v in a], {k: 0 if torch.is_tensor(v) else None for k, v in kw.items()})
        out = vmap(one, in_dims=dims, randomness="different")(params, buffers, a, kw)
        merged = _merge(out)
        if not out_type:
            return merged
        cls, names = out_type[0]
        return cls(**dict(zip(names, merged, strict=True)))

    def member(self, i: int) -> nn.Module:
        """Copy i as an ordinary module (for sampling, export or inspection)."""
        m = copy.deepcopy(self.template)
        keys = set(m.state_dict())
        m.load_state_dict({n: getattr(self, _flat(n))[i].detach().clone() for n in (*self._param_names, *self._buffer_names) if n in keys})
        m.train(self.training)
        return m


def _merge(out: Any) -> Any:
    """(S, B, ...) -> (S·B, ...) through tuples and lists of outputs (None stays None)."""
    if torch.is_tensor(out):
        return out.reshape(-1, *out.shape[2:])
    if isinstance(out, (tuple, list)):
        return type(out)(_merge(v) for v in out)
    return out


def build_networks(spec: Any, net: Any, seed: int, copies: int, q_head: bool, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """G and D initialized from ``seed``; with ``copies`` > 1, an Ensemble of each whose copy s is
    initialized exactly as a run with seed = ``seed`` + s would be."""
    gs, ds = [], []
    for s in range(copies):
        torch.manual_seed(seed + s)
        gs.append(Generator(spec, net).to(device))
        ds.append(Discriminator(spec, net, q_head=q_head).to(device))
    return (gs[0], ds[0]) if copies == 1 else (Ensemble(gs), Ensemble(ds))
