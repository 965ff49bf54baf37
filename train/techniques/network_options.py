"""Techniques that are network options: selecting one by name sets ``net.*`` fields.

Packing, minibatch discrimination, spectral normalization and virtual batch
norm change D's or G's architecture, so the networks (and therefore
checkpoints and ONNX exports) must know about them.  They live as fields of
``NetConfig``; these registry entries are the names a recipe uses for them.
``[techniques.packing] m = 4`` and ``net.pack = 4`` are the same run (the
config resolves the first into the second when it is built); setting both to
different values is an error.

* packing (Lin et al. 2018, PacGAN): D judges ``m`` samples concatenated into one input.
* minibatch_discrimination (Salimans et al. 2016): M = f(x)·T, T ∈ R^{A×B×C},
  c_b(i, j) = exp(−‖M_i,b − M_j,b‖₁), o(x_i) = Σ_j c_b(i, j) concatenated to D's features.
* minibatch_stddev (Karras et al. 2018): the batch's mean feature standard deviation as one more feature.
* spectral_norm (Miyato et al. 2018): every D weight divided by its largest singular value.
* virtual_batchnorm (Salimans et al. 2016): G normalizes with a reference batch fixed at the start
  (``ctrlgen.vbn``); the reference statistics are buffers, so exported samples do not depend on their batch.
"""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.techniques.base import Technique, register


@register
class Packing(Technique):
    name = "packing"
    doc = "PacGAN: D sees m samples at once (all real or all fake), which penalizes a G that repeats itself."
    params = {"m": 2}

    @classmethod
    def check(cls, cfg, params):
        if params.get("m", 2) < 2:
            raise CtrlgenError("techniques.packing.m must be >= 2 (m = 1 is no packing)")

    @classmethod
    def net_fields(cls, params):
        return {"pack": params.get("m", cls.params["m"])}


@register
class MinibatchDiscrimination(Technique):
    name = "minibatch_discrimination"
    doc = "Salimans et al.: D's features get o(x_i) = sum_j exp(-||M_i,b - M_j,b||_1) per kernel b."
    params = {"kernels": 32, "dim": 8}

    @classmethod
    def net_fields(cls, params):
        fields = {"minibatch": "discrimination"}
        if "kernels" in params:
            fields["mbd_kernels"] = params["kernels"]
        if "dim" in params:
            fields["mbd_dim"] = params["dim"]
        return fields


@register
class MinibatchStddev(Technique):
    name = "minibatch_stddev"
    doc = "ProGAN's minibatch standard deviation appended to D's features."
    params = {}

    @classmethod
    def net_fields(cls, params):
        return {"minibatch": "stddev"}


@register
class SpectralNorm(Technique):
    name = "spectral_norm"
    doc = "Spectral normalization of every D weight (one power iteration per forward pass)."
    params = {}

    @classmethod
    def net_fields(cls, params):
        return {"d_norm": "spectral"}


@register
class VirtualBatchNorm(Technique):
    name = "virtual_batchnorm"
    doc = "G normalizes each sample with the statistics of a reference batch fixed at the start."
    params = {"ref_size": 64}

    @classmethod
    def check(cls, cfg, params):
        if params.get("ref_size", 64) < 2:
            raise CtrlgenError("techniques.virtual_batchnorm.ref_size must be >= 2 (a reference batch needs samples)")

    @classmethod
    def net_fields(cls, params):
        return {"g_vbn": params.get("ref_size", cls.params["ref_size"])}

    @torch.no_grad()
    def after_g_step(self, run) -> None:
        """Refresh the reference statistics with G's new weights (a pass of the reference batch alone),
        so the buffers a checkpoint or an export holds match its weights."""
        empty = run.spec.sample(0, seed=0)  # no samples of its own: the reference batch alone runs
        run.G(**{name: torch.from_numpy(v).to(run.device) for name, v in empty.items()})
