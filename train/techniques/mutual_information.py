"""InfoGAN's mutual-information term (Chen et al. 2016), switched on by any InfoGAN config.

L_I = λ_cat · CE(Q_cat(G(z, c)), c_cat) + λ_cont · ½‖Q_cont(G(z, c)) − c_cont‖²
(the continuous term is the Gaussian NLL with unit variance, up to a constant).
Both players minimize it: G so its codes are recoverable, D's trunk and Q head
(on detached fakes) to recover them.  λ are this technique's parameters
(``[techniques.mutual_information] lambda_cat``, ``lambda_cont``).

``q_cat_from_fakes`` (default 1) scales the categorical term on D/Q's side only: at 0, Q's categorical
head never learns from G's samples and G is pulled toward what Q, taught by real images alone, calls
value k.  That is for semi-supervised runs, where labels (and pseudo-labels) teach Q the classes: there Q
learning from fakes can also teach it G's mistakes (G(z, c=Shirt) drawing coats, and Q learning to call
those coats Shirt), which then hold for the rest of the run.  Without labels Q has nothing else to learn
the code from, so plain InfoGAN needs it at 1 (a check says so).  With ``q_cat_from_fakes_late`` > 0 the
scale becomes that value from step ``late_from`` × (the run's G steps) on (a function of the step, so resume
stays exact): Q first learns the classes from real images alone, then also from G's samples once G(z, c=k)
draws what the labels call class k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import CODE_CAT, CODE_CONT
from ctrlgen.train.techniques.base import StepContext, Technique, check_late_weight, late_weight, register


def info_terms(out, inputs: dict[str, torch.Tensor], lambda_cat: float | None, lambda_cont: float) -> dict[str, torch.Tensor]:
    """The InfoGAN terms on ``out``; ``lambda_cat`` None leaves the categorical one out (not computed, not logged)."""
    terms = {}
    if out.q_cat is not None and lambda_cat is not None:
        codes = inputs[CODE_CAT]
        ce = sum(F.cross_entropy(logits.float(), codes[:, i]) for i, logits in enumerate(out.q_cat))
        terms["info_cat"] = lambda_cat * ce
    if out.q_cont is not None:
        terms["info_cont"] = lambda_cont * 0.5 * ((out.q_cont.float() - inputs[CODE_CONT]) ** 2).sum(1).mean()
    return terms


@register
class MutualInformation(Technique):
    name = "mutual_information"
    doc = "InfoGAN: G and Q minimize the code reconstruction loss, weighted by lambda_cat and lambda_cont."
    params = {"lambda_cat": 1.0, "lambda_cont": 1.0, "q_cat_from_fakes": 1.0, "q_cat_from_fakes_late": 0.0, "late_from": 0.5}
    non_negative = {"lambda_cat": "", "lambda_cont": "", "q_cat_from_fakes": ""}

    @classmethod
    def check(cls, cfg, params) -> None:
        if not cfg.infogan:
            raise CtrlgenError("techniques.mutual_information needs InfoGAN codes; declare [[latent.categorical]] or [[latent.continuous]], or remove the table")
        late = params.get("q_cat_from_fakes_late", 0.0)
        check_late_weight("techniques.mutual_information", "q_cat_from_fakes", "q_cat_from_fakes_late", late, params.get("late_from", 0.5))
        if (params.get("q_cat_from_fakes", 1.0) != 1.0 or late not in (0.0, 1.0)) and "semi_supervised" not in cfg.techniques:
            raise CtrlgenError("techniques.mutual_information.q_cat_from_fakes (or q_cat_from_fakes_late) other than 1 is for runs whose Q also "
                               "learns the categorical code from labelled real images, and this run has none: add [techniques.semi_supervised] "
                               "or remove q_cat_from_fakes and q_cat_from_fakes_late")

    def q_cat_scale(self, run) -> float:
        """The categorical term's scale on D/Q's side at this step (q_cat_from_fakes, then q_cat_from_fakes_late)."""
        return late_weight(run, self.p["q_cat_from_fakes"], self.p["q_cat_from_fakes_late"], self.p["late_from"])

    def d_penalty(self, ctx: StepContext):
        scale = self.q_cat_scale(ctx.run)  # at 0: no term rather than a logged zero
        terms = info_terms(ctx.out_fake, ctx.inputs, self.p["lambda_cat"] * scale if scale else None, self.p["lambda_cont"])
        return {f"d_{k}": v for k, v in terms.items()}

    def g_penalty(self, ctx: StepContext):
        return info_terms(ctx.out_fake, ctx.inputs, self.p["lambda_cat"], self.p["lambda_cont"])
