"""Metrics of collapse and control (../shared/docs/METRICS.md), one short function each.

``registry`` declares them (``METRICS``, ``compute``); each module registers
its own: ``points`` (the 2D protocol of ``mixture``), ``classes`` (classes
covered, KL, conditional accuracy), ``frechet`` (FD, intra-class FD),
``manifold`` (precision / recall, density / coverage), ``diversity``
(intra-class diversity ratio), ``infogan`` (purity, consistency).
``report`` measures one model with every metric that applies (``ctrlgen
eval``); it is imported on its own, not here.
"""

from ctrlgen.metrics import classes, diversity, frechet, infogan, manifold, points  # noqa: F401  (registration)
from ctrlgen.metrics.registry import METRICS, Metric, Pair, SampleSet, applicable, compute, get

__all__ = ["METRICS", "Metric", "Pair", "SampleSet", "applicable", "compute", "get"]
