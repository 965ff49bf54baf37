"""Class histograms of generated images (METRICS.md, images).

The evaluator's predicted class of every sample makes a histogram.
*Classes covered*: classes holding at least 2% of the samples.  *KL*:
KL(p_pred ‖ p_target), p_target the distribution of the labels asked for
(conditional models) or uniform (unconditional ones); a class with no
predicted sample contributes 0 (the limit of p·log p), a predicted class the
target never asks for makes it +inf.  *Conditional accuracy*: the share of
samples the evaluator puts in the class they were asked for.
"""

from __future__ import annotations

import numpy as np

from ctrlgen.metrics.registry import Pair, is_conditional, is_images, metric

COVERED_SHARE = 0.02


def histogram(pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(np.asarray(pred, np.int64), minlength=k)[:k]


def kl_divergence(p_counts: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) with p from counts; zero counts contribute 0, mass where q = 0 gives +inf."""
    p = np.asarray(p_counts, np.float64)
    if p.sum() == 0:
        return float("inf")
    p = p / p.sum()
    q = np.asarray(q, np.float64) / np.sum(q)
    on = p > 0
    if np.any(q[on] == 0):
        return float("inf")
    return float(np.sum(p[on] * np.log(p[on] / q[on])))


def target_distribution(pair: Pair) -> np.ndarray:
    g = pair.gen
    if g.labels is not None:
        return histogram(g.labels, g.n_classes).astype(np.float64)
    return np.ones(g.n_classes)


@metric("classes_covered", applies=is_images, higher_is_better=True, cheap=True,
        doc="classes holding >= 2% of the samples (evaluator's predicted class)")
def classes_covered(pair: Pair) -> float:
    g = pair.gen
    return float((histogram(g.pred, g.n_classes) >= COVERED_SHARE * len(g)).sum())


@metric("kl_classes", applies=is_images, higher_is_better=False, cheap=True,
        doc="KL(predicted class histogram || labels asked for, or uniform)")
def kl_classes(pair: Pair) -> float:
    g = pair.gen
    return kl_divergence(histogram(g.pred, g.n_classes), target_distribution(pair))


@metric("conditional_accuracy", applies=is_conditional, higher_is_better=True, cheap=True,
        doc="share of samples classified as the label asked for")
def conditional_accuracy(pair: Pair) -> float:
    g = pair.gen
    return float(np.mean(g.pred == g.labels))
