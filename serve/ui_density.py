"""The UI's view of a 2D model: the points and their density side by side, with axes and the true modes marked.

A scatter plot of a few thousand 1-pixel points under the mode markers looks
empty; here the points are drawn larger and translucent, the density is a
log-scaled 2D histogram, and both panels share axes with ticks and the
mixture's modes as crosses.  matplotlib (Agg backend) is imported here only.
"""

from __future__ import annotations

import threading

import numpy as np

_LOCK = threading.Lock()  # pyplot's state is global: one figure at a time


def extent_of(points: np.ndarray, means: np.ndarray | None) -> float:
    """Half the side of the square shown: the modes and 99% of the points, with a margin."""
    parts = [np.abs(r[np.isfinite(r).all(1)]).max(1) for r in (points, means) if r is not None and len(r)]
    parts = [x for x in parts if len(x)]
    if not parts:
        return 1.0
    far = max(float(np.quantile(parts[0], 0.99)), *(float(x.max()) for x in parts[1:]))
    return far * 1.25 + 1e-3


def density_view(points: np.ndarray, means: np.ndarray | None = None, size: tuple[int, int] = (960, 480)) -> np.ndarray:
    """(H, W, 3) uint8: points (left) and a log-density histogram (right), modes as open circles, axes with ticks."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    pts = np.asarray(points, np.float64)
    pts = pts[np.isfinite(pts).all(1)]
    lim = extent_of(pts, means)
    dpi = 100
    with _LOCK:
        fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
        axes = fig.subplots(1, 2)
        alpha = float(np.clip(2000 / max(len(pts), 1), 0.08, 0.6))
        axes[0].scatter(pts[:, 0], pts[:, 1], s=6, alpha=alpha, color="#1f5fc8", linewidths=0)
        axes[0].set_title(f"{len(pts):,} points")
        bins = np.linspace(-lim, lim, 161)
        hist, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=[bins, bins])
        shown = np.ma.masked_equal(hist.T, 0)
        im = axes[1].pcolormesh(bins, bins, shown, norm=LogNorm(vmin=1, vmax=max(2, hist.max())), cmap="viridis")
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="points per cell")
        axes[1].set_title("density (log)")
        for ax in axes:
            if means is not None and len(means):
                ax.scatter(means[:, 0], means[:, 1], marker="o", s=160, facecolors="none", edgecolors="#e0301e", linewidths=1.5,
                           label="true modes")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.grid(alpha=0.3)
        if means is not None and len(means):
            axes[0].legend(loc="upper right", fontsize=8)
        fig.subplots_adjust(left=0.08, right=0.9, bottom=0.11, top=0.92, wspace=0.35)  # fixed: tight_layout costs a draw
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
