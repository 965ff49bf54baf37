"""Virtual batch normalization (Salimans et al. 2016, §3.4) for the generator.

Batch norm makes each generated sample depend on the other samples of its
batch.  VBN normalizes each example with the statistics of a *reference
batch* of latent inputs, chosen once when G is built, combined with the
example itself:

    μ = c·m(x) + (1 − c)·μ_ref,   E[h²] = c·s(x) + (1 − c)·s_ref,   c = 1 / (N_ref + 1)
    y = γ · (x − μ) / √(E[h²] − μ² + ε) + β

where m(x), s(x) are the example's own mean and mean square (over its
spatial positions for feature maps) and μ_ref, s_ref those of the reference
batch at this layer.  In training mode G runs the reference batch in front of
the real one (its rows are normalized by their own statistics and stripped
at the end), so the reference statistics follow G's current weights and
gradients flow through them.  Each layer keeps the last reference statistics
in buffers; in eval mode (sampling, ONNX export) it uses those fixed buffers,
so a sample does not depend on its batch.
"""

from __future__ import annotations

import torch
from torch import nn


class VirtualBatchNorm(nn.Module):
    """VBN over features (B, C) or feature maps (B, C, H, W).

    In training mode the first ``n_ref`` rows of the input are the reference batch.
    """

    def __init__(self, num_features: int, n_ref: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_ref, self.eps = n_ref, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("ref_mean", torch.zeros(num_features))  # E[h] of the reference batch
        self.register_buffer("ref_sq", torch.ones(num_features))  # E[h²] of the reference batch

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
        """(x − μ)/√(E[h²] − μ² + ε)·γ + β; μ and E[h²] are (C,) or per example (B, C)."""
        tail = (1,) * (x.dim() - 2)  # broadcast over spatial positions
        mean, sq = mean.view(*mean.shape, *tail), sq.view(*sq.shape, *tail)
        var = (sq - mean * mean).clamp_min(0.0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(-1, *tail) + self.bias.view(-1, *tail)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, h.dim()))
        if self.training:
            ref, x = h[: self.n_ref], h[self.n_ref :]
            ref_mean = ref.mean((0, *spatial))
            ref_sq = (ref * ref).mean((0, *spatial))
            with torch.no_grad():
                self.ref_mean.copy_(ref_mean)
                self.ref_sq.copy_(ref_sq)
        else:
            ref, x = None, h
            ref_mean, ref_sq = self.ref_mean, self.ref_sq
        own_mean = x.mean(spatial) if spatial else x  # (B, C)
        own_sq = (x * x).mean(spatial) if spatial else x * x
        c = 1.0 / (self.n_ref + 1.0)
        mean = c * own_mean + (1.0 - c) * ref_mean
        sq = c * own_sq + (1.0 - c) * ref_sq
        out = self._normalize(x, mean, sq)
        if ref is None:
            return out
        return torch.cat([self._normalize(ref, ref_mean, ref_sq), out])
