"""Sample grids: one line per class (or per categorical value), and samples tiled into one picture.

The CLI's ``generate --label all``, the UI's label "all" and the training
sample grids all lay samples out the same way: ``ValueGrid`` says which
factor varies (the label, or a categorical code), how many samples each of
its values gets and whether a value fills a row or a column; ``grid_inputs``
draws the inputs of such a grid from a seed.  ``picture`` tiles any batch of
samples into one (H, W, C) image, or draws points as a scatter plot with the
mixture's modes (``mixture_means``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.images import grid, points_image, to_uint8
from ctrlgen.spec import CODE_CAT, LABEL, LatentSpec

LABEL_FACTOR = "label"


@dataclass(frozen=True)
class ValueGrid:
    """``per_value`` samples for each of ``values`` values of ``factor`` (the label or a categorical code's name)."""

    factor: str
    values: int
    per_value: int
    columns: bool = False  # a column per value (sample i has value i mod values) instead of a row

    @property
    def n(self) -> int:
        return self.values * self.per_value

    @property
    def per_row(self) -> int:
        """Samples per row of the picture."""
        return self.values if self.columns else self.per_value

    def assignment(self) -> np.ndarray:
        """The factor's value of each sample, in picture order (row-major)."""
        k = np.arange(self.values, dtype=np.int64)
        return np.tile(k, self.per_value) if self.columns else np.repeat(k, self.per_value)

    def apply(self, spec: LatentSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` (n samples) with the factor set to ``assignment()``."""
        out = dict(inputs)
        if self.factor == LABEL_FACTOR:
            out[LABEL] = self.assignment()
        else:
            out[CODE_CAT] = out[CODE_CAT].copy()
            out[CODE_CAT][:, spec.categorical_index(self.factor)] = self.assignment()
        return out


def value_grid(spec: LatentSpec, n: int, factor: str | None = None, columns: bool = False) -> ValueGrid | None:
    """The grid of about ``n`` samples (at least one per value, a multiple of the values) over ``factor``.

    ``factor`` None picks what the training sample grids show: for an image model the label when
    it is class-conditional, else its first categorical code; None when there is neither (or points)."""
    if factor is None:
        if spec.output_kind != "image":
            return None
        factor = LABEL_FACTOR if spec.conditional else (spec.categorical[0].name if spec.categorical else None)
        if factor is None:
            return None
    if factor == LABEL_FACTOR:
        if not spec.conditional:
            raise CtrlgenError("this model is not class-conditional; drop --label")
        values = spec.n_classes
    else:
        values = spec.categorical[spec.categorical_index(factor)].n
    return ValueGrid(factor, values, max(1, n // values), columns)


def grid_inputs(spec: LatentSpec, n: int, seed: int, *, factor: str | None = None, columns: bool = False,
                truncation: float | None = None) -> tuple[dict[str, np.ndarray], int]:
    """(inputs, samples per row) of a grid of about ``n`` samples of ``seed`` (see ``value_grid``).

    Without a grid these are samples 0..n-1 of the seed in a square-ish picture."""
    layout = value_grid(spec, n, factor, columns)
    if layout is None:
        return spec.sample(n, seed, truncation=truncation), max(1, math.ceil(math.sqrt(n)))
    return layout.apply(spec, spec.sample(layout.n, seed, truncation=truncation)), layout.per_row


# --------------------------------------------------------------------------- tiling
def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W, C) image."""
    return img if scale <= 1 else np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def mixture_means(spec: LatentSpec) -> np.ndarray | None:
    """The true mode centres of a 2D toy model (drawn as crosses), else None."""
    if spec.output_kind != "points" or "mixture" not in spec.extra:
        return None
    from ctrlgen.data import mixture

    return mixture(spec.extra["mixture"]).means


def picture(spec: LatentSpec, samples: np.ndarray, nrow: int | None = None, scale: int = 1, extent: float | None = None) -> np.ndarray:
    """Samples as one (H, W, C) uint8 picture: an image grid (``nrow`` per row), or a scatter plot for points."""
    if spec.output_kind == "points":
        return points_image(samples, mixture_means(spec), extent=extent)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(samples))))
    return upscale(grid(to_uint8(samples), nrow), scale)
