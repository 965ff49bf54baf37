import numpy as np
import pytest

from ctrlgen.data import mixture
from ctrlgen.metrics.mixture import reverse_kl, score


def test_real_samples_capture_every_mode_with_tiny_reverse_kl():
    for name in ("ring8", "grid25"):
        mix = mixture(name)
        x, _ = mix.sample(2500, np.random.default_rng(0))
        s = score(x, mix.means, mix.std)
        assert s.modes == s.n_modes
        assert s.high_quality > 99.0
        assert s.reverse_kl < 0.02


def test_hand_built_sets_give_the_expected_counts():
    mix = mixture("ring8")
    # 3 modes hit exactly, 2 samples far from everything, 1 sample 2 std away from mode 5.
    x = np.concatenate([np.repeat(mix.means[[0, 1, 2]], 10, 0), [[0.0, 0.0], [5.0, 5.0]], mix.means[[5]] + [0.02, 0.0]])
    s = score(x, mix.means, mix.std)
    assert s.modes == 4
    assert s.counts == (10, 10, 10, 0, 0, 1, 0, 0)
    assert s.high_quality == pytest.approx(100 * 31 / 33)
    # 4 modes covered unevenly vs uniform over 8.
    p = np.array([10, 10, 10, 1]) / 31
    assert s.reverse_kl == pytest.approx(float(np.sum(p * np.log(p * 8))))


def test_one_mode_collapse_has_reverse_kl_log_k():
    mix = mixture("grid25")
    s = score(np.repeat(mix.means[[7]], 100, 0), mix.means, mix.std)
    assert s.modes == 1 and s.reverse_kl == pytest.approx(np.log(25))
    assert reverse_kl(np.zeros(8)) == float("inf")
    nan = score(np.full((5, 2), np.nan), mix.means, mix.std)
    assert nan.modes == 0 and nan.high_quality == 0.0
