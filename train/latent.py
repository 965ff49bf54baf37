"""Latent inputs for training, drawn in torch on the run's device by the spec's own definition.

``LatentSpec.draw`` (ctrlgen/spec.py) fixes what is drawn and in which order;
``TorchDraws`` supplies the draws from a ``torch.Generator``, so the trainer's
latents and ``spec.sample``'s numpy latents cannot drift apart.
"""

from __future__ import annotations

import torch

from ctrlgen.spec import Draws, LatentSpec


class TorchDraws(Draws):
    def __init__(self, generator: torch.Generator, device: torch.device) -> None:
        self.gen, self.device = generator, device

    def normal(self, shape):
        return torch.randn(shape, device=self.device, generator=self.gen)

    def uniform(self, low, high, shape):
        return low + (high - low) * torch.rand(shape, device=self.device, generator=self.gen)

    def integers(self, n, count):
        return torch.randint(0, n, (count,), device=self.device, generator=self.gen)

    def stack(self, columns):
        return torch.stack(columns, 1)


def sample_latent(spec: LatentSpec, n: int, generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """``n`` latent inputs from the spec, drawn with ``generator`` (the run's own, checkpointed)."""
    return spec.draw(n, TorchDraws(generator, device))
