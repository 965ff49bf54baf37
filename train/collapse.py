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

Warnings (``decline``, never acted on): a *sustained decline* of a diversity
metric, the slow loss of within-class variety that FD does not show (G
sharpens onto fewer variants per class):

* intra-class diversity ratio, or recall, at least ``DECLINE_MARGIN`` below its
  best so far for ``DECLINE_CHECKS`` consecutive checks; the best is taken
  over the checks after the first ``DECLINE_WARMUP`` (an untrained generator's
  spread is not a level the run reached) and before the declining stretch;
  recall only once that best is at least ``RECALL_MIN_PEAK``.

The thresholds come from the monitor lines of short real runs recorded in
``tests/data/monitor/`` (its README has the commands; ``python
tests/data/monitor/falls.py`` prints these falls).  On the seven runs that keep
improving, intra-class diversity falls at most 14.3% below its best so far at
one check and at most 8.9% when held for 3 checks in a row (a noisy plateau);
recall, a count of at most a few hundred of the 2,000 real images at these
sizes, falls up to 39% at one check and at most 6.7% held for 3 checks.  So
20% (intra-class diversity) and 35% (recall) held for 3 checks sit well above
healthy noise, while the run that collapses (no BatchNorm in G) holds 86% below
its best.  Single-check falls are never enough: they recover.

Why warn-level, not a collapse reason: ``on_collapse=rollback`` restores the
last *healthy* state, and during a slow decline every check before the rule
fires is healthy, so a rollback would go back one check into the decline and
halve the learning rates for nothing; on the shipped recipe, diversity falling
between epochs 1 and 8 while FD improves is a trade-off to read from the
curve, not a failure to undo.  So the monitor logs it (``{"event":
"decline"}``, a line on stderr), ``ctrlgen plot`` marks it, and a declining
check does not become ``best.safetensors`` (FD alone would pick it).
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
DECLINE_MARGIN = {"intra_diversity": 0.20, "recall": 0.35}
DECLINE_CHECKS = 3
DECLINE_WARMUP = 3
RECALL_MIN_PEAK = 0.05

Rule = Callable[[list[dict]], "str | None"]


def _values(history: list[dict], key: str) -> list[float]:
    return [float(h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]


def _peak_and_now(history: list[dict], key: str) -> tuple[float, float] | None:
    """The best earlier value of ``key`` and its value at the latest check; None unless the latest check has it
    and an earlier one did too."""
    if not isinstance(history[-1].get(key), (int, float)):
        return None
    vals = _values(history, key)
    return (max(vals[:-1]), vals[-1]) if len(vals) >= 2 else None


def fell_by(key: str, drop: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if (pn := _peak_and_now(history, key)) is None:
            return None
        peak, now = pn
        return f"{label} fell from {peak:g} to {now:g}" if now <= peak - drop else None

    return rule


def fell_to_share(key: str, share: float, min_peak: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if (pn := _peak_and_now(history, key)) is None:
            return None
        peak, now = pn
        return f"{label} fell from {peak:g} to {now:g}" if peak >= min_peak and now <= share * peak else None

    return rule


def fell_below(key: str, floor: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if (pn := _peak_and_now(history, key)) is None:
            return None
        peak, now = pn
        return f"{label} fell below {floor:g} (now {now:.3g}, best {peak:.3g})" if peak >= floor > now else None

    return rule


def pinned(key: str, level: float, checks: int, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        last = history[-checks:]
        if len(last) < checks or not all(isinstance(h.get(key), (int, float)) and h[key] >= level for h in last):
            return None
        return f"{label} pinned at >= {level:g} for {checks} checks"

    return rule


def declined(key: str, margin: float, checks: int, warmup: int, min_peak: float, label: str) -> Rule:
    def rule(history: list[dict]) -> str | None:
        if not isinstance(history[-1].get(key), (int, float)):
            return None
        vals = _values(history, key)
        if len(vals) < warmup + checks + 1:
            return None
        peak, last = max(vals[warmup:-checks]), vals[-checks:]
        if peak < min_peak or max(last) > (1.0 - margin) * peak:
            return None
        return f"{label} {margin:.0%} or more below its best so far ({peak:.3g}) for {checks} checks (now {last[-1]:.3g})"

    return rule


RULES: tuple[Rule, ...] = (
    fell_by("classes_covered", COVERAGE_DROP, "classes covered"),
    fell_below("intra_diversity", DIVERSITY_FLOOR, "intra-class diversity ratio"),
    fell_to_share("modes", MODES_KEPT, MODES_MIN_PEAK, "2D modes captured"),
    pinned("d_acc", D_PINNED, PINNED_CHECKS, "D accuracy"),
)


WARNINGS: tuple[Rule, ...] = (
    declined("intra_diversity", DECLINE_MARGIN["intra_diversity"], DECLINE_CHECKS, DECLINE_WARMUP, 0.0,
             "intra-class diversity ratio"),
    declined("recall", DECLINE_MARGIN["recall"], DECLINE_CHECKS, DECLINE_WARMUP, RECALL_MIN_PEAK, "recall"),
)


def declines(history: list[dict]) -> list[str]:
    """Sustained declines the last check of ``history`` ends (warnings: logged, never acted on)."""
    if not history:
        return []
    return [reason for rule in WARNINGS if (reason := rule(history)) is not None]


def diagnose(history: list[dict]) -> list[str]:
    """Reasons the last check of ``history`` shows collapse (empty: healthy)."""
    if not history:
        return []
    return [reason for rule in RULES if (reason := rule(history)) is not None]
