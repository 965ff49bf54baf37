"""The metric registry: what a metric reads (``Pair``), how it is declared (``@metric``).

A metric is a short function ``fn(pair) -> float`` registered with its
direction (is higher better?), whether it applies to a given generated set,
and whether it is cheap enough for training-time monitoring.  ``pair.gen`` is
the generated set, ``pair.real`` the real reference (Fashion-MNIST test
features, or the 2D mixture).  The *real-data reference value* printed beside
each metric is the same function applied to real images in place of the
generated ones (test images against a training subset), so it says what a
perfect generator would score with this evaluator and this sample size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError


@dataclass
class SampleSet:
    """Evaluator outputs for a set of images (or 2D points), with what was asked for.

    ``labels``: the class asked for (generated) or the true class (real).
    ``codes_cat`` / ``codes_cont``: InfoGAN codes given to G (real sets use the true
    class as their categorical code, so purity's reference is the evaluator's own
    accuracy).  ``q_cont``: the Q head's prediction of ``codes_cont`` from each sample.
    ``cat_classes``: where the spec names the first categorical code's values by the evaluator's classes
    (a semi-supervised model), the evaluator class of each value; None otherwise.
    ``points``: 2D samples (mixture models; then features/logits are empty).
    """

    features: np.ndarray | None = None
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    codes_cat: np.ndarray | None = None
    codes_cont: np.ndarray | None = None
    q_cont: np.ndarray | None = None
    cat_classes: np.ndarray | None = None  # value k of the first categorical code names evaluator class cat_classes[k]
    points: np.ndarray | None = None
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # per-set caches (k-NN radii, Gaussians)

    def __len__(self) -> int:
        return len(self.points if self.points is not None else self.features)

    @property
    def pred(self) -> np.ndarray:
        if "pred" not in self.memo:
            self.memo["pred"] = self.logits.argmax(1)
        return self.memo["pred"]

    @property
    def n_classes(self) -> int:
        return self.logits.shape[1]

    def head(self, n: int) -> SampleSet:
        """The first n samples (a new set with its own caches)."""
        cut = {k: (v[:n] if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items() if k != "memo"}
        return SampleSet(**cut)


@dataclass
class Pair:
    """What a metric reads: the generated set, the real reference, shared scratch space."""

    gen: SampleSet
    real: SampleSet | None = None
    mixture: Any = None  # ctrlgen.data.Mixture for 2D models
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a shared intermediate once per pair (e.g. all four k-NN metrics in one pass)."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Pair], float]
    applies: Callable[[SampleSet], bool]
    higher_is_better: bool
    cheap: bool  # computed by the training monitor
    doc: str


METRICS: dict[str, Metric] = {}
ORDER = (
    "modes", "high_quality", "reverse_kl",
    "classes_covered", "kl_classes", "fd", "precision", "recall", "density", "coverage",
    "conditional_accuracy", "intra_fd", "intra_diversity", "purity", "named_accuracy", "consistency",
)
"""Display order (tables, JSON); a metric not listed goes last."""


def metric(name: str, *, applies: Callable[[SampleSet], bool], higher_is_better: bool, doc: str, cheap: bool = False):
    def deco(fn: Callable[[Pair], float]) -> Callable[[Pair], float]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, fn, applies, higher_is_better, cheap, doc)
        return fn

    return deco


# Predicates: which sets a metric can read.
def is_images(s: SampleSet) -> bool:
    return s.features is not None


def is_points(s: SampleSet) -> bool:
    return s.points is not None


def is_conditional(s: SampleSet) -> bool:
    return is_images(s) and s.labels is not None


def has_categorical(s: SampleSet) -> bool:
    return is_images(s) and s.codes_cat is not None


def has_q(s: SampleSet) -> bool:
    return s.codes_cont is not None and s.q_cont is not None


def get(name: str) -> Metric:
    if name not in METRICS:
        raise CtrlgenError(f"metric {name!r} is unknown; use one of: {', '.join(METRICS)}")
    return METRICS[name]


def applicable(gen: SampleSet, cheap_only: bool = False) -> list[Metric]:
    ms = [m for m in METRICS.values() if m.applies(gen) and (m.cheap or not cheap_only)]
    return sorted(ms, key=lambda m: ORDER.index(m.name) if m.name in ORDER else len(ORDER))


def compute(pair: Pair, names: list[str] | None = None, cheap_only: bool = False) -> dict[str, float]:
    """Every metric that applies to ``pair.gen`` (or the ``names`` given), in registry order."""
    chosen = [get(n) for n in names] if names is not None else applicable(pair.gen, cheap_only)
    return {m.name: float(m.fn(pair)) for m in chosen if m.applies(pair.gen)}
