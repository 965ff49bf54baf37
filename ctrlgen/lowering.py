"""The torch side of reduced precision (``ctrlgen.precision``): an exact lowering of G, and bf16.

``lower(g)`` folds BatchNorm (and virtual batch norm's reference statistics) into the layer before it and rewrites every
ConvTranspose(k=4, s=2, p=1) in the sub-pixel form that int8 Conv kernels run;
``to_bf16(g)`` is that lowered G in bf16, channels-last, for torch's CPU kernels.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn import functional as F

from ctrlgen.vbn import VirtualBatchNorm


# --------------------------------------------------------------------------- lowering
class SubPixelConvTranspose(nn.Module):
    """ConvTranspose2d(k=4, s=2, p=1) computed as Pad(1) → Conv 2×2 (4·C_out) → PixelShuffle(2) → crop 1.

    Output pixel (2i+a, 2j+b) of the transposed conv reads input rows {i-1, i}
    (a = 0, kernel taps 3, 1) or {i, i+1} (a = 1, taps 2, 0): a 2×2 window of
    the padded input starting at i+a.  Phase (a, b) goes to pixel-shuffle slot
    (1-a, 1-b), so shuffling the 8×8 windows gives a 16×16 map whose centre
    14×14 is exactly the transposed conv's output.
    """

    def __init__(self, ct: nn.ConvTranspose2d, act: nn.Module | None = None) -> None:
        super().__init__()
        # An elementwise activation commutes with the shuffle and crop; applied right after the
        # conv, the quantizer fuses it into the int8 Conv instead of leaving an fp32 activation after the crop.
        self.act = act if act is not None else nn.Identity()
        w = ct.weight.detach()  # (C_in, C_out, 4, 4)
        cin, cout = w.shape[:2]
        wc = w.new_zeros(cout, 2, 2, cin, 2, 2)  # (C_out, slot_y, slot_x, C_in, tap_y, tap_x)
        for sy in range(2):
            for sx in range(2):
                a, b = 1 - sy, 1 - sx
                for ty in range(2):
                    for tx in range(2):
                        wc[:, sy, sx, :, ty, tx] = w[:, :, 3 - a - 2 * ty, 3 - b - 2 * tx].t()
        self.conv = nn.Conv2d(cin, cout * 4, 2, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(wc.reshape(cout * 4, cin, 2, 2))
            self.conv.bias.copy_(ct.bias.detach().repeat_interleave(4) if ct.bias is not None else torch.zeros(cout * 4))

    @staticmethod
    def fits(m: nn.Module) -> bool:
        return (
            isinstance(m, nn.ConvTranspose2d)
            and m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
            and m.output_padding == (0, 0) and m.dilation == (1, 1) and m.groups == 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.act(self.conv(x)), 2)[:, :, 1:-1, 1:-1]


class SubPixelChain(nn.Module):
    """Two sub-pixel layers in a row, computed without the shuffle and crop between them.

    The first layer's 2×2 conv gives its output as 4 phase maps of (H+1)×(W+1) (channel c·4 + 2·sy + sx
    holds pixel (2h+sy, 2w+sx) of the uncropped 2(H+1)-map); the second layer's padded input is exactly
    that uncropped map with its one-pixel border set to zero.  So: zero the border in phase space (a
    constant mask), and run the second layer's 2×2 conv directly on the phase maps as a 2×2 conv (padded
    bottom/right) whose output channels are the second layer's 4 phases × its own 4 sub-pixel phases;
    one 4× shuffle of those few channels and a crop give the image.  Exact (tested); the point is that
    the large shuffle and crop between the two convs, which ONNX Runtime runs in fp32 between its int8
    convs (and which cost it more than the convs), disappear.  The weights grow 4× in the second conv,
    which is the small one (4·C₂ output channels).
    """

    def __init__(self, a: SubPixelConvTranspose, b: SubPixelConvTranspose, size: tuple[int, int]) -> None:
        super().__init__()
        self.conv, self.act = a.conv, a.act  # first layer, unchanged
        self.act2 = b.act
        wb, bb = b.conv.weight.detach(), b.conv.bias.detach()  # (4·C₂, C, 2, 2), o = c₂·4 + 2·ty + tx
        c2, c = wb.shape[0] // 4, wb.shape[1]
        # One axis of the mapping (rows and columns alike): for output phase α, the second layer's kernel tap d
        # reads phase s of the first layer's map at offset δ of the phase-map window, where d = 2δ + s − α.
        tap = wb.new_zeros(2, 2, 2, 2)  # (α, s, δ, d)
        for al, s, dl in itertools.product(range(2), repeat=3):
            if 0 <= 2 * dl + s - al <= 1:
                tap[al, s, dl, 2 * dl + s - al] = 1.0
        # (c₂, α, ty, β, tx, c, sy, sx, δy, δx); each entry picks exactly one weight, so the sum is exact.
        w2 = torch.einsum("aykd,bxle,otucde->oatbucyxkl", tap, tap, wb.view(c2, 2, 2, c, 2, 2))
        self.conv2 = nn.Conv2d(4 * c, 16 * c2, 2)
        with torch.no_grad():
            self.conv2.weight.copy_(w2.reshape(16 * c2, 4 * c, 2, 2))
            self.conv2.bias.copy_(bb.view(c2, 1, 2, 1, 2).expand(c2, 2, 2, 2, 2).reshape(-1))
        # The border of the uncropped map, in phase space, for an input of ``size`` (H, W): phase maps are (H+1)×(W+1).
        h, w = size[0] + 1, size[1] + 1
        m = torch.ones(c, 2, 2, h, w)
        m[:, 0, :, 0, :] = 0  # row 0 of the uncropped map
        m[:, 1, :, h - 1, :] = 0  # its last row
        m[:, :, 0, :, 0] = 0
        m[:, :, 1, :, w - 1] = 0
        self.register_buffer("mask", m.reshape(4 * c, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        y = y * self.mask
        z = self.act2(self.conv2(F.pad(y, (0, 1, 0, 1))))
        return F.pixel_shuffle(z, 4)[:, :, 1:-3, 1:-3]


@torch.no_grad()
def _fold_affine(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> nn.Module:
    """``layer`` followed by y ↦ y·scale + shift per output channel, as one layer."""
    layer = copy.deepcopy(layer)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
    if isinstance(layer, nn.ConvTranspose2d):
        layer.weight.mul_(scale.view(1, -1, 1, 1))
    else:
        layer.weight.mul_(scale.view(-1, *([1] * (layer.weight.dim() - 1))))
    layer.bias = nn.Parameter(bias * scale + shift)
    return layer


def _fold(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """``layer`` followed by an eval-mode BatchNorm, as one layer (weights scaled per output channel)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return _fold_affine(layer, scale, bn.bias - bn.running_mean * scale)


class ResidualVBN(nn.Module):
    """Eval-mode virtual batch norm whose reference statistics are folded into the layer before it.

    That layer then gives x̂ = (x − μ_ref)·a with a = 1/√(var_ref + ε), and VBN's output
    γ·(x − μ)/√(var + ε) + β (μ, var mixing the example's own statistics, weight c = 1/(N_ref+1),
    with the reference batch's) is, exactly,

        γ·(x̂ − c·m̂)/√(c·ŝ − c²·m̂² + k) + β,   k = ((1 − c)·var_ref + ε)/(var_ref + ε),

    m̂, ŝ the example's own mean and mean square of x̂.  The point is int8: x̂ has about unit variance in
    every channel, so one scale per tensor quantizes all channels alike; unfolded, the channels with a small
    spread lost most of their precision to the wide ones and VBN's 1/σ then magnified that error.
    """

    def __init__(self, vbn: VirtualBatchNorm) -> None:
        super().__init__()
        var_ref = self.ref_var(vbn)
        self.c = 1.0 / (vbn.n_ref + 1.0)
        self.register_buffer("k", ((1.0 - self.c) * var_ref + vbn.eps) / (var_ref + vbn.eps))
        self.register_buffer("weight", vbn.weight.detach().clone())
        self.register_buffer("bias", vbn.bias.detach().clone())

    @staticmethod
    def ref_var(vbn: VirtualBatchNorm) -> torch.Tensor:
        """The reference batch's variance per channel, E[h²] − E[h]² (never below 0)."""
        return (vbn.ref_sq - vbn.ref_mean * vbn.ref_mean).clamp_min(0.0).detach()

    @staticmethod
    def fold(layer: nn.Module, vbn: VirtualBatchNorm) -> nn.Module:
        """``layer`` followed by the reference half of ``vbn``: (y − μ_ref)·a."""
        with torch.no_grad():
            a = torch.rsqrt(ResidualVBN.ref_var(vbn) + vbn.eps)
            return _fold_affine(layer, a, -vbn.ref_mean * a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tail = (1,) * (x.dim() - 2)
        spatial = tuple(range(2, x.dim()))
        if not spatial:  # features: m̂ = x̂ and ŝ = x̂², so y = γ(1 − c)·x̂/√(c(1 − c)·x̂² + k) + β (fewer ops)
            c = self.c
            return x * torch.rsqrt(x * x * (c * (1.0 - c)) + self.k) * (self.weight * (1.0 - c)) + self.bias
        m = x.mean(spatial, keepdim=True)
        s = (x * x).mean(spatial, keepdim=True)
        cm = self.c * m
        var = self.c * s - cm * cm + self.k.view(-1, *tail)
        return (x - cm) * torch.rsqrt(var) * self.weight.view(-1, *tail) + self.bias.view(-1, *tail)


ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh)


def lower(g: nn.Module) -> nn.Module:
    """An eval-mode copy of generator ``g`` with BatchNorm folded and ConvTransposes in sub-pixel form.

    The activation after a ConvTranspose (ReLU, Tanh) moves inside the
    sub-pixel module, before the shuffle.  Same outputs as ``g.eval()`` up to
    float rounding (tested); only ``g.body`` (an ``nn.Sequential``) is rewritten."""
    g = copy.deepcopy(g).float().eval()
    layers = list(g.body)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        m = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        foldable = isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d))
        if foldable and nxt.track_running_stats and nxt.affine:
            m, i = _fold(m, nxt), i + 1
        vbn = None
        if isinstance(m, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d)) and isinstance(nxt, VirtualBatchNorm):
            m, vbn, i = ResidualVBN.fold(m, nxt), ResidualVBN(nxt), i + 1
        if SubPixelConvTranspose.fits(m):
            # VBN's own statistics are over the cropped map: the activation stays after it, outside the sub-pixel form.
            act = layers[i + 1] if vbn is None and i + 1 < len(layers) and isinstance(layers[i + 1], ELEMENTWISE) else None
            m, i = SubPixelConvTranspose(m, act), i + (act is not None)
        out.append(m)
        if vbn is not None:
            out.append(vbn)
        i += 1
    # Two sub-pixel layers in a row become one chain (no shuffle between them); the chain needs its input
    # size, so the layers are run once on one sample to find it.
    with torch.no_grad():
        h = g.input(**{k: torch.as_tensor(v) for k, v in g.spec.sample(1, seed=0).items()})
        chained: list[nn.Module] = []
        inputs: list[torch.Tensor] = []  # what each of ``chained`` is fed
        for m in out:
            if isinstance(m, SubPixelConvTranspose) and chained and isinstance(chained[-1], SubPixelConvTranspose):
                chained[-1] = SubPixelChain(chained[-1], m, tuple(inputs[-1].shape[-2:]))
                h = chained[-1](inputs[-1])
            else:
                chained.append(m)
                inputs.append(h)
                h = m(h)
    g.body = nn.Sequential(*chained)
    return g


# --------------------------------------------------------------------------- bf16 (torch)
def to_bf16(g: nn.Module) -> nn.Module:
    """The lowered generator in bf16, channels-last: what oneDNN runs fastest on AVX-512 BF16."""
    return lower(g).to(torch.bfloat16).to(memory_format=torch.channels_last)
