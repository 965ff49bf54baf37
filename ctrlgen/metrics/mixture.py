"""The 2D mixture protocol of PacGAN / VEEGAN (METRICS.md).

Each sample is assigned to its nearest mixture mean; it is *high quality* when
within 3 standard deviations of that mean.  A mode is *captured* when it has at
least one high-quality sample.  *Reverse KL* is KL(p_gen || p_data) over modes,
p_gen the normalized histogram of the high-quality assignments and p_data
uniform.  Smoothing: a mode with a zero count contributes 0 to the sum (the
limit of p·log p as p -> 0, which is what adding a vanishing epsilon gives);
with no high-quality sample at all p_gen is undefined and the reverse KL is
reported as +inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MixtureScore:
    modes: int  # modes captured
    n_modes: int
    high_quality: float  # percent of samples within 3 std of their nearest mean
    reverse_kl: float
    counts: tuple[int, ...]  # high-quality samples per mode

    def as_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = list(self.counts)
        return d


def assign(samples: np.ndarray, means: np.ndarray, std: float) -> tuple[np.ndarray, np.ndarray]:
    """(nearest mode index, is high quality) per sample; non-finite samples are never high quality."""
    x = np.asarray(samples, np.float64)
    finite = np.isfinite(x).all(1)
    x = np.where(finite[:, None], x, 0.0)
    d2 = ((x[:, None, :] - np.asarray(means, np.float64)[None]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    hq = finite & (np.sqrt(d2[np.arange(len(x)), nearest]) <= 3.0 * std)
    return nearest, hq


def reverse_kl(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("inf")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def score(samples: np.ndarray, means: np.ndarray, std: float) -> MixtureScore:
    nearest, hq = assign(samples, means, std)
    counts = np.bincount(nearest[hq], minlength=len(means))
    return MixtureScore(
        modes=int((counts > 0).sum()),
        n_modes=len(means),
        high_quality=100.0 * float(hq.mean()) if len(hq) else 0.0,
        reverse_kl=reverse_kl(counts),
        counts=tuple(int(c) for c in counts),
    )
