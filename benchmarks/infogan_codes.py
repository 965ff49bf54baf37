"""What each continuous code of an InfoGAN model visibly does, in numbers beside the sweep picture.

For N (z, c) pairs of a seed, each continuous code is swept over its range (the other codes held at
their drawn values) and six plain image measures are read from every sample:

* ink: the mean of (x + 1) / 2 over the image (how much is drawn);
* width, height: the standard deviation of the ink's column / row position (in pixels);
* x centre, y centre: where the ink's mass sits (pixels from the centre);
* contrast: the standard deviation of the pixels (flat grey vs crisp black and white).

The table gives, per code and measure, the correlation of the measure with the code's value across
all sweeps (Pearson, pooled over the N pairs after removing each pair's mean, so it is the within-pair
effect).  A code "does one visible thing" when one measure follows it closely (|r| near 1) and the
other code does not move that measure: the last column names each code's strongest measure, and the
cross-talk line gives how much the other code moves it.

    python benchmarks/infogan_codes.py fashion-infogan
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402

MEASURES = ("ink", "width", "height", "x centre", "y centre", "contrast")


def measures(images: np.ndarray) -> np.ndarray:
    """[n, C, H, W] in [-1, 1] -> [n, len(MEASURES)]."""
    ink = (images.mean(1) + 1.0) / 2.0  # [n, H, W], channels averaged
    n, h, w = ink.shape
    mass = ink.sum((1, 2)) + 1e-6
    rows, cols = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    col_m, row_m = ink.sum(1) / mass[:, None], ink.sum(2) / mass[:, None]
    xc, yc = col_m @ cols, row_m @ rows
    width = np.sqrt(np.maximum(col_m @ cols**2 - xc**2, 0.0))
    height = np.sqrt(np.maximum(row_m @ rows**2 - yc**2, 0.0))
    return np.stack([ink.mean((1, 2)), width, height, xc - (w - 1) / 2, yc - (h - 1) / 2, images.reshape(n, -1).std(1)], 1)


def within_pair_r(values: np.ndarray, m: np.ndarray) -> float:
    """Pearson r between the code's values [steps] and a measure [pairs, steps], each pair centred."""
    v = np.broadcast_to(values - values.mean(), m.shape)
    c = m - m.mean(1, keepdims=True)
    denom = np.sqrt((v**2).sum() * (c**2).sum())
    return float((v * c).sum() / denom) if denom > 0 else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an InfoGAN .onnx file or shipped model name")
    p.add_argument("--n", type=int, default=500, help="(z, c) pairs per code (default 500)")
    p.add_argument("--steps", type=int, default=9, help="values across each code's range (default 9)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from ctrlgen.errors import CtrlgenError
    from ctrlgen.models import resolve_model
    from ctrlgen.runtime import Runtime

    try:
        rt = Runtime.from_file(resolve_model(args.model), threads=1)
    except CtrlgenError as e:
        raise SystemExit(f"error: {e}") from None
    spec = rt.spec
    if not spec.continuous:
        raise SystemExit(f"error: {args.model} has no continuous codes; give an InfoGAN model")
    print(f"{args.model}: {args.n} (z, c) pairs x {args.steps} values per code, seed {args.seed}; {machine()}")
    rows, strongest = [], {}
    for code in spec.continuous:
        values = np.linspace(code.low, code.high, args.steps)
        per_step = []
        for v in values:
            images, _ = rt.generate(args.n, seed=args.seed, cont={code.name: float(v)})
            per_step.append(measures(images))
        m = np.stack(per_step, 1)  # [pairs, steps, measures]
        rs = [within_pair_r(values, m[:, :, j]) for j in range(len(MEASURES))]
        rows.append((code.name, rs))
        strongest[code.name] = int(np.argmax(np.abs(rs)))
    print("\n| code | " + " | ".join(f"r({name})" for name in MEASURES) + " | strongest |")
    print("|---|" + "---:|" * len(MEASURES) + "---|")
    for name, rs in rows:
        j = strongest[name]
        print(f"| {name} | " + " | ".join(f"{r:+.2f}" for r in rs) + f" | {MEASURES[j]} ({rs[j]:+.2f}) |")
    by_name = dict(rows)
    print()
    for name, j in strongest.items():
        others = [f"{o} {by_name[o][j]:+.2f}" for o in by_name if o != name]
        print(f"{name} moves {MEASURES[j]} (r {by_name[name][j]:+.2f}); the other code(s) move it by r: {', '.join(others) or '-'}")


if __name__ == "__main__":
    main()
