"""Differentiable augmentation for D (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training", DiffAugment).

A D that sees the same real images epoch after epoch can learn them rather than what makes an image
real: its accuracy climbs toward 1 and G is pushed toward the few images D still accepts.  DiffAugment
shows D every image, real and fake, in both players' updates, through the same random transformations,
differentiable so G's gradient passes through them.  D never sees an unaugmented image, so nothing in
the transformations can be learnt as "real"; G is not asked to make augmented images, because the fakes
are augmented after G made them.

Policies (the paper's, each drawn afresh per image and per call):

* ``color``: brightness + U(−0.5, 0.5); saturation: the channels pulled toward or pushed from their
  mean by U(0, 2) (nothing for one channel); contrast: the image around its mean times U(0.5, 1.5);
* ``translation``: moved by up to 1/8 of its size in each direction (4 pixels at 28 × 28);
* ``cutout``: a square of half its size erased at a random place (14 × 14 at 28 × 28).

Where the paper pads and erases with 0 (mid-grey in [−1, 1]), this fills with the background, −1, as the
rest of ctrlgen's augmentations do (``ctrlgen.train.batches``).  Draws come from the run's generator, so a
resume is exact.  What other techniques read of D (feature matching's statistics, the penalties in D's
step, on the reals and fakes D was shown) is of the transformed images; mode seeking compares G's own,
untransformed images.
"""

from __future__ import annotations

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.batches import cutout, shift_flip
from ctrlgen.train.techniques.base import RunContext, Technique, register

NAME = "techniques.diffaugment"
POLICIES = ("color", "translation", "cutout")


def _uniform(b: int, lo: float, hi: float, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen, device=gen.device)).to(like.device, like.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness, saturation and contrast, each with its own draw per image (the draws in that order)."""
    b = x.shape[0]
    x = x + _uniform(b, -0.5, 0.5, gen, x)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * _uniform(b, 0.0, 2.0, gen, x) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(b, 0.5, 1.5, gen, x) + mean


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """``x`` [n, C, H, W] through ``policy``'s transformations in the order given, differentiably."""
    h = x.shape[-1]
    for name in policy:
        if name == "color":
            x = color(x, gen)
        elif name == "translation":
            x = shift_flip(x, int(h / 8 + 0.5), False, gen)
        else:
            x = cutout(x, int(h / 2 + 0.5), gen)
    return x


def parse_policy(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in POLICIES]
    if bad or not names or len(set(names)) != len(names):
        raise CtrlgenError(f"{NAME}.policy is a comma-separated list of {', '.join(POLICIES)}, each once "
                           f"(e.g. policy = \"translation,cutout\"), got {text!r}")
    return names


@register
class DiffAugment(Technique):
    name = "diffaugment"
    doc = ("D sees every image, real and fake, in both updates through the same random differentiable "
           "transformations (color, translation by 1/8, cutout of 1/2; DiffAugment).")
    params = {"policy": "color,translation,cutout"}

    @classmethod
    def check(cls, cfg, params) -> None:
        parse_policy(params.get("policy", cls.params["policy"]))
        if cfg.points:
            raise CtrlgenError(f"{NAME} transforms images; a 2D mixture has none (remove the table)")
        if cfg.infogan:
            raise CtrlgenError(f"{NAME} would show InfoGAN's Q head moved and erased images whose codes it must read; "
                               "use it with conditional or unconditional GANs (remove the table)")
        if cfg.mode == "egan":
            raise CtrlgenError(f"{NAME} with mode = \"egan\" is not supported (E-GAN's fitness would judge G's children with a D "
                               "that has only seen transformed images, on whole ones); keep one")
        if "unrolled" in cfg.techniques:
            raise CtrlgenError(f"{NAME} and techniques.unrolled together are not supported (the unrolled D steps would see "
                               "unaugmented images); keep one")

    def setup(self, run: RunContext) -> None:
        self.policy = parse_policy(self.p["policy"])

    def augment(self, x: torch.Tensor, run: RunContext) -> torch.Tensor:
        return diff_augment(x, self.policy, run.rng)
