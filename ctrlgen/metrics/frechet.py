"""Fréchet distance between Gaussians fitted to evaluator features (METRICS.md, images).

FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½), the matrix square root by
``scipy.linalg.sqrtm``; when the product is near singular, ε·I is added to
both covariances (as pytorch-fid does) and the tiny imaginary part that
rounding leaves is dropped.  *Intra-class FD*: the FD between generated
samples asked for class c and real samples of class c, averaged over classes.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ctrlgen.metrics.registry import Pair, SampleSet, is_conditional, is_images, metric

EPS = 1e-6


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a singular product warns; the ε fallback handles it
        warnings.simplefilter("ignore")
        return linalg.sqrtm(a)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(len(s1)) * EPS
        covmean = _sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def set_gaussian(s: SampleSet, key: str = "all", mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    k = f"gauss:{key}"
    if k not in s.memo:
        s.memo[k] = gaussian(s.features if mask is None else s.features[mask])
    return s.memo[k]


@metric("fd", applies=is_images, higher_is_better=False, cheap=True,
        doc="Frechet distance of evaluator features, generated vs real test images")
def fd(pair: Pair) -> float:
    return frechet_distance(*set_gaussian(pair.gen), *set_gaussian(pair.real))


@metric("intra_fd", applies=is_conditional, higher_is_better=False,
        doc="Frechet distance per class (label asked for vs real class), averaged over classes")
def intra_fd(pair: Pair) -> float:
    g, r = pair.gen, pair.real
    out = []
    for c in range(g.n_classes):
        gm, rm = g.labels == c, r.labels == c
        if gm.sum() < 2 or rm.sum() < 2:
            continue
        out.append(frechet_distance(*set_gaussian(g, f"class{c}", gm), *set_gaussian(r, f"class{c}", rm)))
    return float(np.mean(out)) if out else float("nan")
