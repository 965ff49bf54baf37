"""The collapse detector: rules over the history of monitor checks.

Each rule reads the list of checks so far (dicts of cheap metrics, oldest
first; the last one is the check being judged) and returns a reason when it
fires.  Rules look for a *fall* from a level the run once reached, so early
training (noise, a generator that has not spread out yet) never fires:

* classes covered fell by ``COVERAGE_DROP`` or more from its best so far;
* intra-class diversity ratio fell below ``DIVERSITY_FLOOR`` after having
  been above it (the generator collapses within classes);
* 2D modes captured fell to ``MODES_KEPT`` of its best so far or fewer, once
  that best was at least ``MODES_MIN_PEAK`` (one or two modes early in
  training come and go);
* D accuracy pinned at ``D_PINNED`` or more over ``PINNED_CHECKS``
  consecutive checks (D wins outright, G gets no useful gradient).

A check is *healthy* when no rule fires.  The detector is a pure function of
the history, so after a rollback or a resume it is rebuilt by replaying it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

COVERAGE_DROP = 2
DIVERSITY_FLOOR = 0.5
MODES_KEPT = 0.5
MODES_MIN_PEAK = 4
D_PINNED = 0.99
PINNED_CHECKS = 2

Rule = Callable[[list[dict]], "str | None"]


def _values(history: list[dict], key: str) -> list[float]:
    return [float(h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]


def fell_by(key: str, drop: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if not isinstance(history[-1].get(key), (int, float)):
            return None
        vals = _values(history, key)
        if len(vals) < 2:
            return None
        peak, now = max(vals[:-1]), vals[-1]
        return f"{label} fell from {peak:g} to {now:g}" if now <= peak - drop else None

    return rule


def fell_to_share(key: str, share: float, min_peak: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if not isinstance(history[-1].get(key), (int, float)):
            return None
        vals = _values(history, key)
        if len(vals) < 2:
            return None
        peak, now = max(vals[:-1]), vals[-1]
        return f"{label} fell from {peak:g} to {now:g}" if peak >= min_peak and now <= share * peak else None

    return rule


def fell_below(key: str, floor: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if not isinstance(history[-1].get(key), (int, float)):
            return None
        vals = _values(history, key)
        if len(vals) < 2 or max(vals[:-1]) < floor or vals[-1] >= floor:
            return None
        return f"{label} fell below {floor:g} (now {vals[-1]:.3g}, best {max(vals[:-1]):.3g})"

    return rule


def pinned(key: str, level: float, checks: int, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        last = history[-checks:]
        if len(last) < checks or not all(isinstance(h.get(key), (int, float)) and h[key] >= level for h in last):
            return None
        return f"{label} pinned at >= {level:g} for {checks} checks"

    return rule


RULES: tuple[Rule, ...] = (
    fell_by("classes_covered", COVERAGE_DROP, "classes covered"),
    fell_below("intra_diversity", DIVERSITY_FLOOR, "intra-class diversity ratio"),
    fell_to_share("modes", MODES_KEPT, MODES_MIN_PEAK, "2D modes captured"),
    pinned("d_acc", D_PINNED, PINNED_CHECKS, "D accuracy"),
)


def diagnose(history: list[dict]) -> list[str]:
    """Reasons the last check of ``history`` shows collapse (empty: healthy)."""
    if not history:
        return []
    return [reason for rule in RULES if (reason := rule(history)) is not None]
