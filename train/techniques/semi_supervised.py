"""Semi-supervised InfoGAN (Spurr, Aksan & Hilliges 2017, "Guiding InfoGAN with Semi-Supervision").

A few labelled images per class tie InfoGAN's one categorical code to the classes: value k of the
code means class k of the data (and the exported spec names it so).  Every D update also draws a
batch of the labelled images (with replacement, as many as the real batch, from the run's
checkpointed generator), runs D's trunk and Q head on them and adds

    d_sup = lambda_sup · CE(Q_cat(x_labelled), y)

to D/Q's loss.  With ``lambda_sup_late`` > 0, that weight becomes ``lambda_sup_late`` from step
``late_from`` × (the run's G steps) on: a heavier pull late in the run, when the InfoGAN term on fakes
has started moving the code's meaning away from the classes (a function of the step alone, as the
learning-rate decay is, so resume stays exact).  All the other images train as in plain InfoGAN, their labels unused; with
``lambda_ent`` > 0, Q is also asked to be confident on each unlabelled real image while using all
classes evenly over the batch (``class_entropy_gap``, CatGAN's classifier objective), which moves its
class boundaries away from where the unlabelled images are dense.  With ``lambda_pseudo`` > 0, Q also
learns from its own confident calls (pseudo-labels, as in FixMatch, Sohn et al. 2020): where Q gives an
unlabelled real image one class with probability >= ``pseudo_threshold``, a shifted / mirrored copy of
that image (``shift``, ``flip``; with ``pseudo_cutout`` > 0 also a square of that side erased, FixMatch's strong
copy) is taught that class, adding

    d_pseudo = lambda_pseudo · mean_i [max_k p_ik >= threshold] · CE(Q_cat(aug(x_i)), argmax_k p_ik)

for one more pass of D on the augmented real batch; the 10 labels then reach far more images.

With ``q_warmup`` > 0, D's trunk and Q head first learn the labelled images alone for that many updates
(batches as the run's size, shifted / mirrored as above, a fresh Adam at D's learning rate, random draws
from a CPU generator seeded by the run's seed) before the run's first step: the InfoGAN term then pulls
G(z, c=k) toward what a classifier of the 10 labels per class calls class k from the first step, instead
of toward whatever split of the garments Q and G settle on in the first epoch.  A fresh run does it in
``setup``; a resume does it too and then loads the checkpoint over it, so resume stays exact.

G gets no term of its own: the InfoGAN term on fakes (mutual_information) already makes G minimize
CE(Q_cat(G(z, c)), c), which is Spurr et al.'s supervised term for G (their I_S(c; G)) once Q reads
classes; so G(z, c=k) is pulled toward what Q, taught by the labels, calls class k.  A second copy of
that term would only change its weight (lambda_cat sets it).

Which images are labelled: ``labels_per_class`` of each class, drawn from a CPU generator seeded by
the run's seed alone, so the set is the same on any device and whatever else draws random numbers.
The checkpoint stores the set (``tech.semi_supervised.labelled``; a resume that would pick another,
because the data changed, is refused) and its header records the counts and a hash of it.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.batches import cutout, shift_flip, to_unit
from ctrlgen.train.losses import class_entropy_gap
from ctrlgen.train.techniques.base import (
    RunContext,
    StepContext,
    Technique,
    check_late_weight,
    late_weight,
    register,
)

SELECT_SEED_OFFSET = 4_099  # the labelled set is drawn from torch.Generator().manual_seed(seed + this)
NAME = "techniques.semi_supervised"
MAX_Q_WARMUP = 100_000  # updates of the warm-up before step 1 (docs/results tried 300)


def labelled_set(labels: np.ndarray, n_classes: int, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` images of each class 0..n_classes-1 (class by class, sorted within one),
    a pure function of (labels, per_class, seed).  Images labelled -1 (unlabelled) are never chosen."""
    gen = torch.Generator().manual_seed(seed + SELECT_SEED_OFFSET)
    out = []
    for k in range(n_classes):
        idx = np.flatnonzero(labels == k)
        pick = torch.randperm(len(idx), generator=gen)[:per_class].numpy()
        out.append(np.sort(idx[pick]))
    return np.concatenate(out).astype(np.int64)


@register
class SemiSupervised(Technique):
    name = "semi_supervised"
    doc = ("Semi-supervised InfoGAN: labels_per_class labelled images per class tie the categorical code to the classes "
           "through lambda_sup * CE(Q_cat(x), y) in D/Q's loss.")
    params = {"labels_per_class": 10, "lambda_sup": 1.0, "shift": 0, "flip": False, "lambda_ent": 0.0,
              "lambda_pseudo": 0.0, "pseudo_threshold": 0.95, "pseudo_cutout": 0, "lambda_sup_late": 0.0, "late_from": 0.5,
              "q_warmup": 0}
    non_negative = {"lambda_sup": "", "lambda_ent": "", "lambda_pseudo": ""}

    @classmethod
    def check(cls, cfg, params) -> None:
        p = {**cls.params, **params}
        cats = cfg.latent.categorical
        if not cfg.infogan or len(cats) != 1:
            raise CtrlgenError(f"{NAME} needs an InfoGAN with exactly one categorical code (this config has {len(cats)}); "
                               "declare one [[latent.categorical]] with n = the number of classes")
        if cfg.points:
            raise CtrlgenError(f"{NAME} needs labelled images; the 2D mixtures have none to learn from: use image data")
        if cfg.conditional:
            raise CtrlgenError(f"{NAME} is for InfoGAN runs that see few labels; a class-conditional run sees every label: "
                               "set conditional = false or remove the table")
        if p["labels_per_class"] < 1:
            raise CtrlgenError(f"{NAME}.labels_per_class must be >= 1, got {p['labels_per_class']}")
        check_late_weight(NAME, "lambda_sup", "lambda_sup_late", p["lambda_sup_late"], p["late_from"])
        if not 0 <= p["q_warmup"] <= MAX_Q_WARMUP:  # 10^9 held the run in its warm-up for days, before step 1
            raise CtrlgenError(f"{NAME}.q_warmup is the number of updates Q learns the labelled images alone before the run; "
                               f"it must be a whole number 0..{MAX_Q_WARMUP:,} (0 = off; 300 in docs/results), got {p['q_warmup']:,}")
        if not 0 < p["pseudo_threshold"] < 1:
            raise CtrlgenError(f"{NAME}.pseudo_threshold must be in (0, 1), got {p['pseudo_threshold']}")
        if p["lambda_pseudo"] > 0 and p["shift"] == 0 and not p["flip"]:
            raise CtrlgenError(f"{NAME}.lambda_pseudo teaches Q its calls on a shifted or mirrored copy, and both are off; "
                               "set shift = 2 and/or flip = true")
        if not 0 <= p["pseudo_cutout"] <= cfg.image_size // 2:
            raise CtrlgenError(f"{NAME}.pseudo_cutout is the side in pixels of the square erased from each pseudo-labelled copy; "
                               f"it must be a whole number 0..{cfg.image_size // 2} (0 = off), got {p['pseudo_cutout']!r}")
        if p["pseudo_cutout"] > 0 and p["lambda_pseudo"] == 0:
            raise CtrlgenError(f"{NAME}.pseudo_cutout only changes the pseudo-labelled copies, and lambda_pseudo is 0 (off); "
                               "set lambda_pseudo > 0 or remove pseudo_cutout")
        if not 0 <= p["shift"] <= cfg.image_size // 4:
            raise CtrlgenError(f"{NAME}.shift must be 0..{cfg.image_size // 4} pixels (a quarter of the image), got {p['shift']}")
        known = cfg.default_class_names()  # Fashion-MNIST's; a folder's classes are checked when it is read
        if known and not cfg.data_dir and len(known) != cats[0].n:
            raise CtrlgenError(f"categorical code {cats[0].name!r} has {cats[0].n} values but {cfg.data} has {len(known)} classes; "
                               f"set n = {len(known)} in [[latent.categorical]] (or --set latent.categorical.0.n={len(known)})")

    @classmethod
    def spec_for(cls, spec, class_names, params):
        code = spec.categorical[0]
        if not class_names:
            raise CtrlgenError(f"{NAME} needs labelled images but the data gives no labels (no class subfolders, only unlabelled/); "
                               "put at least labels_per_class images of each class in a subfolder named after it")
        if len(class_names) != code.n:
            raise CtrlgenError(f"categorical code {code.name!r} has {code.n} values but the data has {len(class_names)} classes; "
                               f"set n = {len(class_names)} in [[latent.categorical]] (or --set latent.categorical.0.n={len(class_names)})")
        named = dataclasses.replace(code, values=tuple(class_names))
        return dataclasses.replace(spec, categorical=(named, *spec.categorical[1:]))

    # ------------------------------------------------------------------ the labelled set
    def setup(self, run: RunContext) -> None:
        data, code = run.data, run.spec.categorical[0]
        n = self.p["labels_per_class"]
        counts = np.bincount(data.labels[data.labels >= 0], minlength=code.n)[: code.n]
        if counts.sum() == 0:
            raise CtrlgenError(f"{NAME} needs labelled images but {data.source} gives no labels; "
                               "put at least labels_per_class images of each class in a subfolder named after it")
        fewest = int(counts.argmin())
        if counts[fewest] < n:
            raise CtrlgenError(f"class {code.values[fewest] if code.values else fewest!r} has {counts[fewest]} labelled image(s), "
                               f"fewer than {NAME}.labels_per_class = {n}; lower it to {counts[fewest]} or add images")
        self.labelled = torch.from_numpy(labelled_set(data.labels, code.n, n, run.seed))
        self.x = torch.from_numpy(np.ascontiguousarray(data.images[self.labelled.numpy()])).to(run.device)
        self.y = torch.from_numpy(data.labels[self.labelled.numpy()]).to(run.device)
        self.warmup_stats: dict[str, float] = {}
        if self.p["q_warmup"] > 0:
            self.warmup_stats = self.warm_up_q(run)

    def warm_up_q(self, run: RunContext) -> dict[str, float]:
        """``q_warmup`` updates of D's trunk and Q head on the labelled images alone (see the module's doc);
        returns Q's cross-entropy over the last 50 updates and its accuracy on the unshifted labelled set."""
        gen = torch.Generator().manual_seed(run.seed + SELECT_SEED_OFFSET + 1)  # the same on every device and rank
        group = run.opt_d.param_groups[0]
        opt = torch.optim.Adam(run.D.parameters(), lr=group["lr"], betas=group["betas"])
        n, losses = run.batch_size or 64, []
        for _ in range(self.p["q_warmup"]):
            i = torch.randint(len(self.y), (n,), generator=gen).to(self.y.device)
            x = shift_flip(to_unit(self.x[i]), self.p["shift"], self.p["flip"], gen)
            with run.autocast():
                out = run.D(x, None)
            loss = F.cross_entropy(out.q_cat[0].float(), self.y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        run.D.zero_grad(set_to_none=True)
        with torch.no_grad(), run.autocast():
            hit = (run.D(to_unit(self.x.clone()), None).q_cat[0].argmax(1) == self.y).float().mean()
        return {"q_warmup_ce": round(float(np.mean(losses[-50:])), 4), "q_warmup_accuracy": round(float(hit), 4)}

    def labelled_batch(self, run: RunContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` labelled images (in [-1, 1]) and their classes, drawn with replacement by the run's generator,
        each shifted and flipped at random when ``shift`` / ``flip`` ask for it."""
        i = torch.randint(len(self.y), (n,), generator=run.rng, device=run.rng.device)
        # Shifted and mirrored at random where the recipe asks: 10 images per class are seen thousands of times
        # over a run and Q learns them by heart; its cross-entropy on them then reaches ~0 and stops anchoring
        # the code to the classes while the InfoGAN term on fakes keeps moving Q (purity fell from 0.84 to 0.77
        # over the recipe's run without this: docs/results/fashion-infogan-ss-runs.md).
        return shift_flip(to_unit(self.x[i]), self.p["shift"], self.p["flip"], run.rng), self.y[i]

    def d_penalty(self, ctx: StepContext):
        run = ctx.run
        x, y = self.labelled_batch(run, len(ctx.real) if ctx.real is not None else len(ctx.fake))
        out = self._discriminate(ctx, x)
        terms = {"d_sup": self.sup_weight(run) * F.cross_entropy(out.q_cat[0].float(), y)}
        if self.p["lambda_ent"] > 0 and ctx.out_real is not None and ctx.out_real.q_cat:
            terms["d_ent"] = self.p["lambda_ent"] * class_entropy_gap(ctx.out_real.q_cat[0].float())
        if self.p["lambda_pseudo"] > 0 and ctx.real is not None and ctx.out_real is not None and ctx.out_real.q_cat:
            terms["d_pseudo"] = self.p["lambda_pseudo"] * self.pseudo_label_loss(ctx)
        return terms

    def sup_weight(self, run: RunContext) -> float:
        """The supervised term's weight at this step: ``lambda_sup``, then ``lambda_sup_late`` from step
        ``late_from`` × total steps on (where ``lambda_sup_late`` > 0)."""
        return late_weight(run, self.p["lambda_sup"], self.p["lambda_sup_late"], self.p["late_from"])

    def pseudo_label_loss(self, ctx: StepContext) -> torch.Tensor:
        """Q's confident calls on the unlabelled real batch taught to a shifted / mirrored copy of it (with a square
        erased where ``pseudo_cutout`` > 0: FixMatch's strong copy): the mean over the batch of
        [confidence >= pseudo_threshold] · CE (images below the threshold count as 0, as in FixMatch)."""
        run = ctx.run
        with torch.no_grad():
            conf, pseudo = F.softmax(ctx.out_real.q_cat[0].float(), 1).max(1)
            keep = (conf >= self.p["pseudo_threshold"]).float()
        student = cutout(shift_flip(ctx.real, self.p["shift"], self.p["flip"], run.rng), self.p["pseudo_cutout"], run.rng)
        out = self._discriminate(ctx, student)
        return (F.cross_entropy(out.q_cat[0].float(), pseudo, reduction="none") * keep).mean()

    @staticmethod
    def _discriminate(ctx: StepContext, x: torch.Tensor):
        """D (trunk and Q head) on extra real images, under the run's mixed precision (as every other D pass)."""
        with ctx.run.autocast():
            return ctx.discriminate(x, None)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self):
        return {"labelled": self.labelled}

    def load_state_dict(self, state) -> None:
        saved = state.get("labelled")
        if saved is not None and not torch.equal(saved.cpu().long(), self.labelled):
            raise CtrlgenError(f"the checkpoint's labelled images differ from the ones this data and seed give "
                               f"({len(saved)} saved, {len(self.labelled)} now); resume with the data the run started with")

    def meta(self):
        idx = self.labelled.numpy()
        return {"labels_per_class": self.p["labels_per_class"], "classes": int(len(idx) // self.p["labels_per_class"]),
                "labelled": int(len(idx)), "indices_sha256": hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest()[:16],
                **self.warmup_stats}
