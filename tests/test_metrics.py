"""The metrics of METRICS.md on cases whose answer is known (synthetic features, no evaluator)."""

import numpy as np
import pytest

from ctrlgen.data import mixture
from ctrlgen.metrics import METRICS, Pair, SampleSet, applicable, compute
from ctrlgen.metrics.classes import kl_divergence
from ctrlgen.metrics.diversity import mean_pairwise_distance
from ctrlgen.metrics.frechet import frechet_distance, trace_sqrt_product
from ctrlgen.metrics.infogan import purity_score, r_squared
from ctrlgen.metrics.manifold import knn_sq_radii, prdc, prdc_detail

K = 10


def blobs(n: int, seed: int, dim: int = 16, spread: float = 1.0, centres_seed: int = 0) -> SampleSet:
    """n points in K well-separated Gaussian classes; logits that classify them correctly."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(centres_seed).standard_normal((K, dim)) * 10
    labels = np.arange(n) % K
    feats = (centres[labels] + spread * rng.standard_normal((n, dim))).astype(np.float32)
    logits = np.eye(K, dtype=np.float32)[labels] * 5
    return SampleSet(features=feats, logits=logits, labels=labels, codes_cat=labels[:, None])


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(np.diag(s1)) - np.sqrt(np.diag(s2))) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # Singular covariances (a collapsed set) stay finite.
    assert np.isfinite(frechet_distance(mu1, np.zeros((3, 3)), mu2, s2))


def test_trace_of_the_matrix_square_root_equals_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(0)
    for dim, rank in ((5, 5), (40, 40), (40, 12)):  # full rank and singular
        a, b = rng.standard_normal((dim, rank)), rng.standard_normal((dim, dim))
        s1, s2 = a @ a.T, b @ b.T
        want = np.trace(np.real(linalg.sqrtm(s1 @ s2)))
        assert trace_sqrt_product(s1, s2) == pytest.approx(want, rel=1e-6)
        mu = rng.standard_normal(dim)
        assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))


def test_real_vs_real_gives_a_small_fd_and_precision_recall_near_one():
    # k-NN balls cover a Gaussian less well as the dimension grows (precision of real vs real
    # is ~0.95 in 4-d, ~0.8 in 16-d with k=3); 4-d keeps "near one" meaningful.
    a, b = blobs(3000, seed=1, dim=4), blobs(3000, seed=2, dim=4)
    fd_same = compute(Pair(a, b), ["fd"])["fd"]
    shifted = blobs(3000, seed=3, dim=4)
    shifted.features = shifted.features + 3.0
    assert fd_same < 0.5 < compute(Pair(shifted, b), ["fd"])["fd"]
    m = compute(Pair(a, b), ["precision", "recall", "density", "coverage"])
    assert m["precision"] > 0.9 and m["recall"] > 0.9 and m["coverage"] > 0.9
    assert 0.8 < m["density"] < 1.2


def test_one_sample_repeated_covers_one_class_and_recalls_nothing():
    real = blobs(2000, seed=1)
    one = real.head(1)
    rep = SampleSet(features=np.repeat(one.features, 2000, 0), logits=np.repeat(one.logits, 2000, 0))
    m = compute(Pair(rep, blobs(2000, seed=2)))
    assert m["classes_covered"] == 1
    assert m["kl_classes"] == pytest.approx(np.log(K))
    assert m["recall"] == 0.0  # the repeated set's k-NN radius is 0: its manifold is one point
    assert m["coverage"] < 0.05  # only the real balls around that one point
    assert m["precision"] == 1.0  # the sample itself is realistic


def test_generated_outside_the_real_manifold_has_low_precision_and_density():
    real = blobs(2000, seed=1)
    far = blobs(2000, seed=2)
    far.features = far.features + 50.0
    m = compute(Pair(far, real), ["precision", "density"])
    assert m["precision"] == 0.0 and m["density"] == 0.0


def test_knn_radii_exclude_the_point_itself_and_chunking_changes_nothing(monkeypatch):
    x = np.array([[0.0], [1.0], [3.0], [6.0]], np.float32)
    r = knn_sq_radii(x, (1, 2))
    assert r[1].tolist() == [1.0, 1.0, 4.0, 9.0]
    assert r[2].tolist() == [9.0, 4.0, 9.0, 25.0]
    a, b = blobs(500, 1), blobs(700, 2)
    whole = prdc(a, b)
    import ctrlgen.metrics.manifold as mf

    monkeypatch.setattr(mf, "CHUNK_BYTES", 4 * 700 * 7)  # 7 rows per chunk
    assert prdc(blobs(500, 1), blobs(700, 2)) == pytest.approx(whole)


def test_prdc_detail_marks_which_real_samples_are_recalled_and_covered():
    real = blobs(400, seed=1)
    gen = blobs(400, seed=2)
    gen.features = gen.features[gen.labels != 0]  # no generated sample near class 0's real ones
    gen.labels = gen.labels[gen.labels != 0]
    d, masks = prdc_detail(real, gen)
    assert masks["recalled"].mean() == pytest.approx(d["recall"]) and masks["covered"].mean() == pytest.approx(d["coverage"])
    assert not masks["recalled"][real.labels == 0].any() and not masks["covered"][real.labels == 0].any()
    assert masks["recalled"][real.labels != 0].mean() > 0.5
    assert prdc(real, gen) == d


def test_class_histogram_kl_and_conditional_accuracy():
    real = blobs(1000, seed=1)
    m = compute(Pair(real, real))
    assert m["classes_covered"] == K and m["kl_classes"] == pytest.approx(0.0, abs=1e-12)
    assert m["conditional_accuracy"] == 1.0
    wrong = blobs(1000, seed=1)
    wrong.labels = (wrong.labels + 1) % K  # asked for the next class each time
    assert compute(Pair(wrong, real), ["conditional_accuracy"])["conditional_accuracy"] == 0.0
    # 2% rule: a class with 1.9% of the samples is not covered, 2.0% is.
    pred = np.r_[np.zeros(981, int), np.ones(19, int)]
    s = SampleSet(features=np.zeros((1000, 2), np.float32), logits=np.eye(K, dtype=np.float32)[pred])
    assert compute(Pair(s, s), ["classes_covered"])["classes_covered"] == 1
    assert kl_divergence(np.array([5, 5, 0]), np.array([1, 1, 1])) == pytest.approx(np.log(1.5))
    assert kl_divergence(np.array([1, 1]), np.array([1, 0])) == float("inf")


def test_intra_class_metrics_see_collapse_within_classes():
    real, gen = blobs(2000, seed=1), blobs(2000, seed=2)
    m = compute(Pair(gen, real), ["intra_diversity", "intra_fd"])
    assert m["intra_diversity"] == pytest.approx(1.0, abs=0.05) and m["intra_fd"] < 1.0
    collapsed = blobs(2000, seed=2, spread=0.05)  # every class squeezed to a point: labels still right
    c = compute(Pair(collapsed, real))
    assert c["conditional_accuracy"] == 1.0 and c["classes_covered"] == K
    assert c["intra_diversity"] < 0.1 and c["intra_fd"] > 10 * m["intra_fd"]
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_purity_is_one_for_any_permutation_of_a_perfect_assignment():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, K, 5000)
    for perm in (np.arange(K), rng.permutation(K), np.roll(np.arange(K), 3)):
        codes = perm[pred]  # code value perm[c] always means class c
        assert purity_score(codes, pred, K, K) == 1.0
    assert purity_score(rng.integers(0, K, 5000), pred, K, K) < 0.2  # unrelated codes
    # One-to-one: two code values that both make class 0 cannot both be matched to it.
    codes, pred3 = np.repeat([0, 1, 2], 100), np.repeat([0, 0, 2], 100)
    assert purity_score(codes, pred3, 3, 3) == pytest.approx(2 / 3)
    # 70% of samples follow the assignment, 30% are noise.
    codes = np.where(rng.random(5000) < 0.7, np.roll(np.arange(K), 1)[pred], rng.integers(0, K, 5000))
    assert purity_score(codes, pred, K, K) == pytest.approx(0.73, abs=0.03)



def test_accuracy_as_named_counts_only_the_named_class_and_needs_names_the_evaluator_knows():
    from ctrlgen.metrics.infogan import named_accuracy
    from ctrlgen.metrics.report import named_classes
    from ctrlgen.spec import LatentSpec

    rng = np.random.default_rng(0)
    pred = rng.integers(0, K, 4000)
    logits = np.eye(K)[pred]
    shifted = np.roll(np.arange(K), 1)[pred]  # value (c + 1) % K always makes class c: purity 1, named 0
    named = SampleSet(features=np.zeros((4000, 2)), logits=logits, codes_cat=shifted[:, None], cat_classes=np.arange(K))
    assert purity_score(shifted, pred, K, K) == 1.0 and named_accuracy(Pair(named)) == 0.0
    right = SampleSet(features=np.zeros((4000, 2)), logits=logits, codes_cat=pred[:, None], cat_classes=np.arange(K))
    assert named_accuracy(Pair(right)) == 1.0
    unnamed = SampleSet(features=np.zeros((4000, 2)), logits=logits, codes_cat=pred[:, None])
    assert "named_accuracy" in [m.name for m in applicable(right)] and "named_accuracy" not in [m.name for m in applicable(unnamed)]
    classes = ("T-shirt/top", "Trouser", "Pullover")
    base = {"format": 1, "noise_dim": 4, "output": {"kind": "image", "shape": [1, 28, 28]}}
    spec = LatentSpec.from_dict({**base, "categorical": [{"name": "c", "n": 3, "values": ["trouser", "T-shirt/top", "Pullover"]}]})
    assert named_classes(spec, classes).tolist() == [1, 0, 2]  # by name, case-insensitive, in the spec's order
    unknown = LatentSpec.from_dict({**base, "categorical": [{"name": "c", "n": 3, "values": ["a", "Trouser", "Pullover"]}]})
    assert named_classes(unknown, classes) is None
    assert named_classes(LatentSpec.from_dict({**base, "categorical": [{"name": "c", "n": 3}]}), classes) is None


def test_consistency_is_r_squared_of_q():
    rng = np.random.default_rng(0)
    c = rng.uniform(-1, 1, (4000, 2))
    assert r_squared(c, c).tolist() == [1.0, 1.0]
    assert r_squared(c, np.zeros_like(c)) == pytest.approx([0.0, 0.0], abs=0.01)
    noisy = c + rng.normal(0, 0.5, c.shape)  # var(c) = 1/3, noise 1/4: R² ≈ 1 - 0.75
    assert r_squared(c, noisy) == pytest.approx([0.25, 0.25], abs=0.05)
    s = blobs(4000, 1)
    s.codes_cont, s.q_cont = c, c * 0.9
    assert compute(Pair(s, s), ["consistency"])["consistency"] == pytest.approx(1 - 0.01, abs=1e-3)


def test_points_metrics_follow_the_mixture_protocol():
    mix = mixture("ring8")
    x, _ = mix.sample(2500, np.random.default_rng(0))
    m = compute(Pair(SampleSet(points=x), mixture=mix))
    assert m["modes"] == 8 and m["high_quality"] > 99 and m["reverse_kl"] < 0.02
    one = compute(Pair(SampleSet(points=np.repeat(mix.means[:1], 100, 0)), mixture=mix))
    assert one["modes"] == 1 and one["reverse_kl"] == pytest.approx(np.log(8))


def test_which_metrics_apply_follows_the_set():
    names = lambda s: [m.name for m in applicable(s)]  # noqa: E731
    uncond = SampleSet(features=np.zeros((4, 2)), logits=np.zeros((4, K)))
    assert "conditional_accuracy" not in names(uncond) and "purity" not in names(uncond)
    assert {"fd", "precision", "recall", "density", "coverage", "classes_covered", "kl_classes"} <= set(names(uncond))
    cond = blobs(20, 1)
    assert {"conditional_accuracy", "intra_fd", "intra_diversity", "purity"} <= set(names(cond))
    assert "consistency" not in names(cond)
    assert names(SampleSet(points=np.zeros((3, 2)))) == ["modes", "high_quality", "reverse_kl"]
    assert all(m.doc for m in METRICS.values())
    assert {m.name for m in METRICS.values() if m.cheap} >= {"classes_covered", "kl_classes", "intra_diversity", "modes"}
