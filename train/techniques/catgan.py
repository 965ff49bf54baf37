"""CatGAN's classifier objective for InfoGAN's Q on real images (Springenberg 2016, "Unsupervised and
Semi-supervised Learning with Categorical Generative Adversarial Networks"), with no labels.

InfoGAN teaches Q its categorical code only on G's images: Q must tell G(z, c=k) from G(z, c=j), and G
must make them tellable.  Nothing asks how Q sorts the *real* images, so which garments share a value
of c is whatever split of G's images came first, and it settles in the first epoch (README, "Headline
metrics").  This term adds, to D/Q's loss on every real batch,

    d_catgan = weight · ( mean_i H(Q_cat(x_i)) − H(mean_i Q_cat(x_i)) )

(``class_entropy_gap``): each real image gets one value of c with confidence (the first term), while
the batch uses every value equally often (the second).  The data's classes are equally common, so a
split of the real images into equal, confident parts is what Q is pushed toward, and G, whose images
of c=k must be what Q calls k, follows.  Each categorical code gets its own term.

It costs no extra pass: the term reads the Q head's output on the real batch that D's loss already
ran.  G's loss is unchanged.
"""

from __future__ import annotations

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.losses import class_entropy_gap
from ctrlgen.train.techniques.base import SWITCH_OFF, StepContext, Technique, register

NAME = "techniques.catgan"


@register
class CatGan(Technique):
    name = "catgan"
    doc = ("InfoGAN's Q on real images, no labels: weight * (mean entropy of Q_cat per image - entropy of Q_cat's batch mean), "
           "confident per image and every value used evenly (CatGAN).")
    params = {"weight": 1.0}
    positive = {"weight": SWITCH_OFF}

    @classmethod
    def check(cls, cfg, params) -> None:
        if not cfg.infogan or not cfg.latent.categorical:
            raise CtrlgenError(f"{NAME} shapes how InfoGAN's Q head splits the real images among a categorical code's values, "
                               "and this config has no categorical code; use it with infogan = true and a [[latent.categorical]]")
        if (cfg.techniques.get("semi_supervised") or {}).get("lambda_ent", 0) > 0:
            raise CtrlgenError(f"{NAME} and techniques.semi_supervised.lambda_ent are the same term on the same images; "
                               "keep one (remove lambda_ent, or the [techniques.catgan] table)")

    def d_penalty(self, ctx: StepContext):
        out = ctx.out_real
        if ctx.real is None or out is None or not out.q_cat:
            return None
        return {"d_catgan": self.p["weight"] * sum(class_entropy_gap(q.float()) for q in out.q_cat)}
