"""Intra-class diversity ratio (METRICS.md, conditional models).

For each class c: the mean pairwise Euclidean feature distance of the
generated samples asked for c, over the same for real images of class c;
the metric is the mean of the per-class ratios.  ≈ 1 is healthy; ≪ 1 means
the generator collapsed within classes (it may still get every label right).
A class with more than ``MAX_PER_CLASS`` samples is estimated from its first
``MAX_PER_CLASS`` (the mean over pairs is unbiased on any fixed subset).
"""

from __future__ import annotations

import numpy as np

from ctrlgen.metrics.manifold import sq_distances
from ctrlgen.metrics.registry import Pair, SampleSet, is_conditional, metric

MAX_PER_CLASS = 4000


def mean_pairwise_distance(x: np.ndarray, chunk: int = 1024) -> float:
    """Mean ‖x_i − x_j‖ over pairs i ≠ j (0 for fewer than two rows)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(0, n, chunk):
        total += float(np.sqrt(sq_distances(x[i : i + chunk], x)).sum())
    return total / (n * (n - 1))


def class_spread(s: SampleSet, c: int) -> float:
    key = f"spread:{c}"
    if key not in s.memo:
        s.memo[key] = mean_pairwise_distance(s.features[s.labels == c][:MAX_PER_CLASS])
    return s.memo[key]


def per_class_ratios(pair: Pair) -> np.ndarray:
    g, r = pair.gen, pair.real
    out = []
    for c in range(g.n_classes):
        if (g.labels == c).sum() < 2 or (r.labels == c).sum() < 2:
            continue
        out.append(class_spread(g, c) / class_spread(r, c))
    return np.asarray(out)


@metric("intra_diversity", applies=is_conditional, higher_is_better=True, cheap=True,
        doc="mean pairwise feature distance within a class, generated / real, averaged (~1 healthy)")
def intra_diversity(pair: Pair) -> float:
    ratios = per_class_ratios(pair)
    return float(ratios.mean()) if len(ratios) else float("nan")
