"""Generator and discriminator networks, read top to bottom.

Both networks are built from a ``LatentSpec`` plus a small ``NetConfig``; the
two are stored beside the weights, so loading rebuilds the model with no
pickled code.  Two families:

* ``conv``: DCGAN-style for images (28×28 and up): G is
  FC → (C₀, s, s) → stride-2 transposed convs → tanh; D mirrors it with
  stride-2 convs → FC features → a logit.
* ``mlp``: small MLPs for 2D points.

Conditioning: G concatenates a learned label embedding and one-hot
categorical codes and the continuous codes to z.  D is a *projection*
discriminator (Miyato & Koyama 2018) when conditional: logit = ψ(h) + ⟨e(y), h⟩.
InfoGAN's Q head shares D's trunk and predicts the codes from its features.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import LatentSpec
from ctrlgen.vbn import VirtualBatchNorm

D_NORMS = ("none", "batch", "layer", "spectral")


@dataclass(frozen=True)
class NetConfig:
    """Network sizes.  Saved with every checkpoint (constructor args, not code)."""

    family: str = "conv"  # "conv" for images, "mlp" for points
    g_width: int = 64  # conv: channels of the last hidden G layer (doubling towards the input); mlp: units
    d_width: int = 64  # conv: channels of D's first conv (doubling with depth); mlp: units
    g_fc: int = 0  # conv: width of an extra FC layer before the reshape (0 = none; the InfoGAN paper used 1024)
    d_fc: int = 1024  # conv: width of D's feature layer after the convs (the features Q and feature matching read)
    depth: int = 3  # mlp: hidden layers in G and D
    label_embed: int = 0  # G's label embedding size (0 = n_classes, i.e. one-hot-sized)
    d_norm: str = "none"  # normalization inside D: none | batch | layer | spectral
    g_batchnorm: bool = True  # BatchNorm in G's hidden layers (conv family)
    g_vbn: int = 0  # virtual batch norm in G: size of its fixed reference batch (0 = off; replaces BatchNorm)
    pack: int = 1  # PacGAN: D judges this many samples jointly
    minibatch: str = "none"  # D feature augmentation: none | discrimination | stddev
    mbd_kernels: int = 32  # minibatch discrimination: B (number of kernels)
    mbd_dim: int = 8  # minibatch discrimination: C (dimension of each kernel)
    q_hidden: int = 128  # InfoGAN Q head hidden units

    def __post_init__(self) -> None:
        if self.family not in ("conv", "mlp"):
            raise CtrlgenError(f"network family {self.family!r} is unknown; use conv or mlp")
        if self.d_norm not in D_NORMS:
            raise CtrlgenError(f"d_norm {self.d_norm!r} is unknown; use one of {', '.join(D_NORMS)}")
        if self.minibatch not in ("none", "discrimination", "stddev"):
            raise CtrlgenError(f"minibatch {self.minibatch!r} is unknown; use none, discrimination or stddev")
        for name in ("g_width", "d_width", "depth", "pack", "mbd_kernels", "mbd_dim", "q_hidden", "d_fc"):
            if getattr(self, name) < 1:
                raise CtrlgenError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.g_fc < 0 or self.label_embed < 0 or self.g_vbn < 0:
            raise CtrlgenError("g_fc, label_embed and g_vbn must be >= 0")
        if self.g_vbn and self.family == "conv" and not self.g_batchnorm:
            raise CtrlgenError("virtual batch norm replaces G's BatchNorm, which g_batchnorm=false turns off; set g_batchnorm=true or g_vbn=0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def conv_plan(size: int) -> tuple[int, int]:
    """(start resolution s, number of ×2 upsamplings) with size = s·2^k and 3 <= s <= 7."""
    s, k = size, 0
    while s % 2 == 0 and s // 2 >= 4:
        s, k = s // 2, k + 1
    if k < 1 or s > 7:
        raise CtrlgenError(f"image size {size} is not supported; use s·2^k with s in 3..7 and k >= 1 (e.g. 28, 32, 64)")
    return s, k


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialization: N(0, 0.02) weights, BatchNorm gains N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# =========================================================================== G
class LatentInput(nn.Module):
    """Concatenate z, a label embedding, one-hot categorical codes and continuous codes."""

    def __init__(self, spec: LatentSpec, label_embed: int) -> None:
        super().__init__()
        self.spec = spec
        self.label = nn.Embedding(spec.n_classes, label_embed or spec.n_classes) if spec.conditional else None
        # One-hot tables as buffers: an index lookup (Gather in ONNX), no one_hot op needed.
        for i, c in enumerate(spec.categorical):
            self.register_buffer(f"eye{i}", torch.eye(c.n), persistent=False)
        self.dim = (
            spec.noise_dim
            + (self.label.embedding_dim if self.label is not None else 0)
            + sum(c.n for c in spec.categorical)
            + len(spec.continuous)
        )

    def forward(self, z, label=None, code_cat=None, code_cont=None) -> torch.Tensor:
        parts = [z]
        if self.label is not None:
            parts.append(self.label(label))
        for i in range(len(self.spec.categorical)):
            parts.append(getattr(self, f"eye{i}")[code_cat[:, i]])
        if self.spec.continuous:
            parts.append(code_cont)
        return torch.cat(parts, 1) if len(parts) > 1 else z


class Generator(nn.Module):
    """G(z, label?, code_cat?, code_cont?) -> sample.  Images in [-1, 1] via tanh; points unbounded."""

    def __init__(self, spec: LatentSpec, cfg: NetConfig) -> None:
        super().__init__()
        self.spec, self.cfg = spec, cfg
        self.input = LatentInput(spec, cfg.label_embed)
        if cfg.g_vbn:
            # The reference batch of virtual batch norm: latent inputs drawn once, here, from the
            # global torch RNG (seeded by the run), kept as buffers so checkpoints carry them.
            ref = spec.sample(cfg.g_vbn, seed=int(torch.randint(0, 2**31 - 1, (), device="cpu").item()))  # cpu: also under a meta device
            self.ref_names = tuple(ref)
            for name, value in ref.items():
                self.register_buffer(f"vbn_ref_{name}", torch.from_numpy(value))
        if cfg.family == "mlp":
            if spec.output_kind != "points":
                raise CtrlgenError("the mlp family makes points; use family=conv for images")
            layers, width = [], self.input.dim
            for _ in range(cfg.depth):
                layers += [nn.Linear(width, cfg.g_width), *([VirtualBatchNorm(cfg.g_width, cfg.g_vbn)] if cfg.g_vbn else []), nn.ReLU()]
                width = cfg.g_width
            layers.append(nn.Linear(width, spec.output_shape[0]))
            self.body = nn.Sequential(*layers)
            return
        if spec.output_kind != "image":
            raise CtrlgenError("the conv family makes images; use family=mlp for points")
        ch, size, _ = spec.output_shape
        s, k = conv_plan(size)
        c0 = cfg.g_width * 2 ** (k - 1)
        norm1d = (lambda n: nn.BatchNorm1d(n)) if cfg.g_batchnorm else (lambda n: nn.Identity())
        norm2d = (lambda n: nn.BatchNorm2d(n)) if cfg.g_batchnorm else (lambda n: nn.Identity())
        if cfg.g_vbn:
            norm1d = norm2d = lambda n: VirtualBatchNorm(n, cfg.g_vbn)  # noqa: E731
        layers: list[nn.Module] = []
        width = self.input.dim
        if cfg.g_fc:
            layers += [nn.Linear(width, cfg.g_fc), norm1d(cfg.g_fc), nn.ReLU()]
            width = cfg.g_fc
        layers += [nn.Linear(width, c0 * s * s), norm1d(c0 * s * s), nn.ReLU(), nn.Unflatten(1, (c0, s, s))]
        c = c0
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), norm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, ch, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z, label=None, code_cat=None, code_cont=None) -> torch.Tensor:
        h = self.input(z, label, code_cat, code_cont)
        if self.cfg.g_vbn and self.training:  # VBN: the reference batch runs in front, then is dropped
            ref = self.input(**{name: getattr(self, f"vbn_ref_{name}") for name in self.ref_names})
            return self.body(torch.cat([ref, h]))[self.cfg.g_vbn :]
        return self.body(h)


# =========================================================================== D
@dataclass
class DOut:
    """What D says about a batch: logits (B,), features (B, F), and Q's code predictions."""

    logit: torch.Tensor
    features: torch.Tensor
    q_cat: list[torch.Tensor] | None = None  # one (B, n_i) logit tensor per categorical code
    q_cont: torch.Tensor | None = None  # (B, n_continuous) predicted means


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: M = f(x)·T, c_b(i,j) = exp(-‖M_i,b - M_j,b‖₁), o(x_i)_b = Σ_j c_b(i,j)."""

    def __init__(self, in_features: int, kernels: int, dim: int) -> None:
        super().__init__()
        self.kernels, self.dim = kernels, dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * dim) * 0.1)
        self.out_features = in_features + kernels

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = (h @ self.T).view(-1, self.kernels, self.dim).transpose(0, 1)  # (kernels, B, dim)
        l1 = torch.cdist(m, m, p=1)  # (kernels, B, B), without a (B, B, kernels, dim) intermediate
        o = torch.exp(-l1).sum(2).t() - 1.0  # (B, kernels); exclude self-similarity exp(0) = 1
        return torch.cat([h, o], 1)


class MinibatchStddev(nn.Module):
    """ProGAN's variant: append the batch's mean feature standard deviation as one more feature."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.out_features = in_features + 1

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        std = (h.var(0, unbiased=False) + 1e-8).sqrt().mean()
        return torch.cat([h, std.expand(h.shape[0], 1)], 1)


class Discriminator(nn.Module):
    """D(x, label?) -> DOut.  A trunk gives features h; the head gives the logit; Q reads h too."""

    def __init__(self, spec: LatentSpec, cfg: NetConfig, q_head: bool) -> None:
        super().__init__()
        self.spec, self.cfg = spec, cfg
        sn = nn.utils.parametrizations.spectral_norm if cfg.d_norm == "spectral" else (lambda m: m)
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        pack = cfg.pack
        if cfg.family == "mlp":
            layers, width = [], spec.output_shape[0] * pack
            for _ in range(cfg.depth):
                layers += [sn(nn.Linear(width, cfg.d_width))]
                if cfg.d_norm == "layer":
                    layers.append(nn.LayerNorm(cfg.d_width))
                elif cfg.d_norm == "batch":
                    layers.append(nn.BatchNorm1d(cfg.d_width))
                layers.append(act())
                width = cfg.d_width
            self.trunk = nn.Sequential(*layers)
            feat = width
        else:
            ch, size, _ = spec.output_shape
            s, k = conv_plan(size)
            layers, c_in, c = [], ch * pack, cfg.d_width
            for i in range(k):
                layers.append(sn(nn.Conv2d(c_in, c, 4, 2, 1)))
                if i > 0 and cfg.d_norm == "batch":
                    layers.append(nn.BatchNorm2d(c))
                elif i > 0 and cfg.d_norm == "layer":
                    layers.append(nn.GroupNorm(1, c))
                layers.append(act())
                c_in, c = c, c * 2
            layers += [nn.Flatten(), sn(nn.Linear(c_in * s * s, cfg.d_fc))]
            if cfg.d_norm == "batch":
                layers.append(nn.BatchNorm1d(cfg.d_fc))
            elif cfg.d_norm == "layer":
                layers.append(nn.LayerNorm(cfg.d_fc))
            layers.append(act())
            self.trunk = nn.Sequential(*layers)
            feat = cfg.d_fc
        self.features_dim = feat
        if cfg.minibatch == "discrimination":
            self.mb: nn.Module = MinibatchDiscrimination(feat, cfg.mbd_kernels, cfg.mbd_dim)
        elif cfg.minibatch == "stddev":
            self.mb = MinibatchStddev(feat)
        else:
            self.mb = nn.Identity()
        head_in = getattr(self.mb, "out_features", feat)
        self.head = sn(nn.Linear(head_in, 1))
        # Projection: one embedding per class in the head's input space (for the packed
        # case each of the m samples' labels is projected and the terms summed).
        self.embed = None
        if spec.conditional:
            embed = nn.Embedding(spec.n_classes, head_in)
            nn.init.normal_(embed.weight, 0, 0.02)
            self.embed = sn(embed)
        if q_head:
            n_out = sum(c.n for c in spec.categorical) + len(spec.continuous)
            self.q = nn.Sequential(nn.Linear(feat, cfg.q_hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.q_hidden, n_out))
        else:
            self.q = None
        if cfg.family == "conv":
            dcgan_init(self.trunk)

    def pack_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """PacGAN: (B, ...) -> (B/m, m·C, ...) by concatenating m consecutive samples."""
        m = self.cfg.pack
        if m == 1:
            return x
        b = x.shape[0]
        if b % m:
            raise CtrlgenError(f"batch {b} is not divisible by pack={m}; use a batch size that is a multiple of pack")
        return x.reshape(b // m, m * x.shape[1], *x.shape[2:])

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> DOut:
        h = self.trunk(self.pack_inputs(x))
        hm = self.mb(h)
        logit = self.head(hm).squeeze(1)
        if self.embed is not None:
            e = self.embed(label)  # (B, F)
            if self.cfg.pack > 1:
                e = e.view(-1, self.cfg.pack, e.shape[1]).sum(1)
            logit = logit + (e * hm).sum(1)
        out = DOut(logit, h)
        if self.q is not None:
            if self.cfg.pack > 1:
                raise CtrlgenError("InfoGAN's Q head cannot read packed samples; use pack=1 with InfoGAN")
            q = self.q(h)
            sizes = [c.n for c in self.spec.categorical]
            out.q_cat = list(torch.split(q[:, : sum(sizes)], sizes, 1)) if sizes else None
            out.q_cont = q[:, sum(sizes) :] if self.spec.continuous else None
        return out

    def q_parameters(self):
        return [] if self.q is None else list(self.q.parameters())


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def recalibrate_batchnorm(g: Generator, batches: list[dict[str, torch.Tensor]]) -> None:
    """Recompute G's BatchNorm running statistics as the exact average over ``batches``.

    Needed for an EMA generator, whose averaged weights do not match the
    running statistics copied from the live G.  Virtual batch norm's reference
    statistics are refreshed the same way (a training-mode pass recomputes
    them from the reference batch).  Leaves G in eval mode.
    """
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns and not g.cfg.g_vbn:
        g.eval()
        return
    saved = [(m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
    g.train()
    for inputs in batches:
        g(**inputs)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    g.eval()


def flops_per_sample(g: Generator) -> int:
    """Multiply-adds ×2 of G's Linear and ConvTranspose layers for one sample (the dominant cost)."""
    total = 0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, nn.ConvTranspose2d):
            # each input pixel scatters in_ch × out_ch × k×k products
            h, w = inp[0].shape[-2:]
            total += 2 * h * w * mod.in_channels * mod.out_channels * math.prod(mod.kernel_size)

    for m in g.modules():
        if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(hook))
    was = g.training
    g.eval()
    with torch.no_grad():
        inputs = {k: torch.as_tensor(v[:1]) for k, v in g.spec.sample(1, 0).items()}
        g(**inputs)
    g.train(was)
    for h in hooks:
        h.remove()
    return total
