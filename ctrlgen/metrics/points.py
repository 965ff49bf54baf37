"""The 2D mixture protocol (``mixture.py``) as registry entries: modes, high-quality %, reverse KL."""

from __future__ import annotations

from ctrlgen.metrics.mixture import score
from ctrlgen.metrics.registry import Pair, is_points, metric


def _score(pair: Pair):
    return pair.once("mixture", lambda: score(pair.gen.points, pair.mixture.means, pair.mixture.std))


@metric("modes", applies=is_points, higher_is_better=True, cheap=True,
        doc="mixture modes with at least one high-quality sample")
def modes(pair: Pair) -> float:
    return float(_score(pair).modes)


@metric("high_quality", applies=is_points, higher_is_better=True, cheap=True,
        doc="percent of samples within 3 std of their nearest mode")
def high_quality(pair: Pair) -> float:
    return _score(pair).high_quality


@metric("reverse_kl", applies=is_points, higher_is_better=False, cheap=True,
        doc="KL(high-quality mode histogram || uniform over modes)")
def reverse_kl(pair: Pair) -> float:
    return _score(pair).reverse_kl
