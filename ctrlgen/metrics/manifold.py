"""k-NN manifold metrics in evaluator features (METRICS.md, images).

Improved precision / recall (Kynkäänniemi et al. 2019, k = 3): each set's
manifold is the union of balls around its samples with radius the distance
to the sample's k-th nearest neighbour in the same set.  Precision = share
of generated samples inside the real manifold; recall = share of real
samples inside the generated one.  Density / coverage (Naeem et al. 2020,
k = 5): density = (1 / kM) Σ_j #{real balls holding generated sample j};
coverage = share of real balls holding at least one generated sample.
"Inside" is strict (d < radius), as in the authors' ``prdc`` code, so a
collapsed set whose radii are 0 recalls nothing.

Distances are computed in float32 (features are float32; the rounding,
~1e-5 on squared distances of order 100, is far below any radius), in row
chunks of ``CHUNK_BYTES`` at a time, so memory stays bounded at 10k–50k
samples; one pass over the generated chunks gives all four numbers.
"""

from __future__ import annotations

import numpy as np

from ctrlgen.metrics.registry import Pair, SampleSet, is_images, metric

K_PR, K_DC = 3, 5
CHUNK_BYTES = 64 << 20


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def sq_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0 against rounding."""
    bn = _sq_norms(b) if b_norms is None else b_norms
    d = _sq_norms(a)[:, None] + bn[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


def _chunk(n_cols: int) -> int:
    return max(1, CHUNK_BYTES // (4 * max(1, n_cols)))


def knn_sq_radii(x: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Squared distance of each row to its k-th nearest other row, for each k (self excluded)."""
    x = np.asarray(x, np.float32)
    norms = _sq_norms(x)
    out = {k: np.empty(len(x)) for k in ks}
    step = _chunk(len(x))
    for i in range(0, len(x), step):
        d = sq_distances(x[i : i + step], x, norms)
        d[np.arange(len(d)), np.arange(i, i + len(d))] = -1.0  # self sorts first
        part = np.partition(d, list(ks), axis=1)
        for k in ks:
            out[k][i : i + step] = part[:, k]
    return out


def radii_key(ks: tuple[int, ...]) -> str:
    return f"knn:{ks}"


def set_radii(s: SampleSet, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    key = radii_key(ks)
    if key not in s.memo:
        s.memo[key] = knn_sq_radii(s.features, ks)
    return s.memo[key]


def prdc(real: SampleSet, fake: SampleSet) -> dict[str, float]:
    return prdc_detail(real, fake)[0]


def prdc_detail(real: SampleSet, fake: SampleSet) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """``prdc``'s four numbers, and per real sample whether it is recalled (inside some generated ball)
    and covered (its own k=5 ball holds a generated sample) as bool arrays ``recalled`` / ``covered``,
    so recall and coverage can be broken down by the real samples' classes."""
    r_real = set_radii(real, (K_PR, K_DC))
    r_fake = set_radii(fake, (K_PR,))[K_PR]
    xr, xf = np.asarray(real.features, np.float32), np.asarray(fake.features, np.float32)
    real_norms = _sq_norms(xr)
    inside_pr, inside_dc = 0, 0.0
    recalled = np.zeros(len(xr), bool)
    nearest = np.full(len(xr), np.inf)
    step = _chunk(len(xr))
    for i in range(0, len(xf), step):
        d = sq_distances(xf[i : i + step], xr, real_norms)  # (chunk of fake, real)
        inside_pr += int((d < r_real[K_PR][None, :]).any(1).sum())
        inside_dc += float((d < r_real[K_DC][None, :]).sum())
        recalled |= (d < r_fake[i : i + step, None]).any(0)
        np.minimum(nearest, d.min(0), out=nearest)
    n = max(1, len(xf))
    covered = nearest < r_real[K_DC]
    numbers = {
        "precision": inside_pr / n,
        "recall": float(recalled.mean()),
        "density": inside_dc / (K_DC * n),
        "coverage": float(covered.mean()),
    }
    return numbers, {"recalled": recalled, "covered": covered}


def _pick(name: str):
    def fn(pair: Pair) -> float:
        return pair.once("prdc", lambda: prdc(pair.real, pair.gen))[name]

    fn.__name__ = name
    return fn


for _name, _doc in (
    ("precision", "share of samples inside the real feature manifold (k=3)"),
    ("recall", "share of real images inside the generated feature manifold (k=3)"),
    ("density", "how many real k-NN balls hold each sample, / k (k=5; ~1 for real data)"),
    ("coverage", "share of real k-NN balls holding at least one sample (k=5)"),
):
    metric(_name, applies=is_images, higher_is_better=True, doc=_doc)(_pick(_name))
