"""Regression tests for what the cures-on-images issue found (benchmarks/images.py, benchmarks/toy2d.py --paper):
each fails on the code or default before the fix.  E-GAN's least-squares mutation has its own in test_egan.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _ring8_modes(*overrides: str, seeds: tuple[int, ...] = (0, 1, 2), steps: int = 1600) -> list[int]:
    """Modes per seed of the toy2d benchmark's ring8 GAN with ``overrides``, scored as the benchmark scores."""
    import toy2d

    return [r["modes"] for r in toy2d.run_seeds("ring8", toy2d.Row("t", overrides), seeds, steps)]


def test_default_experience_replay_does_not_collapse_the_ring():
    """Replaying half of D's fakes (the old default, ratio 0.5) left the benchmark's ring8 GAN on one mode in every
    seed, hopping from mode to mode; at the default (0.25) it spreads out by 1,600 steps (docs/results/toy2d-paper.md)."""
    modes = _ring8_modes("techniques.experience_replay={}")
    assert np.mean(modes) >= 4, modes
