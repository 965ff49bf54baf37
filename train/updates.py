"""G updates as pieces: how a training step turns D's verdict into a new generator.

A run's ``mode`` names its G update in ``G_UPDATES``: ``standard`` (one G, one
loss) or ``egan`` (a population evolved with several losses, train/egan_update.py).
Both build every G loss the same way, with ``g_terms``: the adversarial term
of a loss on D's logits plus every active technique's G penalty, through the
discriminator the techniques hand G (unrolled GANs give a look-ahead copy).

A piece also says how D's fake batch is made (``generate_fake``: E-GAN splits
it among its survivors), what it adds to checkpoints (``state_dict``, under
``population.``) and to the checkpoint header (``meta``), and which
``metrics.jsonl`` lines it has waiting (``take_records``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ctrlgen.spec import LABEL
from ctrlgen.train.techniques import StepContext

if TYPE_CHECKING:
    from ctrlgen.train.losses import GanLoss

# The trainer (train/trainer.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any

Tensor = torch.Tensor


def g_terms(tr: Trainer, loss: GanLoss, inputs: dict[str, Tensor], real: Tensor | None, y: Tensor | None) -> dict[str, Tensor]:
    """G's loss terms for one latent batch: ``loss``'s G term on D's logits plus the techniques' G penalties."""
    run = tr.run_context
    d_fn = tr.D
    for t in tr.techniques:
        d_fn = t.d_for_g(run, d_fn)
    with tr.autocast():
        fake = tr.g_train(**inputs)  # through DDP when distributed: G's gradients are all-reduced
        seen = fake
        for t in tr.augmenters:  # D is shown what it sees in its own step (DiffAugment); ctx.fake stays G's own images
            seen = t.augment(seen, run)
            real = None if real is None else t.augment(real, run)
        out_f = d_fn(seen, inputs.get(LABEL))
    terms = {"g_adv": loss.g(out_f.logit.float())}
    ctx = StepContext(run, real, y if tr.spec.conditional else None, inputs, fake, out_f, d=d_fn)
    for t in tr.g_penalties:
        terms.update(t.g_penalty(ctx) or {})
    return terms


def g_update(tr: Trainer, loss: GanLoss, batches: list[tuple[dict[str, Tensor], Tensor | None, Tensor | None]]) -> dict[str, Tensor]:
    """One optimizer step of G per (latents, real, label) batch with ``loss``; the last step's terms, detached."""
    terms: dict[str, Tensor] = {}
    tr.D.requires_grad_(False)  # no D weight gradients in G's update
    try:
        for inputs, real, y in batches:
            terms = g_terms(tr, loss, inputs, real, y)
            tr.opt_g.zero_grad(set_to_none=True)
            sum(terms.values()).backward()
            tr.opt_g.step()
    finally:
        tr.D.requires_grad_(True)
    return {k: v.detach() for k, v in terms.items()}


def g_batch(tr: Trainer) -> tuple[dict[str, Tensor], Tensor | None, Tensor | None]:
    """A G batch: fresh latents, and a real batch when a technique's G penalty needs one (feature matching)."""
    inputs = tr.sample_latent(tr.batch)
    for t in tr.techniques:
        inputs = t.g_latent(inputs, tr.run_context)
    real, y = tr.next_real() if tr.needs_real_in_g else (None, None)
    return inputs, real, y


class GUpdate:
    """The standard G update: one generator, the run's loss."""

    name: ClassVar[str] = "standard"

    def __init__(self, trainer: Trainer) -> None:
        self.tr = trainer

    def generate_fake(self, inputs: dict[str, Tensor]) -> Tensor:
        """D's fake batch."""
        return self.tr.G(**inputs)

    def step(self) -> dict[str, Tensor]:
        tr = self.tr
        stats = g_update(tr, tr.loss, [g_batch(tr)])
        tr.after_g_step()
        return stats

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...

    def meta(self) -> dict[str, Any]:
        return {}

    def take_records(self, step: int) -> list[dict[str, Any]]:
        """metrics.jsonl lines of steps up to ``step`` that this piece has waiting."""
        return []


G_UPDATES: dict[str, type[GUpdate]] = {"standard": GUpdate}


def register_update(cls: type[GUpdate]) -> type[GUpdate]:
    G_UPDATES[cls.name] = cls
    return cls
