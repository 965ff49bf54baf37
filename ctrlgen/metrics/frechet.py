"""Fréchet distance between Gaussians fitted to evaluator features (METRICS.md, images).

FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½).  The trace of the matrix square
root is Σ √λᵢ over the eigenvalues of Σ₁Σ₂, which is similar to the
symmetric PSD matrix Lᵀ Σ₂ L (Σ₁ = L Lᵀ, Cholesky), so two cheap LAPACK calls
(``scipy.linalg.cholesky`` and ``eigvalsh``) give the same number as the trace
of ``sqrtm(Σ₁Σ₂)`` (tested), ~100x faster than scipy's general ``sqrtm`` at
128 dimensions.  Σ₁ is the real side (full rank; its factor is cached on the
real set and reused); when it is singular, Σ₁^½ from ``eigh`` replaces L.
Round-off negatives are clipped to 0.  *Intra-class FD*: the FD between
generated samples asked for class c and real samples of class c, averaged
over classes.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ctrlgen.metrics.registry import Pair, SampleSet, is_conditional, is_images, metric


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def psd_factor(s: np.ndarray) -> np.ndarray:
    """F with F Fᵀ = Σ: the Cholesky factor, or Σ^½ (eigh) when Σ is singular."""
    try:
        return linalg.cholesky(s, lower=True)
    except linalg.LinAlgError:
        w, v = linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, factor1: np.ndarray | None = None) -> float:
    """tr((Σ₁Σ₂)^½) for symmetric PSD Σ₁, Σ₂ (``factor1``: ``psd_factor(Σ₁)`` when already known)."""
    f = psd_factor(s1) if factor1 is None else factor1
    m = f.T @ s2 @ f
    return float(np.sqrt(np.clip(linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, factor1: np.ndarray | None = None) -> float:
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2, factor1)))


def set_gaussian(s: SampleSet, key: str = "all", mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    k = f"gauss:{key}"
    if k not in s.memo:
        s.memo[k] = gaussian(s.features if mask is None else s.features[mask])
    return s.memo[k]


def set_fd(real: SampleSet, gen: SampleSet, key: str = "all", real_mask=None, gen_mask=None) -> float:
    """FD with the real side's Gaussian and covariance factor cached on the real set (reused across metrics)."""
    mu_r, s_r = set_gaussian(real, key, real_mask)
    if f"factor:{key}" not in real.memo:
        real.memo[f"factor:{key}"] = psd_factor(s_r)
    return frechet_distance(mu_r, s_r, *set_gaussian(gen, key, gen_mask), factor1=real.memo[f"factor:{key}"])


@metric("fd", applies=is_images, higher_is_better=False, cheap=True,
        doc="Frechet distance of evaluator features, generated vs real test images")
def fd(pair: Pair) -> float:
    return set_fd(pair.real, pair.gen)


@metric("intra_fd", applies=is_conditional, higher_is_better=False,
        doc="Frechet distance per class (label asked for vs real class), averaged over classes")
def intra_fd(pair: Pair) -> float:
    g, r = pair.gen, pair.real
    out = []
    for c in range(g.n_classes):
        gm, rm = g.labels == c, r.labels == c
        if gm.sum() < 2 or rm.sum() < 2:
            continue
        out.append(set_fd(r, g, f"class{c}", rm, gm))
    return float(np.mean(out)) if out else float("nan")
