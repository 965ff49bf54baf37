"""InfoGAN control metrics (METRICS.md): categorical purity and continuous-code consistency.

*Purity*: the contingency table of categorical code value × predicted class,
the best one-to-one matching of code values to classes (Hungarian,
``scipy.optimize.linear_sum_assignment``), purity = matched samples / all.
Any permutation of a perfect code-to-class assignment scores 1.0.  Only the
first categorical code is scored.

*Accuracy as named*: where the spec names the code's values by class (a
semi-supervised model: value 3 is "Dress"), the share of samples whose
predicted class is the one their value names.  Purity forgives any relabelling;
this does not, so it measures the promise the names make.

*Consistency*: R² of the Q head's prediction of each continuous code from
the generated sample, 1 − Σ(q − c)² / Σ(c − c̄)², averaged over the codes.
The Q head comes from the checkpoint's discriminator, or from the
``q_code_cont`` output that ``ctrlgen export --q-head`` adds to the ONNX file.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ctrlgen.metrics.registry import Pair, has_categorical, has_q, metric


def purity_score(codes: np.ndarray, pred: np.ndarray, n_codes: int, n_classes: int) -> float:
    table = np.zeros((n_codes, n_classes), np.int64)
    np.add.at(table, (np.asarray(codes, np.int64), np.asarray(pred, np.int64)), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / max(1, table.sum()))


def r_squared(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R² per column."""
    target, pred = np.asarray(target, np.float64), np.asarray(pred, np.float64)
    ss_res = ((target - pred) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / np.maximum(ss_tot, 1e-12)


@metric("purity", applies=has_categorical, higher_is_better=True, cheap=True,
        doc="best one-to-one matching of categorical code values to predicted classes (Hungarian)")
def purity(pair: Pair) -> float:
    g = pair.gen
    codes = g.codes_cat[:, 0]
    return purity_score(codes, g.pred, max(int(codes.max()) + 1, 2), g.n_classes)


def has_named_values(s) -> bool:
    return s.codes_cat is not None and s.cat_classes is not None and s.logits is not None


@metric("named_accuracy", applies=has_named_values, higher_is_better=True, cheap=True,
        doc="share of samples classified as the class their categorical value is named after")
def named_accuracy(pair: Pair) -> float:
    g = pair.gen
    return float(np.mean(g.pred == np.asarray(g.cat_classes)[g.codes_cat[:, 0]]))


@metric("consistency", applies=has_q, higher_is_better=True, cheap=True,
        doc="R^2 of the Q head's prediction of the continuous codes from the samples")
def consistency(pair: Pair) -> float:
    g = pair.gen
    return float(r_squared(g.codes_cont, g.q_cont).mean())
